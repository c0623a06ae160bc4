"""What kind of input a path is: an MCAP file, a ROS 1 or ROS 2 bag, an Isaac Lab HDF5 store, or a LeRobot dataset.

Decided in one place, from names and layout alone (no recording is opened; a LeRobot dataset's
``meta/info.json`` is read for its ``codebase_version``). :data:`KINDS` is a table of ``(kind, test)``
pairs tried in order, in the shape of rosbags' ``Reader.STORAGE_PLUGINS``; ``open_recording``,
``inspect_path``, ``ingest_recording`` and ``convert`` all ask it, each for the kinds it takes::

    info = require(path, RECORDINGS, what="a recording robodata reads")
    info.kind  # PathKind.ROS2_BAG

Recording suffixes match as written (``.mcap``, ``.bag``, ``.db3``: what the ROS tools write); HDF5
suffixes match in any case (``.H5``), as h5py does not care.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from robodata.errors import RobodataError

__all__ = [
    "HDF5_SUFFIXES",
    "KINDS",
    "RECORDINGS",
    "RECORDING_SUFFIXES",
    "PathInfo",
    "PathKind",
    "PathKindError",
    "detect",
    "find_rosbag2_folder",
    "kind_of",
    "require",
]

MCAP_SUFFIX = ".mcap"
ROS1_BAG_SUFFIX = ".bag"
SQLITE3_SUFFIX = ".db3"  # a ROS 2 bag's sqlite3 storage file
RECORDING_SUFFIXES = (MCAP_SUFFIX, ROS1_BAG_SUFFIX, SQLITE3_SUFFIX)
ROS2_STORAGE_SUFFIXES = (SQLITE3_SUFFIX, MCAP_SUFFIX)
ROS2_METADATA = "metadata.yaml"
HDF5_SUFFIXES = (".hdf5", ".h5", ".he5")


class PathKind(StrEnum):
    """A kind of input robodata reads (the values are what ``inspect_path`` reports for the datasets)."""

    MCAP = "mcap"
    ROS1_BAG = "ros1_bag"
    ROS2_BAG = "ros2_bag"
    ISAACLAB_HDF5 = "isaaclab_hdf5"
    LEROBOT = "lerobot"


RECORDINGS = frozenset({PathKind.MCAP, PathKind.ROS1_BAG, PathKind.ROS2_BAG})


class PathKindError(RobodataError):
    """A path is missing, or is not a kind of input its caller takes (the message names both)."""


@dataclass(frozen=True)
class PathInfo:
    """A path with its kind, and a LeRobot dataset's ``codebase_version`` (``"v3.0"``; ``None`` for other kinds)."""

    path: Path
    kind: PathKind
    codebase_version: str | None = None

    @property
    def is_recording(self) -> bool:
        return self.kind in RECORDINGS

    @property
    def size_bytes(self) -> int:
        """Bytes on disk: the file, or every file under the folder."""
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size


def find_rosbag2_folder(path: Path) -> Path | None:
    """The ROS 2 bag folder of ``path``: itself when it holds metadata.yaml, or the folder of a storage file in one."""
    if path.is_dir() and (path / ROS2_METADATA).is_file():
        return path
    if path.is_file() and path.suffix in ROS2_STORAGE_SUFFIXES and (path.parent / ROS2_METADATA).is_file():
        return path.parent
    return None


def _info_path() -> str:
    # The LeRobot layout is written down in robodata.lerobot.layout; that package imports pandas, so only a
    # folder that is no bag pays for the import.
    from robodata.lerobot.layout import INFO_PATH

    return INFO_PATH


def _is_mcap(p: Path) -> bool:
    return p.suffix == MCAP_SUFFIX and p.is_file()


def _is_ros1_bag(p: Path) -> bool:
    return p.suffix == ROS1_BAG_SUFFIX and p.is_file()


def _is_ros2_bag(p: Path) -> bool:
    # A folder with metadata.yaml, a storage file inside one (read as the whole bag), or a lone .db3 (sqlite3
    # storage since Iron keeps its metadata and definitions inside).
    return find_rosbag2_folder(p) is not None or (p.suffix == SQLITE3_SUFFIX and p.is_file())


def _is_hdf5(p: Path) -> bool:
    return p.suffix.lower() in HDF5_SUFFIXES and p.is_file()


def _is_lerobot(p: Path) -> bool:
    return p.is_dir() and (p / _info_path()).is_file()


#: Each kind and its test, tried in this order: an ``.mcap`` file inside a ROS 2 bag folder is the MCAP
#: file it is (the ROS 2 test would take it for the whole bag).
KINDS: dict[PathKind, Callable[[Path], bool]] = {
    PathKind.MCAP: _is_mcap,
    PathKind.ROS1_BAG: _is_ros1_bag,
    PathKind.ROS2_BAG: _is_ros2_bag,
    PathKind.ISAACLAB_HDF5: _is_hdf5,
    PathKind.LEROBOT: _is_lerobot,
}

_DESCRIPTIONS = {
    PathKind.MCAP: "a .mcap file",
    PathKind.ROS1_BAG: "a ROS 1 .bag",
    PathKind.ROS2_BAG: "a ROS 2 bag folder",
    PathKind.ISAACLAB_HDF5: "an Isaac Lab .hdf5 episode store",
    PathKind.LEROBOT: "a LeRobot dataset folder with {info}",
}
# What marks a folder of the kind, for "a folder, but not ..." (the folder kinds only).
_FOLDER_MARKS = {
    PathKind.ROS2_BAG: "a ROS 2 bag folder (it has no metadata.yaml)",
    PathKind.LEROBOT: "a LeRobot dataset folder (it has no {info})",
}


def _lerobot_version(p: Path) -> str | None:
    try:
        info = json.loads((p / _info_path()).read_text())
    except (OSError, ValueError):  # unreadable: whoever reads the dataset says what is wrong with it
        return None
    version = info.get("codebase_version") if isinstance(info, dict) else None
    return str(version) if version is not None else None


def detect(path: str | os.PathLike[str], among: Collection[PathKind] = tuple(PathKind)) -> PathInfo | None:
    """The kind of ``path`` (one of ``among``) from its name and layout; ``None`` when missing or of no such kind."""
    p = Path(path)
    for kind, test in KINDS.items():
        if kind in among and test(p):
            return PathInfo(p, kind, _lerobot_version(p) if kind is PathKind.LEROBOT else None)
    return None


def kind_of(path: str | os.PathLike[str]) -> PathKind | None:
    """Just the kind of ``path`` (``None``: missing or unknown)."""
    info = detect(path)
    return info.kind if info is not None else None


def require(
    path: str | os.PathLike[str],
    accepted: Collection[PathKind] = tuple(PathKind),
    *,
    what: str = "something robodata reads",
) -> PathInfo:
    """The kind of ``path``, which must be one of ``accepted`` (only those are tested for).

    Raises:
        PathKindError: the path is missing, or is none of ``accepted``; the message names the path and what
            was expected (``what``, then the kinds), or for a folder which marker file it lacks.
    """
    p = Path(path)
    if not p.exists():
        raise PathKindError(f"{p}: no such file or folder")
    info = detect(p, accepted)
    if info is None:
        raise PathKindError(_problem(p, [k for k in KINDS if k in accepted], what))
    return info


def _describe(kind: PathKind, table: dict[PathKind, str]) -> str:
    text = table[kind]
    return text.format(info=_info_path()) if "{info}" in text else text


def _problem(p: Path, accepted: list[PathKind], what: str) -> str:
    folders = [_describe(k, _FOLDER_MARKS) for k in accepted if k in _FOLDER_MARKS]
    if p.is_dir() and folders:
        return f"{p}: a folder, but not {' nor '.join(folders)}"
    return f"{p}: not {what} (expected {_join([_describe(k, _DESCRIPTIONS) for k in accepted])})"


def _join(items: list[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]
