mod clock_rotation;
mod compress_after;
mod failures;
