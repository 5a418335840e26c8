"""The chaos soak behind `make chaos`: traffic through every way in, random faults, then an exact count."""
