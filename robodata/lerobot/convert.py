"""Conversions: LeRobot v2.0/v2.1 <-> v3.0, and an episode store (Isaac Lab HDF5) straight to either version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from robodata.atomic import partial_name
from robodata.lerobot.aggregate import ReleaseReport, aggregate
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.layout import INFO_PATH, V21, V30, VERSIONS
from robodata.lerobot.writer_v3 import ShardReport, write_shard
from robodata.pathkind import (
    HDF5_SUFFIXES,  # noqa: F401 - re-exported: robodata.lerobot.cli imports it from here
    PathKind,
    kind_of,
)


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    to: str = V30,
    strict: bool = False,
    **shard_options: Any,
) -> ShardReport | ReleaseReport:
    """Convert ``src`` (a LeRobot dataset folder of v2.0, v2.1 or v3.0, or an episode-store HDF5) into ``dst``.

    Video packets are copied, never re-encoded, between LeRobot versions; timestamps are rewritten as
    ``frame_index / fps`` and a v2.0 table without ``frame_index`` gets one. A dataset from the wild converts
    as far as it goes: each gap (a video feature whose files are not shipped, no ``frame_index``, timestamps
    not starting at 0, missing stats, modality.json keys robodata does not read) is worked around and named
    in the report's ``findings``; ``strict`` makes any finding an error (nothing written). ``shard_options``
    go to :func:`robodata.lerobot.writer_v3.write_shard` when ``src`` is an HDF5 file.
    """
    src, dst = Path(src), Path(dst)
    if to not in VERSIONS:
        raise LeRobotError(f"{dst}: unknown target version {to!r} (one of {', '.join(VERSIONS)})")
    if src.resolve() == dst.resolve():
        raise LeRobotError(f"{dst}: the destination is the source; convert into another folder")
    kind = kind_of(src)
    if kind is PathKind.ISAACLAB_HDF5:
        if to == V30:
            return write_shard(src, dst, **shard_options)
        tmp = partial_name(dst)  # names its owner: `robodata doctor` removes it if this process is killed
        try:
            write_shard(src, tmp, **shard_options)
            return aggregate([tmp], dst, version=V21)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if kind is not PathKind.LEROBOT:
        raise LeRobotError(f"{src}: neither a LeRobot dataset (no {INFO_PATH}) nor an HDF5 episode store")
    from robodata.lerobot.validate import survey_dataset

    survey = survey_dataset(src, nonfinite=True)
    bad = survey.nonfinite
    if bad:  # never copied into a dataset people train on
        raise LeRobotError(f"{bad[0].where}: {bad[0].message}" + (f" (and {len(bad) - 1} more episodes/features)"
                                                                  if len(bad) > 1 else "") + "; not converted")
    return aggregate([survey], dst, version=to, strict=strict)
