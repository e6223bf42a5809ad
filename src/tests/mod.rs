mod clock_rotation;
mod failures;
