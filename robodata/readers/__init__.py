"""Recording readers: open a bag or MCAP file and stream its messages in log-time order.

    with open_recording("run_042.mcap") as rec:
        for m in rec.messages(["/joint_states", "/cam0/image_raw"]):
            ...  # m.topic, m.log_time_ns, m.msgtype, m.data (decoded message)

``open_recording`` picks the reader from the path's kind (:mod:`robodata.pathkind`) in :data:`READERS`:

- ``*.mcap`` file -> :class:`McapRecordingReader` (ROS 2 CDR, ROS 1 and JSON encodings);
- a ROS 2 bag folder (``metadata.yaml`` + ``.db3``/``.mcap`` files, split or not), or a ``.db3`` file
  inside one (read as the whole bag) -> :class:`RosbagsRecordingReader`; a lone ``.db3`` (sqlite3 storage
  since Iron keeps its metadata and definitions inside) -> :class:`RosbagsRecordingReader`;
- ``*.bag`` (ROS 1) -> :class:`RosbagsRecordingReader`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robodata.pathkind import (
    RECORDING_SUFFIXES,
    RECORDINGS,
    PathKind,
    PathKindError,
    detect,
    find_rosbag2_folder,
    require,
)
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
from robodata.readers.rosbag_reader import RosbagsRecordingReader

__all__ = [
    "READERS",
    "RECORDING_SUFFIXES",
    "InterArrival",
    "McapRecordingReader",
    "Message",
    "RecordingError",
    "RecordingReader",
    "RecordingWarning",
    "RosbagsRecordingReader",
    "TopicInfo",
    "find_rosbag2_folder",
    "is_recording",
    "normalize_msgtype",
    "open_recording",
]

# A ROS 2 bag's MCAP storage files are read by the MCAP reader; the bag reader never imports it.
RosbagsRecordingReader.STORAGE_FILE_READERS["mcap"] = McapRecordingReader


def _open_mcap(p: Path, options: dict[str, Any]) -> RecordingReader:
    return McapRecordingReader(p, **options)


def _open_rosbags(p: Path, options: dict[str, Any]) -> RecordingReader:
    if options:
        raise RecordingError(f"{p}: options {sorted(options)} apply to MCAP files only")
    return RosbagsRecordingReader(p)


#: The reader of each kind of recording: ``(path, options) -> reader``.
READERS: dict[PathKind, Callable[[Path, dict[str, Any]], RecordingReader]] = {
    PathKind.MCAP: _open_mcap,
    PathKind.ROS1_BAG: _open_rosbags,
    PathKind.ROS2_BAG: _open_rosbags,
}


def is_recording(path: str | os.PathLike[str]) -> bool:
    """Whether ``open_recording`` would try to read ``path`` (by its name and layout, without opening it)."""
    return detect(path, RECORDINGS) is not None


def open_recording(path: str | os.PathLike[str], **options: Any) -> RecordingReader:
    """Open a recording for reading; the reader is a context manager.

    ``options`` go to the reader (``allow_truncated=``/``validate_crcs=`` for MCAP).

    Raises:
        RecordingError: the path is missing, is not a recording this platform reads, or is damaged.
    """
    p = Path(path)
    try:
        info = require(p, READERS.keys(), what="a recording robodata reads")
    except PathKindError as err:
        raise RecordingError(str(err)) from err
    return READERS[info.kind](p, options)
