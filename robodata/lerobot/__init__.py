"""The LeRobot tier."""
