"""The LeRobot tier: training-ready LeRobot datasets (v3.0, and v2.1 with GR00T's modality.json) from episode stores."""

from __future__ import annotations

from robodata.lerobot.aggregate import ReleaseReport, aggregate
from robodata.lerobot.convert import convert
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.validate import Finding, validate_dataset
from robodata.lerobot.writer_v3 import LeRobotV3Writer, ShardReport, write_shard

__all__ = [
    "Finding",
    "LeRobotError",
    "LeRobotV3Writer",
    "ReleaseReport",
    "ShardReport",
    "aggregate",
    "convert",
    "validate_dataset",
    "write_shard",
]
