"""robodata: turn robot teleoperation recordings into training-ready LeRobot datasets and policies."""

from __future__ import annotations

__version__ = "0.1.0"
