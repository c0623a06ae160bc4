"""The LeRobot tier's user-facing error: one sentence naming the dataset file and what is wrong with it."""

from __future__ import annotations

from robodata.errors import RobodataError


class LeRobotError(RobodataError):
    """A LeRobot dataset cannot be written, read, converted or aggregated (the message names the file)."""
