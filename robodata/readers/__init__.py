"""Recording readers: open a bag or MCAP file and stream its messages in log-time order.

    with open_recording("run_042.mcap") as rec:
        for m in rec.messages(["/joint_states", "/cam0/image_raw"]):
            ...  # m.topic, m.log_time_ns, m.msgtype, m.data (decoded message)

``open_recording`` picks the reader from the path:

- ``*.mcap`` file -> :class:`McapRecordingReader` (ROS 2 CDR, ROS 1 and JSON encodings);
- a ROS 2 bag folder (``metadata.yaml`` + ``.db3``/``.mcap`` files, split or not), or a ``.db3`` file
  inside one (read as the whole bag) -> :class:`RosbagsRecordingReader`; a lone ``.db3`` (sqlite3 storage
  since Iron keeps its metadata and definitions inside) -> :class:`RosbagsRecordingReader`;
- ``*.bag`` (ROS 1) -> :class:`RosbagsRecordingReader`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from robodata.readers.base import (
    InterArrival,
    Message,
    RecordingError,
    RecordingReader,
    RecordingWarning,
    TopicInfo,
    normalize_msgtype,
)
from robodata.readers.mcap_reader import McapRecordingReader
from robodata.readers.rosbag_reader import RosbagsRecordingReader, find_rosbag2_folder

__all__ = [
    "InterArrival",
    "McapRecordingReader",
    "Message",
    "RecordingError",
    "RecordingReader",
    "RecordingWarning",
    "RosbagsRecordingReader",
    "TopicInfo",
    "is_recording",
    "normalize_msgtype",
    "open_recording",
]

RECORDING_SUFFIXES = (".mcap", ".bag", ".db3")


def is_recording(path: str | os.PathLike[str]) -> bool:
    """Whether ``open_recording`` would try to read ``path`` (by its name and layout, without opening it)."""
    p = Path(path)
    return (p.is_file() and p.suffix in RECORDING_SUFFIXES) or find_rosbag2_folder(p) is not None


def open_recording(path: str | os.PathLike[str], **options: Any) -> RecordingReader:
    """Open a recording for reading; the reader is a context manager.

    ``options`` go to the reader (``allow_truncated=``/``validate_crcs=`` for MCAP).

    Raises:
        RecordingError: the path is missing, is not a recording this platform reads, or is damaged.
    """
    p = Path(path)
    if not p.exists():
        raise RecordingError(f"{p}: no such file or folder")
    folder = find_rosbag2_folder(p)
    if p.is_file() and p.suffix == ".mcap":
        # Also a storage file of a ROS 2 bag folder given directly: that one file, read as the MCAP it is.
        return McapRecordingReader(p, **options)
    if folder is not None or (p.is_file() and p.suffix in (".bag", ".db3")):
        _no_options(p, options)
        return RosbagsRecordingReader(p)
    if p.is_dir():
        raise RecordingError(f"{p}: a folder, but not a ROS 2 bag folder (it has no metadata.yaml)")
    raise RecordingError(
        f"{p}: not a recording robodata reads (expected a .mcap file, a ROS 1 .bag, or a ROS 2 bag folder)"
    )


def _no_options(p: Path, options: dict[str, Any]) -> None:
    if options:
        raise RecordingError(f"{p}: options {sorted(options)} apply to MCAP files only")
