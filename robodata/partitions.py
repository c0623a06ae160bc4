"""Recording partition keys and content digests.

A key is a safe slug of the landed path plus 16 hex digits (64 bits) of the landed object's *listing
identity* (zone, path, size, mtime, ETag): the sensor makes it without reading a byte of the recording, and
the registry's primary key makes it unique (a clash, ~1e-8 at a million recordings, is re-salted there, never
merged). Whether two recordings hold the same bytes is a separate question, answered in the ingest run by
the full 128-bit BLAKE2b :func:`content_digest`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

_SAFE = re.compile(r"[^a-z0-9_-]+")
HASH_LEN = 16
MAX_SLUG = 48


def slugify(name: str, *, keep_end: bool = False) -> str:
    """ASCII, lower case, ``[a-z0-9_-]`` only: no spaces, commas, dots runs (``...``) or control characters;
    at most MAX_SLUG characters (its start, or with ``keep_end`` its end)."""
    norm = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SAFE.sub("-", norm.lower()).strip("-_")
    slug = re.sub(r"-{2,}", "-", slug)
    slug = slug[-MAX_SLUG:] if keep_end else slug[:MAX_SLUG]
    return slug.strip("-_") or "recording"


def content_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """The 128-bit BLAKE2b digest (32 hex digits) of a file's (or a bag folder's) bytes and relative names."""
    p = Path(path)
    h = hashlib.blake2b(digest_size=16)
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def path_slug(rel: str) -> str:
    """The slug of a landed path (``robot-17/2026-12-01/run 3.mcap`` -> ``robot-17-2026-12-01-run-3-mcap``);
    a long one keeps its end, where the file's own name is."""
    return slugify(rel.strip("/").replace("/", "-"), keep_end=True)


def recording_key(rel: str, identity: tuple[object, ...], salt: int = 0) -> str:
    """The partition key of a landed object at ``rel`` whose listing identity is ``identity``, e.g.
    ``robot-17-2026-12-01-run-3-mcap-3fa2c1d09b8e7a65``. ``salt`` > 0 after a clash in the registry."""
    h = hashlib.blake2b(digest_size=HASH_LEN // 2)
    h.update(repr((rel, *identity, salt)).encode())
    return f"{path_slug(rel)}-{h.hexdigest()}"


def is_valid_key(key: str) -> bool:
    return bool(re.fullmatch(rf"[a-z0-9][a-z0-9_-]*-[0-9a-f]{{{HASH_LEN}}}", key)) and "..." not in key


# ---- the fleet partition: robot x day ------------------------------------------------------------------------
#
# A Dagster partition is one robot's recordings of one UTC day (``2026-12-01|robot-17``), not one recording:
# 100 robots for a year is 36,500 partitions per asset, inside Dagster's guidance of ~100,000, where one
# partition per recording (tens of thousands a month) is not. Recordings are rows of the registry, each with
# its own status and per-tier output versions; a tier's run for a partition does only the recordings whose
# inputs changed. Decided at registration, from the landed path only (never the content), and never again.

_ROBOT_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_DAY = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_BAG_NAME_DATE = re.compile(r"(?:^|[^0-9])(\d{4})_(\d{2})_(\d{2})-\d{2}_\d{2}_\d{2}")  # rosbag2's default names
PARTITION_DIMS = ("date", "robot")  # Dagster orders a multi-partition key's dimensions by name


@dataclass(frozen=True)
class FleetPartition:
    robot: str
    date: str  # YYYY-MM-DD (UTC)
    note: str = ""

    @property
    def key(self) -> str:
        """The Dagster multi-partition key (``dg.MultiPartitionKey({"date": ..., "robot": ...})`` as a string)."""
        return f"{self.date}|{self.robot}"


def robot_name(part: str) -> str:
    """A folder name as a robot partition key: letters, digits, ``_.-``; at most 64 characters."""
    return _ROBOT_SAFE.sub("-", part).strip("-.")[:64] or "robot"


def _as_date(y: str, m: str, d: str) -> _dt.date | None:
    try:
        return _dt.date(int(y), int(m), int(d))
    except ValueError:
        return None


def _path_date(folders: list[str], name: str) -> _dt.date | None:
    """A date named by the path: a ``YYYY-MM-DD`` / ``YYYYMMDD`` folder, ``YYYY/MM/DD`` folders, or rosbag2's
    default ``rosbag2_YYYY_MM_DD-HH_MM_SS`` name."""
    for i, part in enumerate(folders):
        m = _DAY.fullmatch(part)
        if m and (d := _as_date(*m.groups())):
            return d
        if re.fullmatch(r"\d{4}", part) and i + 2 < len(folders):
            mm, dd = folders[i + 1], folders[i + 2]
            if re.fullmatch(r"\d{1,2}", mm) and re.fullmatch(r"\d{1,2}", dd) and (d := _as_date(part, mm, dd)):
                return d
    m = _BAG_NAME_DATE.search(name)
    return _as_date(*m.groups()) if m else None


def _is_date_part(part: str) -> bool:
    return bool(_DAY.fullmatch(part) or re.fullmatch(r"\d{1,4}", part))


def fleet_partition(rel: str, mtime: float, *, prefixes: list[str], start_date: str, default_robot: str,
                    now: float) -> FleetPartition:
    """The robot x day partition of a recording landed at ``rel`` (inside the zone; a bag folder may end in /).

    - robot: the first folder under the watched prefix that is not a date (``robot-17/2026-12-01/a.mcap`` and
      ``2026-12-01/robot-17/a.mcap`` are both robot-17); ``default_robot`` for a file directly under it;
    - date: the one the path names, else the day the file was last written (UTC);
    - a date before ``start_date`` or after tomorrow (a robot's clock) cannot be a partition of the daily
      dimension: such a recording is filed under the day it was registered, and the note says so.
    """
    rel = rel.strip("/")
    under = rel
    for p in sorted((p for p in prefixes if p), key=len, reverse=True):
        if rel == p or rel.startswith(p + "/"):
            under = rel[len(p):].lstrip("/")
            break
    parts = under.split("/")
    folders, name = parts[:-1], parts[-1]
    robot = next((robot_name(f) for f in folders if not _is_date_part(f)), robot_name(default_robot))
    day = _path_date(folders, name)
    source = "path"
    if day is None:
        day, source = _dt.datetime.fromtimestamp(mtime, _dt.UTC).date(), "mtime"
    today = _dt.datetime.fromtimestamp(now, _dt.UTC).date()
    first = _dt.date.fromisoformat(start_date)
    note = ""
    if day < first or day > today + _dt.timedelta(days=1):
        note = (f"dated {day.isoformat()} by its {source}, outside the partitions "
                f"({start_date} .. tomorrow; landing.start_date): filed under {today.isoformat()}, the day it landed")
        day = today
    return FleetPartition(robot, day.isoformat(), note)
