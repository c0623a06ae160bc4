"""The landing zone: where new recordings arrive (a local folder or fsspec URL), and the recording registry."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import fsspec

from robodata import pathkind
from robodata.atomic import atomic_path
from robodata.errors import RobodataError
from robodata.partitions import recording_key
from robodata.storage import DataStore

RECORDING_SUFFIXES = pathkind.RECORDING_SUFFIXES + pathkind.HDF5_SUFFIXES  # files the sensor takes
MCAP_MAGIC = b"\x89MCAP0\r\n"
REGISTRY = "registry/recordings"
_SKIP_SUFFIXES = (".active", ".partial", ".tmp", ".part", ".crdownload")


class LandingError(RobodataError):
    """A landed recording cannot be found or has changed since it landed."""


@dataclass
class LandedFile:
    name: str  # path relative to the landing root (a file, or a ROS 2 bag folder)
    url: str
    size: int
    mtime: float
    is_dir: bool = False


@dataclass
class RecordingEntry:
    """What the registry remembers of a recording partition."""

    key: str
    name: str
    url: str
    size: int
    mtime: float
    landed_at: float
    landing: str  # the landing zone's URL (the recording is ``landing/name``)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


class LandingZone:
    """Where recordings land. ``accept(name, is_dir)`` admits more kinds than robodata's own (a plugin
    datasource's files, e.g. CSV trajectories); see :func:`landing_zone`."""

    def __init__(self, url: str, accept: Callable[[str, bool], bool] | None = None):
        self.accept = accept
        self.url = str(url).rstrip("/")
        if "://" not in self.url:
            Path(self.url).mkdir(parents=True, exist_ok=True)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _full(self, name: str) -> str:
        return f"{self.root}/{name}"

    def list(self) -> list[LandedFile]:
        """Recordings in the landing zone: files with a known suffix, and ROS 2 bag folders (metadata.yaml)."""
        out: list[LandedFile] = []
        if not self.fs.exists(self.root):
            return out
        for info in self.fs.ls(self.root, detail=True):
            path = info["name"].rstrip("/")
            base = os.path.basename(path)
            if base.startswith(".") or base.endswith(_SKIP_SUFFIXES):
                continue
            if info["type"] == "directory":
                meta = f"{path}/metadata.yaml"
                # rosbag2 writes metadata.yaml when recording ends; a plugin may take other folders
                if self.fs.exists(meta) or (self.accept is not None and self.accept(base, True)):
                    files = [f for f in self.fs.find(path, detail=True).values()]
                    size = sum(int(f.get("size") or 0) for f in files)
                    mtime = max((_mtime(f) for f in files), default=_mtime(info))
                    out.append(LandedFile(base, path, size, mtime, True))
                continue
            if base.lower().endswith(RECORDING_SUFFIXES) or (self.accept is not None and self.accept(base, False)):
                out.append(LandedFile(base, path, int(info.get("size") or 0), _mtime(info)))
        return sorted(out, key=lambda f: f.name)

    def is_complete(self, f: LandedFile) -> bool:
        """False while a writer is visibly still at work (an MCAP without its closing magic, an empty file)."""
        if f.is_dir:
            return True
        if f.size == 0:
            return False
        if f.name.lower().endswith(".mcap"):
            with self.fs.open(f.url, "rb") as fh:
                fh.seek(max(0, f.size - len(MCAP_MAGIC)))
                return fh.read(len(MCAP_MAGIC)) == MCAP_MAGIC
        return True

    @contextlib.contextmanager
    def local(self, name: str) -> Iterator[Path]:
        """A local path for a landed recording (itself when local, a downloaded copy otherwise)."""
        full = self._full(name)
        if not self.fs.exists(full):
            raise LandingError(f"{self.url}/{name}: the landed recording is gone")
        if "://" not in self.url or self.url.startswith("file://"):
            yield Path(full)
            return
        tmp = Path(tempfile.mkdtemp(prefix="robodata-landing-"))
        try:
            dst = tmp / name
            self.fs.get(full, str(dst), recursive=self.fs.isdir(full))
            yield dst
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def land(self, src: str | os.PathLike[str], *, move: bool = False) -> Path:
        """Put a recording (a file or a ROS 2 bag folder) into the landing zone atomically.

        Locally it is copied (or moved) to a hidden ``.NAME.partial-*`` sibling, then renamed, so the sensor
        never sees half a file; remote zones get an upload. Returns the landed path (its name, when remote).
        """
        src = Path(src)
        if "://" in self.url and not self.url.startswith("file://"):
            self.fs.put(str(src), self._full(src.name), recursive=src.is_dir())
            return Path(src.name)
        dst = Path(self.root) / src.name
        with atomic_path(dst) as tmp:
            if move:
                shutil.move(str(src), tmp)
            elif src.is_dir():
                shutil.copytree(src, tmp)
            else:
                shutil.copy2(src, tmp)
        return dst

    def key_for(self, f: LandedFile) -> str:
        with self.local(f.name) as p:
            return recording_key(p)


def landing_zone(cfg: Any, url: str | None = None) -> LandingZone:
    """The project's landing zone (or the one at ``url``), admitting what the configured pipeline's
    datasources take besides robodata's own kinds."""
    sources = cfg.datasources()
    accept = (lambda name, is_dir: any(s.matches(name, is_dir) for s in sources)) if sources else None
    return LandingZone(url or cfg.landing_url, accept)


def _mtime(info: dict) -> float:
    for k in ("mtime", "LastModified", "updated", "created"):
        v = info.get(k)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        try:
            return float(v)
        except (TypeError, ValueError):
            continue
    return time.time()


def register(store: DataStore, entry: RecordingEntry) -> None:
    rel = f"{REGISTRY}/{entry.key}.json"
    with store.write_path(rel) as tmp:
        tmp.write_text(entry.to_json())


def lookup(store: DataStore, key: str) -> RecordingEntry:
    rel = f"{REGISTRY}/{key}.json"
    if not store.exists(rel):
        raise LandingError(f"recording {key!r} is not registered (no {store.url(rel)}); land the file again")
    with store.read_path(rel) as p:
        return RecordingEntry(**json.loads(p.read_text()))


def registered_keys(store: DataStore) -> list[str]:
    return [n[:-5] for n in store.listdir(REGISTRY) if n.endswith(".json")]
