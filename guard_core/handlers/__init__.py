"""Redis manager and the subsystems that keep their state through it."""
