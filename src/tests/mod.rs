mod clock_rotation;
