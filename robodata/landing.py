"""The landing zone: where recordings arrive (a local folder or an fsspec URL, organised by prefix as a fleet
writes them, e.g. ``robot-17/2026-12-01/``), and the scan that turns what landed into registered recordings.

A scan (one sensor tick) decides "new / still being written / changed" from listing metadata only (size,
mtime, ETag) plus, for a file that looks settled, a bounded completeness probe of at most a few KiB (an MCAP's
closing magic, a ROS 1 bag's index position, an HDF5 superblock): it never reads a recording's content. Its
state is the registry (:mod:`robodata.registry`), so that its cost follows what changed:

- locally, a folder whose mtime is what the registry remembers is not listed again (adding, removing or
  renaming an entry changes it); only its known sub-folders are visited;
- on an object store, where folders have no mtime, every folder under the watched prefixes is listed, one
  page at a time (memory: one folder), and ``landing.recent_days`` skips date-named folders older than that
  between full scans;
- files seen but not yet settled are re-checked individually (``waiting`` rows), whatever their folder;
- every ``landing.full_scan_minutes`` a full scan lists everything and re-checks registered files too (a file
  rewritten in place, one that vanished).

A file is taken once it is unchanged on two ticks, untouched for ``settle_seconds`` and complete for its
format; an incomplete one untouched for ``stale_seconds`` is taken anyway (a crashed recorder: its ingest then
reports it as truncated). Links and special files (FIFOs, devices) are refused with a reason, never followed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import shutil
import stat
import struct
import tempfile
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from robodata import pathkind
from robodata.atomic import OLD_MARK, PARTIAL_MARK, atomic_path
from robodata.errors import RobodataError
from robodata.partitions import fleet_partition, recording_key
from robodata.registry import DUPLICATE, FAILED, REGISTERED, SUPERSEDED, LandedRow, Recording, Registry
from robodata.storage import storage_options

RECORDING_SUFFIXES = pathkind.RECORDING_SUFFIXES + pathkind.HDF5_SUFFIXES  # files the sensor takes
MCAP_MAGIC = b"\x89MCAP0\r\n"
BAG_MAGIC = b"#ROSBAG V2.0\n"
_SKIP_SUFFIXES = (".active", ".partial", ".tmp", ".part", ".crdownload")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_BAG = "\x00bag"  # list_dir's note that the folder listed is itself one recording (a closed ROS 2 bag)
LISTING_THREADS = 16  # object stores: folder listings and completeness probes in flight at once
PROBE_BYTES = 4096  # the most a tick reads of one file


class LandingError(RobodataError):
    """A landed recording cannot be found or has changed since it landed."""


@dataclass
class LandedFile:
    name: str  # path relative to the landing root (a file, or a ROS 2 bag folder)
    url: str
    size: int
    mtime: float
    is_dir: bool = False
    etag: str = ""
    refused: str = ""  # why it is never taken (a link, a special file), else ""

    @property
    def identity(self) -> tuple[int, float, str]:
        return (self.size, round(self.mtime, 6), self.etag)


@dataclass
class ScanReport:
    """What one scan found: new recordings (to request), and why the others were not taken."""

    tick: int
    full: bool
    new: list[Recording] = field(default_factory=list)
    writing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    relinked: list[str] = field(default_factory=list)
    folders_listed: int = 0
    folders_skipped: int = 0
    objects_seen: int = 0
    more: bool = False  # the per-tick budget ran out: the rest next tick
    resume_point: str = ""  # a full scan cut short by its deadline: the last folder it finished

    def reasons(self, limit: int = 20) -> list[str]:
        """One line per object not taken (at most ``limit``, then a count)."""
        lines = [f"{n}: still being written" for n in self.writing]
        lines += [f"{n}: changed since it was registered; its new content is registered once it settles"
                  for n in self.changed]
        lines += self.refused + [f"{n}: vanished before it settled" for n in self.vanished] + self.errors
        if len(lines) > limit:
            lines = lines[:limit] + [f"... and {len(lines) - limit} more (robodata landing status)"]
        return lines


class LandingZone:
    """Where recordings land. ``accept(name, is_dir)`` admits more kinds than robodata's own (a plugin
    datasource's files, e.g. CSV trajectories); ``prefixes`` limits the scan to those folders."""

    def __init__(self, url: str, accept: Callable[[str, bool], bool] | None = None,
                 prefixes: list[str] | None = None):
        self.accept = accept
        self.url = str(url).rstrip("/")
        self.local_root: Path | None = None
        if "://" not in self.url or self.url.startswith("file://"):
            self.local_root = Path(self.url.removeprefix("file://"))
            self.local_root.mkdir(parents=True, exist_ok=True)
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options())
        self.prefixes = [p.strip("/") for p in (prefixes or [""])]

    def _full(self, name: str) -> str:
        return f"{self.root}/{name}" if name else self.root

    # ---- what is a recording ------------------------------------------------------------------------------
    def takes(self, base: str, is_dir: bool) -> bool:
        """Whether a file (or, ``is_dir``, a folder) named ``base`` is a recording this zone takes."""
        if is_dir:
            return self.accept is not None and self.accept(base, True)
        return base.lower().endswith(RECORDING_SUFFIXES) or (self.accept is not None and self.accept(base, False))

    @staticmethod
    def _ignored(base: str) -> bool:
        """Our own work in progress and other tools' temporaries: skipped without a word."""
        return PARTIAL_MARK in base or OLD_MARK in base or base.endswith(_SKIP_SUFFIXES) or base.startswith("..")

    def _hidden_reason(self, rel: str, base: str, is_dir: bool) -> str:
        if base.startswith(".") and (self.takes(base[1:], is_dir) or self.takes(base, is_dir)):
            return f"{rel}: hidden name (starts with '.'): not taken; rename it without the dot to ingest it"
        return ""

    # ---- listing --------------------------------------------------------------------------------------------
    def root_problem(self) -> str:
        """Why the zone cannot be listed at all (an object store's bucket missing or unreadable), else ""."""
        if self.local_root is not None:
            return "" if self.local_root.is_dir() else "the landing folder does not exist"
        bucket = self.root.split("/", 1)[0]
        try:
            if not self.fs.exists(bucket):
                return f"the bucket {bucket!r} does not exist or these credentials cannot read it"
        except (OSError, TimeoutError) as err:
            return f"cannot reach the bucket {bucket!r}: {err.__class__.__name__}: {err}"
        return ""

    def dir_mtime_ns(self, rel: str) -> int | None:
        """A local folder's mtime (None on object stores, whose folders have none)."""
        if self.local_root is None:
            return None
        return os.stat(self.local_root / rel if rel else self.local_root).st_mtime_ns

    def list_dir(self, rel: str, *, stat_known: Callable[[str], bool] | None = None,
                 known_dirs: Container[str] = ()) -> tuple[list[LandedFile], list[str], list[str]]:
        """One folder: (recordings and refused objects in it, sub-folders to visit, silent skips' reasons).
        ``stat_known(path)`` False lets a local listing skip the stat of a file already registered (its size and
        mtime then read 0: the caller does not compare them); sub-folders in ``known_dirs`` are plain folders
        already (one that becomes a ROS 2 bag says so when it is listed itself: the ``_BAG`` note)."""
        if self.local_root is not None:
            return self._list_local(rel, stat_known, known_dirs)
        return self._list_remote(rel)

    def _list_local(self, rel: str, stat_known: Callable[[str], bool] | None, known_dirs: Container[str] = ()
                    ) -> tuple[list[LandedFile], list[str], list[str]]:
        assert self.local_root is not None
        base_dir = self.local_root / rel if rel else self.local_root
        objs: list[LandedFile] = []
        subdirs: list[str] = []
        notes: list[str] = []
        in_bag = _bag_storage_name(rel)
        with os.scandir(base_dir) as it:
            for e in it:
                name = e.name
                child = f"{rel}/{name}" if rel else name
                if self._ignored(name):
                    continue
                if e.is_symlink():
                    if self.takes(name, False) or self.takes(name, True) or name.endswith(pathkind.ROS2_STORAGE_SUFFIXES):
                        objs.append(self._refused(child, "a symbolic link: links are not followed"))
                    continue
                if e.is_dir(follow_symlinks=False):
                    if name.startswith("."):
                        hidden = self._hidden_reason(child, name, True)
                        if hidden:
                            objs.append(self._refused(child, hidden.split(": ", 1)[1]))
                        continue
                    if child in known_dirs:
                        subdirs.append(child)
                        continue
                    bag = os.path.join(e.path, pathkind.ROS2_METADATA)
                    if os.path.isfile(bag) and not os.path.islink(bag) or self.takes(name, True):
                        objs.append(self._local_folder(child))
                    else:
                        subdirs.append(child)
                    continue
                if name == pathkind.ROS2_METADATA and rel:
                    return [], [], [_BAG]
                if not (self.takes(name, False) or name.startswith(".")):
                    continue
                if in_bag is not None and in_bag.fullmatch(name):
                    notes.append(f"{rel}: a ROS 2 bag still being recorded (no {pathkind.ROS2_METADATA} yet)")
                    continue
                if name.startswith("."):
                    hidden = self._hidden_reason(child, name, False)
                    if hidden:
                        objs.append(self._refused(child, hidden.split(": ", 1)[1]))
                    continue
                if not e.is_file(follow_symlinks=False):
                    objs.append(self._refused(child, "not a regular file (a FIFO, socket or device)"))
                    continue
                if stat_known is not None and not stat_known(child):
                    objs.append(LandedFile(child, f"{self.url}/{child}", 0, 0.0))
                    continue
                st = e.stat(follow_symlinks=False)
                objs.append(LandedFile(child, f"{self.url}/{child}", st.st_size, st.st_mtime))
        return objs, subdirs, notes[:1]

    def _local_folder(self, rel: str) -> LandedFile:
        """A ROS 2 bag folder (or a folder a plugin takes): its files' total size and newest mtime."""
        assert self.local_root is not None
        size, mtime = 0, os.lstat(self.local_root / rel).st_mtime
        for dirpath, _dirs, files in os.walk(self.local_root / rel, followlinks=False):
            for f in files:
                st = os.lstat(os.path.join(dirpath, f))
                if stat.S_ISLNK(st.st_mode):
                    return self._refused(rel, f"holds a symbolic link ({f}): links are not followed")
                if not stat.S_ISREG(st.st_mode):
                    return self._refused(rel, f"holds {f}, which is not a regular file")
                size += st.st_size
                mtime = max(mtime, st.st_mtime)
        return LandedFile(rel, f"{self.url}/{rel}", size, mtime, True)

    def _refused(self, rel: str, why: str) -> LandedFile:
        return LandedFile(rel, f"{self.url}/{rel}", 0, 0.0, refused=why)

    def _list_remote(self, rel: str) -> tuple[list[LandedFile], list[str], list[str]]:
        objs: list[LandedFile] = []
        subdirs: list[str] = []
        notes: list[str] = []
        in_bag = _bag_storage_name(rel)
        for info in self.fs.ls(self._full(rel), detail=True, refresh=True):
            path = info["name"].rstrip("/")
            name = path.rsplit("/", 1)[-1]
            child = f"{rel}/{name}" if rel else name
            if not name or self._ignored(name) or path == self._full(rel).rstrip("/"):
                continue
            if info.get("type") == "directory":
                if name.startswith("."):
                    continue
                if self.takes(name, True):
                    objs.append(self._remote_folder(child, path))
                else:  # a ROS 2 bag among them says so when it is listed itself (no probe per folder here)
                    subdirs.append(child)
                continue
            if name == pathkind.ROS2_METADATA and rel:
                return [], [], [_BAG]
            if name.startswith("."):
                hidden = self._hidden_reason(child, name, False)
                if hidden:
                    objs.append(self._refused(child, hidden.split(": ", 1)[1]))
                continue
            if in_bag is not None and in_bag.fullmatch(name):
                notes.append(f"{rel}: a ROS 2 bag still being recorded (no {pathkind.ROS2_METADATA} yet)")
                continue
            if self.takes(name, False):
                objs.append(LandedFile(child, f"{self.url}/{child}", int(info.get("size") or 0), _mtime(info),
                                       etag=_etag(info)))
        return objs, subdirs, notes[:1]

    def _remote_folder(self, rel: str, path: str) -> LandedFile:
        files = list(self.fs.find(path, detail=True).values())
        size = sum(int(f.get("size") or 0) for f in files)
        mtime = max((_mtime(f) for f in files), default=0.0)
        etag = ",".join(sorted(_etag(f) for f in files if _etag(f)))[:250]
        return LandedFile(rel, f"{self.url}/{rel}", size, mtime, True, etag=etag)

    def info(self, name: str) -> LandedFile | None:
        """The landed object ``name`` now (None when it is gone)."""
        if self.local_root is not None:
            p = self.local_root / name
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                return None
            if stat.S_ISLNK(st.st_mode):
                return self._refused(name, "a symbolic link: links are not followed")
            if stat.S_ISDIR(st.st_mode):
                return self._local_folder(name)
            if not stat.S_ISREG(st.st_mode):
                return self._refused(name, "not a regular file (a FIFO, socket or device)")
            return LandedFile(name, f"{self.url}/{name}", st.st_size, st.st_mtime)
        full = self._full(name)
        try:
            inf = self.fs.info(full, refresh=True) if "refresh" in _params(self.fs.info) else self.fs.info(full)
        except FileNotFoundError:
            return None
        if inf.get("type") == "directory":
            return self._remote_folder(name, full)
        return LandedFile(name, f"{self.url}/{name}", int(inf.get("size") or 0), _mtime(inf), etag=_etag(inf))

    def iter_all(self) -> Iterator[LandedFile]:
        """Every recording (and refused object) under the watched prefixes, one folder at a time."""
        stack = list(reversed(self.prefixes))
        while stack:
            rel = stack.pop()
            try:
                objs, subdirs, _ = self.list_dir(rel)
            except FileNotFoundError:
                continue
            yield from sorted(objs, key=lambda f: f.name)
            stack.extend(sorted(subdirs, reverse=True))

    # ---- completeness ------------------------------------------------------------------------------------------
    def is_complete(self, f: LandedFile) -> bool:
        """False while a writer is visibly still at work, from at most PROBE_BYTES of the file: an MCAP
        without its closing magic, a ROS 1 bag whose header has no index yet, an HDF5 file that does not open,
        an empty file. A ROS 2 bag folder is complete once rosbag2 wrote its metadata.yaml."""
        if f.is_dir:
            return True
        if f.size == 0:
            return False
        low = f.name.lower()
        try:
            if low.endswith(".mcap"):
                with self.fs.open(self._full(f.name), "rb") as fh:
                    fh.seek(max(0, f.size - len(MCAP_MAGIC)))
                    return fh.read(len(MCAP_MAGIC)) == MCAP_MAGIC
            if low.endswith(".bag"):
                with self.fs.open(self._full(f.name), "rb") as fh:
                    return _bag_index_pos(fh.read(PROBE_BYTES)) not in (None, 0)
            if low.endswith(pathkind.HDF5_SUFFIXES) and self.local_root is not None:
                import h5py

                with h5py.File(self.local_root / f.name, "r", locking=False):
                    return True
        except (OSError, ValueError):
            return False
        return True

    # ---- access ---------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def local(self, name: str) -> Iterator[Path]:
        """A local path for a landed recording (itself when local, a downloaded copy otherwise)."""
        if self.local_root is not None:
            p = self.local_root / name
            if not p.exists():
                raise LandingError(f"{self.url}/{name}: the landed recording is gone")
            yield p
            return
        full = self._full(name)
        if not self.fs.exists(full):
            raise LandingError(f"{self.url}/{name}: the landed recording is gone")
        tmp = Path(tempfile.mkdtemp(prefix="robodata-landing-"))
        try:
            dst = tmp / Path(name).name
            self.fs.get(full, str(dst), recursive=self.fs.isdir(full))
            yield dst
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def land(self, src: str | os.PathLike[str], *, move: bool = False, under: str = "") -> Path:
        """Put a recording (a file or a ROS 2 bag folder) into the landing zone (under the folder ``under``)
        atomically. Locally it is copied (or moved) to a hidden ``.NAME.partial-*`` sibling, then renamed, so
        the sensor never sees half a file; remote zones get an upload (an object appears whole). Returns the
        landed path (its name inside the zone, when remote)."""
        src = Path(src)
        rel = f"{under.strip('/')}/{src.name}" if under.strip("/") else src.name
        if self.local_root is None:
            self.fs.put(str(src), self._full(rel), recursive=src.is_dir())
            return Path(rel)
        dst = self.local_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dst) as tmp:
            if move:
                shutil.move(str(src), tmp)
            elif src.is_dir():
                shutil.copytree(src, tmp)
            else:
                shutil.copy2(src, tmp)
        return dst


def landing_zone(cfg: Any, url: str | None = None) -> LandingZone:
    """The project's landing zone (or the one at ``url``), admitting what the configured pipeline's
    datasources take besides robodata's own kinds."""
    sources = cfg.datasources()
    accept = (lambda name, is_dir: any(s.matches(name, is_dir) for s in sources)) if sources else None
    return LandingZone(url or cfg.landing_url, accept, prefixes=cfg.landing.prefixes)


# ---- the scan (one sensor tick) --------------------------------------------------------------------------------
class Scanner:
    """One landing zone watched through one registry with the project's ``landing`` settings."""

    def __init__(self, zone: LandingZone, registry: Registry, settings: Any):
        self.zone = zone
        self.registry = registry
        self.settings = settings

    def scan(self, tick: int, *, full: bool, now: float | None = None, resume_after: str = "",
             deadline_s: float | None = None) -> ScanReport:
        """One tick. A full scan stops after ``deadline_s`` seconds (a sensor tick must end well inside
        Dagster's timeout) and says where (``resume_point``); the next one passes it as ``resume_after``."""
        now = time.time() if now is None else now
        rep = ScanReport(tick, full)
        problem = self.zone.root_problem()
        if problem:
            rep.errors.append(f"{self.zone.url}: {problem}; retried next tick")
            return rep
        walk = _Walk(self, rep, now, full, resume_after if full else "",
                     time.monotonic() + deadline_s if full and deadline_s else None)
        try:
            walk.run()
        finally:
            walk.close()
        self._recheck_waiting(rep, walk.handled, now)
        return rep

    def _recheck_waiting(self, rep: ScanReport, handled: set[str], now: float) -> None:
        """Files still settling whose folders did not change (or were not listed): each re-checked on its own."""
        zid = self.zone.url
        waiting = [w for w in self.registry.waiting(zid) if w.path not in handled]
        infos = self._map(self._safe_info, [w.path for w in waiting])
        with self.registry.engine.begin() as conn:
            for w, (f, err) in zip(waiting, infos, strict=True):
                if len(rep.new) >= self.settings.max_new_per_tick:
                    rep.more = True
                    break
                if err:
                    rep.errors.append(f"{self.zone.url}/{w.path}: cannot read: {err}; retried next tick")
                elif f is None:
                    rep.vanished.append(w.path)
                    self.registry.drop_landed(conn, zid, [w.path])
                else:
                    self._consider(conn, f, w, rep, now, full=True, listed=False)

    def _safe_info(self, path: str) -> tuple[LandedFile | None, str]:
        try:
            return self.zone.info(path), ""
        except OSError as err:
            return None, str(err)

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``fn`` over ``items``: in threads on an object store (each call a request), in order here."""
        if self.zone.local_root is not None or len(items) < 2:
            return [fn(x) for x in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(LISTING_THREADS) as ex:
            return list(ex.map(fn, items))

    def _probe(self, objs: list[LandedFile], rows: dict[str, LandedRow], now: float) -> dict[str, bool]:
        """Completeness of the objects that this tick may take (unchanged since last tick, settled)."""
        cands = [f for f in objs if not f.refused and not f.is_dir and f.name in rows
                 and rows[f.name].state == "waiting" and f.identity == _identity(rows[f.name])
                 and now - f.mtime >= self.settings.settle_seconds]
        return dict(zip((f.name for f in cands), self._map(self.zone.is_complete, cands), strict=True))

    def _folder_recording(self, rel: str, rep: ScanReport, handled: set[str], now: float, full: bool) -> None:
        """A folder listed before became one recording (rosbag2 closed the bag): an object of its parent now;
        what was seen inside it while it was written is forgotten."""
        zid = self.zone.url
        f = self.zone.info(rel)
        with self.registry.engine.begin() as conn:
            self.registry.drop_landed(conn, zid, list(self.registry.landed_under(zid, rel)))
            self.registry.drop_dir(conn, zid, rel)
            if f is not None:
                handled.add(f.name)
                self._consider(conn, f, self.registry.landed_rows(zid, [rel]).get(rel), rep, now, full=full,
                               listed=True)

    def _consider(self, conn: Any, f: LandedFile, row: LandedRow | None, rep: ScanReport, now: float, *,
                  full: bool, listed: bool, probes: dict[str, bool] | None = None) -> None:
        zid = self.zone.url
        if f.refused:
            if row is None or row.state != "refused":
                rep.refused.append(f"{f.name}: {f.refused}")
                self.registry.put_landed(conn, zid, LandedRow(f.name, 0, 0.0, "", "refused", 1, None, now, f.refused))
            return
        if row is None:
            self.registry.put_landed(conn, zid, LandedRow(f.name, f.size, f.mtime, f.etag, "waiting", 1, None, now))
            rep.writing.append(f.name)
            return
        if row.state == "refused":  # it was a link or a FIFO and is now a file: look at it afresh
            self.registry.put_landed(conn, zid, LandedRow(f.name, f.size, f.mtime, f.etag, "waiting", 1, None, now))
            rep.writing.append(f.name)
            return
        same = _identity(row) == f.identity
        if row.state == REGISTERED:
            if not full or same:
                return
            if row.key:  # rewritten in place after it was registered: the old recording is superseded
                self.registry.supersede(conn, row.key, by="(the new content, once it settles)")
            rep.changed.append(f.name)
            self.registry.put_landed(conn, zid, LandedRow(f.name, f.size, f.mtime, f.etag, "waiting", 1, None, now,
                                                          f"changed after it was registered as {row.key}"))
            return
        # waiting: taken once unchanged since the last tick, settled and complete (or stale)
        if not same:
            self.registry.put_landed(conn, zid, LandedRow(f.name, f.size, f.mtime, f.etag, "waiting", 1, None,
                                                          row.first_seen, row.note))
            rep.writing.append(f.name)
            return
        age = now - f.mtime
        done = probes[f.name] if probes and f.name in probes else (age >= self.settings.settle_seconds
                                                                   and self.zone.is_complete(f))
        if age < self.settings.settle_seconds or not (done or age >= self.settings.stale_seconds):
            self.registry.put_landed(conn, zid, LandedRow(f.name, f.size, f.mtime, f.etag, "waiting", row.seen + 1,
                                                          None, row.first_seen, row.note))
            rep.writing.append(f.name)
            return
        rec, fresh = register_landed(conn, self.registry, self.zone, f, tick=rep.tick, now=now,
                                     settings=self.settings)
        self.registry.put_landed(conn, zid, LandedRow(f.name, f.size, f.mtime, f.etag, REGISTERED, row.seen + 1,
                                                      rec.key, row.first_seen, row.note))
        if fresh:
            rep.new.append(rec)
        else:
            rep.relinked.append(rec.key)


class _Walk:
    """One scan's walk over the folders under the prefixes, in sorted order (so that a full scan cut short
    resumes where it stopped). On an object store the next folders' listings are fetched ahead in threads."""

    def __init__(self, sc: Scanner, rep: ScanReport, now: float, full: bool, resume_after: str,
                 stop_at: float | None):
        self.sc, self.zone, self.reg, self.rep = sc, sc.zone, sc.registry, rep
        self.now, self.full, self.stop_at = now, full, stop_at
        # folders as tuples of names (the root "." is ()); None: nothing to skip
        self.resume = (tuple(resume_after.split("/")) if resume_after != "." else ()) if resume_after else None
        self.known_dirs = self.reg.dirs(self.zone.url)
        self.children: dict[str, list[str]] = {}
        for p, (parent, _) in self.known_dirs.items():
            if p:  # the root is nobody's child
                self.children.setdefault(parent, []).append(p)
        self.handled: set[str] = set()
        self.stack = sorted(self.zone.prefixes, reverse=True)
        self.pending: dict[str, Any] = {}
        self.pool: Any = None
        if self.zone.local_root is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(LISTING_THREADS)

    def close(self) -> None:
        if self.pool is not None:
            for fut in self.pending.values():
                fut.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _skip(self, rel: str) -> bool:
        """Folders this walk does not list: old date folders between full scans (``recent_days``)."""
        days = self.sc.settings.recent_days
        return bool(rel) and not self.full and bool(days) and _older_than(rel, self.now, days)

    def _prefetch(self) -> None:
        if self.pool is None:
            return
        for rel in reversed(self.stack[-LISTING_THREADS:]):
            if rel not in self.pending and not self._skip(rel) and len(self.pending) < 2 * LISTING_THREADS:
                self.pending[rel] = self.pool.submit(self.zone.list_dir, rel)

    def _list(self, rel: str, rows: dict[str, LandedRow]) -> tuple[list[LandedFile], list[str], list[str]]:
        fut = self.pending.pop(rel, None)
        if fut is not None:
            return fut.result()
        return self.zone.list_dir(rel, stat_known=None if self.full else _needs_stat(rows),
                                  known_dirs=self.known_dirs)

    def run(self) -> None:
        rep, zid, settings = self.rep, self.zone.url, self.sc.settings
        last_done = ""
        while self.stack:
            rel = self.stack.pop()
            if len(rep.new) >= settings.max_new_per_tick:
                rep.more = True
                return
            if self.stop_at is not None and last_done and time.monotonic() > self.stop_at:  # >= 1 folder a tick
                rep.more, rep.resume_point = True, last_done
                return
            if self.resume is not None:  # a resumed full scan: folders up to where the last one stopped are done
                here = tuple(rel.split("/")) if rel else ()
                if here <= self.resume:
                    if self.resume[:len(here)] == here:  # an ancestor of the resume point (or it): go down
                        with contextlib.suppress(OSError):
                            self.stack.extend(sorted(self.zone.list_dir(rel, stat_known=lambda _p: False)[1],
                                                     reverse=True))
                    continue
            if self._skip(rel):
                rep.folders_skipped += 1
                continue
            try:
                mtime_ns = self.zone.dir_mtime_ns(rel)
            except FileNotFoundError:
                with self.reg.engine.begin() as conn:
                    self.reg.drop_dir(conn, zid, rel)
                continue
            except OSError as err:
                rep.errors.append(f"{self.zone.url}/{rel}: cannot read the folder: {err.strerror or err}")
                continue
            if (not self.full and mtime_ns is not None and rel in self.known_dirs
                    and self.known_dirs[rel][1] == mtime_ns):
                rep.folders_skipped += 1  # nothing was added, removed or renamed in it since it was listed
                self.stack.extend(sorted(self.children.get(rel, []), reverse=True))
                continue
            rows = self.reg.landed_under(zid, rel)
            try:
                objs, subdirs, notes = self._list(rel, rows)
            except FileNotFoundError:
                continue
            except (OSError, TimeoutError) as err:  # a prefix the credentials cannot read, a listing timeout
                rep.errors.append(f"{self.zone.url}/{rel}: cannot list: {err.__class__.__name__}: {err}; "
                                  "retried next tick")
                continue
            if notes == [_BAG]:
                if rel not in self.zone.prefixes:
                    self.sc._folder_recording(rel, rep, self.handled, self.now, self.full)
                continue
            rep.writing += notes
            rep.folders_listed += 1
            self.stack.extend(sorted(subdirs, reverse=True))
            self._prefetch()
            probes = self.sc._probe(objs, rows, self.now)
            complete = True
            with self.reg.engine.begin() as conn:
                for f in sorted(objs, key=lambda o: o.name):
                    if len(rep.new) >= settings.max_new_per_tick:
                        rep.more, complete = True, False
                        break
                    rep.objects_seen += 1
                    self.handled.add(f.name)
                    self.sc._consider(conn, f, rows.pop(f.name, None), rep, self.now, full=self.full, listed=True,
                                      probes=probes)
                if complete:
                    for path, row in rows.items():  # in the registry, no longer in the folder
                        if row.state == "waiting":
                            rep.vanished.append(path)
                        self.handled.add(path)
                    self.reg.drop_landed(conn, zid, rows)
                    for g in set(self.children.get(rel, [])) - set(subdirs):
                        self.reg.drop_dir(conn, zid, g)
                    if mtime_ns is not None:
                        self.reg.put_dir(conn, zid, rel, mtime_ns)
                    last_done = rel or "."


def _identity(row: LandedRow) -> tuple[int, float, str]:
    return (row.size, round(row.mtime, 6), row.etag)


def register_landed(conn: Any, registry: Registry, zone: LandingZone, f: LandedFile, *, tick: int,
                    now: float, settings: Any) -> tuple[Recording, bool]:
    """Register the landed object ``f`` as a recording (the sensor's and ``robodata ingest``'s one path), in
    its robot x day partition (``settings``: the project's ``landing`` section). Returns the recording and
    whether it is new (the same object with the same identity, registered before, gives back its existing
    recording)."""
    salt = 0
    while True:
        key = recording_key(f.name, (zone.url, *f.identity), salt)
        if not registry.key_taken(conn, key):
            break
        old = registry.lookup_in(conn, key)
        if old.zone == zone.url and old.path == f.name and (old.size, round(old.mtime, 6), old.etag) == f.identity:
            return old, False
        salt += 1  # a 64-bit clash between two different objects: re-salt, never merge them
    part = fleet_partition(f.name, f.mtime, prefixes=list(settings.prefixes), start_date=settings.start_date,
                           default_robot=settings.default_robot, now=now)
    rec = Recording(key, zone.url, f.name, f.size, f.mtime, f.etag, now, tick, REGISTERED, note=part.note,
                    partition_key=part.key)
    registry.add_recording(conn, rec)
    return rec, True


def _bag_storage_name(rel: str) -> re.Pattern[str] | None:
    """The names rosbag2 gives a bag's storage files inside the bag folder ``rel`` (``<bag>_<n>.mcap|.db3``)."""
    base = rel.rsplit("/", 1)[-1]
    if not base:
        return None
    return re.compile(re.escape(base) + r"_\d+(\.mcap|\.db3)(\.zstd)?", re.IGNORECASE)


def _needs_stat(rows: dict[str, LandedRow]) -> Callable[[str], bool]:
    """Between full scans, a file already registered is not stat-ed again (only new and waiting ones are)."""
    return lambda p: p not in rows or rows[p].state != REGISTERED


def _older_than(rel: str, now: float, days: int) -> bool:
    """True when a component of ``rel`` is a date (YYYY-MM-DD) more than ``days`` days before ``now``."""
    today = _dt.datetime.fromtimestamp(now, _dt.UTC).date()
    for part in rel.split("/"):
        m = _DATE.fullmatch(part)
        if m:
            try:
                d = _dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                continue
            return (today - d).days > days
    return False


def _bag_index_pos(head: bytes) -> int | None:
    """The ``index_pos`` of a ROS 1 bag's header record (0 while rosbag is still writing), None if unreadable."""
    if not head.startswith(BAG_MAGIC) or len(head) < len(BAG_MAGIC) + 4:
        return None
    off = len(BAG_MAGIC)
    (hlen,) = struct.unpack_from("<I", head, off)
    off += 4
    end = off + hlen
    if end > len(head):
        return None
    while off + 4 <= end:
        (flen,) = struct.unpack_from("<I", head, off)
        fieldb = head[off + 4: off + 4 + flen]
        off += 4 + flen
        name, _, value = fieldb.partition(b"=")
        if name == b"index_pos" and len(value) == 8:
            return int(struct.unpack("<Q", value)[0])
    return None


def _params(fn: Callable[..., Any]) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def _etag(info: dict[str, Any]) -> str:
    for k in ("ETag", "etag", "md5Hash", "checksum", "crc32c"):
        v = info.get(k)
        if v:
            return str(v).strip('"')[:250]
    return ""


def _mtime(info: dict[str, Any]) -> float:
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
    return 0.0


def landing_status(cfg: Any, limit: int = 20) -> str:
    """``robodata landing status``: what the landing zone holds and what became of it, from the registry."""
    zone = landing_zone(cfg)
    reg = Registry(cfg.registry_url)
    landed = reg.landed_counts(zone.url)
    statuses = reg.counts()
    lines = [f"landing zone {zone.url} (prefixes: {', '.join(p or '(all)' for p in zone.prefixes)})",
             "  landed objects: " + (", ".join(f"{n} {s}" for s, n in sorted(landed.items())) or "none seen yet"),
             "  recordings:     " + (", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) or "none registered yet")]
    parts = reg.partitions()
    if parts:
        robots = {p.split("|", 1)[-1] for p in parts}
        days = sorted(p.split("|", 1)[0] for p in parts)
        lines.append(f"  partitions:     {len(parts)} robot x day ({len(robots)} robots, {days[0]} .. {days[-1]}); "
                     f"latest: " + ", ".join(f"{p} ({parts[p]})" for p in sorted(parts, reverse=True)[:5]))
    for state, title in (("waiting", "still settling"), ("refused", "refused")):
        rows = reg.landed_with_state(zone.url, state, limit)
        if rows:
            lines.append(f"  {title}:")
            lines += [f"    {r.path}" + (f"  ({r.note})" if r.note else "") for r in rows]
    for status in (DUPLICATE, FAILED, SUPERSEDED):
        recs = reg.recordings(status=[status], limit=limit)
        if recs:
            lines.append(f"  {status}:")
            lines += [f"    {r.key}  {r.partition_key or '-'}  {r.path}  {r.note}" for r in recs]
    return "\n".join(lines)
