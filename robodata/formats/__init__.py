"""On-disk formats robodata reads and writes (the canonical Isaac Lab HDF5 episode store, LeRobot)."""
