"""The recording registry: what the landing zone holds, which recordings it became, and their content.

One SQL database (SQLite in the project home by default, PostgreSQL in production: the same SQLAlchemy Core
statements either way), so that the sensor's state is a table, not a cursor that grows with every file ever
landed. Four tables:

- ``landed``: one row per landed object (a file, or a ROS 2 bag folder with a trailing ``/``) the sensor has
  seen, with its listing identity (size, mtime, ETag) and state: ``waiting`` (seen, not yet settled),
  ``registered`` (it became the recording ``key``), ``refused`` (a link, a special file: never taken);
- ``recordings``: one row per recording partition: where it landed, its listing identity, the tick that
  registered it, and its status (``registered`` -> ``ingested`` / ``failed`` / ``duplicate`` / ``superseded``);
- ``contents``: the 128-bit content digest -> the recording that owns those bytes. Inserting is the claim:
  the primary key decides, in one statement, which of two copies landing together is the original;
- ``dirs``: each listed folder's mtime, so that a local tick re-lists only folders that changed;
- ``outputs``: per tier and recording, the version of the inputs it was made from, the version of what it
  wrote, and its status (published / quarantined / failed): a tier's run for a robot x day partition redoes
  only the recordings whose inputs changed, and the release reads each shard's version from here.

A tick's cost is then a lookup per folder and per new object, and its memory one folder's listing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from robodata.errors import RobodataError

_MD = sa.MetaData()

LANDED = sa.Table(
    "robodata_landed", _MD,
    sa.Column("zone", sa.String(1024), primary_key=True),
    sa.Column("path", sa.String(2048), primary_key=True),
    sa.Column("parent", sa.String(2048), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime", sa.Float, nullable=False),
    sa.Column("etag", sa.String(256), nullable=False, default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("seen", sa.Integer, nullable=False, default=1),
    sa.Column("key", sa.String(256)),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("note", sa.String(1024), nullable=False, default=""),
    sa.Index("robodata_landed_parent", "zone", "parent"),
    sa.Index("robodata_landed_state", "zone", "state"),
)
RECORDINGS = sa.Table(
    "robodata_recordings", _MD,
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("zone", sa.String(1024), nullable=False),
    sa.Column("path", sa.String(2048), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime", sa.Float, nullable=False),
    sa.Column("etag", sa.String(256), nullable=False, default=""),
    sa.Column("registered_at", sa.Float, nullable=False),
    sa.Column("tick", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(64)),
    sa.Column("duplicate_of", sa.String(256)),
    sa.Column("note", sa.String(2048), nullable=False, default=""),
    sa.Column("partition_key", sa.String(300), nullable=False, default=""),  # robot x day: "2026-12-01|robot-17"
    sa.Index("robodata_recordings_tick", "tick"),
    sa.Index("robodata_recordings_partition", "partition_key"),
    sa.Index("robodata_recordings_status", "status"),
)
CONTENTS = sa.Table(
    "robodata_contents", _MD,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(256), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)
OUTPUTS = sa.Table(
    "robodata_outputs", _MD,
    sa.Column("tier", sa.String(256), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("partition_key", sa.String(300), nullable=False),
    sa.Column("input_version", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("path", sa.String(2048), nullable=False, default=""),
    sa.Column("checks", sa.String(4096), nullable=False, default="{}"),
    sa.Column("summary", sa.String(4096), nullable=False, default="{}"),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("note", sa.String(2048), nullable=False, default=""),
    sa.Index("robodata_outputs_partition", "tier", "partition_key"),
)
DIRS = sa.Table(
    "robodata_dirs", _MD,
    sa.Column("zone", sa.String(1024), primary_key=True),
    sa.Column("path", sa.String(2048), primary_key=True),
    sa.Column("parent", sa.String(2048), nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
)

# A tier's output of one recording.
PUBLISHED, QUARANTINED = "published", "quarantined"

# Statuses a recording can have; the release takes only "ingested" ones.
REGISTERED, INGESTED, FAILED, DUPLICATE, SUPERSEDED = "registered", "ingested", "failed", "duplicate", "superseded"
_TAKEOVER = (FAILED, SUPERSEDED)  # a content owner in these states yields its bytes to the next copy


class RegistryError(RobodataError):
    """The registry cannot answer (unknown recording, content collision, unreachable database)."""


@dataclass
class Recording:
    key: str
    zone: str
    path: str
    size: int
    mtime: float
    etag: str
    registered_at: float
    tick: int
    status: str
    digest: str | None = None
    duplicate_of: str | None = None
    note: str = ""
    partition_key: str = ""

    @property
    def name(self) -> str:
        """The landed object's path inside the zone (a bag folder without its trailing slash)."""
        return self.path.rstrip("/")

    @property
    def url(self) -> str:
        return f"{self.zone.rstrip('/')}/{self.name}"


@dataclass
class Claim:
    """Who owns a recording's bytes after :meth:`Registry.claim_content`."""

    owner: str
    size: int
    taken_over: bool = False

    def is_mine(self, key: str) -> bool:
        return self.owner == key


@dataclass
class Output:
    """One tier's output of one recording."""

    tier: str
    key: str
    partition_key: str
    input_version: str
    version: str
    status: str
    path: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0
    note: str = ""


@dataclass
class LandedRow:
    path: str
    size: int
    mtime: float
    etag: str
    state: str
    seen: int
    key: str | None
    first_seen: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        eng = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:  # many writers (sensor, Ray workers): WAL
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return eng
    return sa.create_engine(url, pool_pre_ping=True)


_ENGINES: dict[str, sa.Engine] = {}


class Registry:
    """The recording registry at ``url`` (a SQLAlchemy URL); tables are created on first use."""

    def __init__(self, url: str):
        self.url = url
        eng = _ENGINES.get(url)
        if eng is None:
            try:
                eng = _engine(url)
                _MD.create_all(eng)
                _migrate(eng)
            except sa.exc.SQLAlchemyError as err:
                raise RegistryError(f"recording registry {_redact(url)}: {err.__class__.__name__}: "
                                    f"{str(err).splitlines()[0]}") from err
            _ENGINES[url] = eng
        self.engine = eng

    # ---- landed objects (the sensor's state) ---------------------------------------------------------------
    def landed_under(self, zone: str, parent: str) -> dict[str, LandedRow]:
        """The rows of objects directly inside folder ``parent`` ('' for the top)."""
        q = sa.select(LANDED).where(LANDED.c.zone == zone, LANDED.c.parent == parent)
        with self.engine.connect() as c:
            return {r.path: _landed(r) for r in c.execute(q)}

    def landed_rows(self, zone: str, paths: Sequence[str]) -> dict[str, LandedRow]:
        out: dict[str, LandedRow] = {}
        with self.engine.connect() as c:
            for i in range(0, len(paths), 500):
                q = sa.select(LANDED).where(LANDED.c.zone == zone, LANDED.c.path.in_(paths[i:i + 500]))
                out.update({r.path: _landed(r) for r in c.execute(q)})
        return out

    def waiting(self, zone: str, limit: int = 100_000) -> list[LandedRow]:
        q = sa.select(LANDED).where(LANDED.c.zone == zone, LANDED.c.state == "waiting").limit(limit)
        with self.engine.connect() as c:
            return [_landed(r) for r in c.execute(q)]

    def put_landed(self, conn: sa.Connection, zone: str, row: LandedRow) -> None:
        parent = row.path.rstrip("/").rpartition("/")[0]
        values = dict(parent=parent, size=row.size, mtime=row.mtime, etag=row.etag, state=row.state, seen=row.seen,
                      key=row.key, first_seen=row.first_seen, note=row.note[:1000])
        done = conn.execute(sa.update(LANDED).where(LANDED.c.zone == zone, LANDED.c.path == row.path)
                            .values(**values))
        if done.rowcount == 0:
            conn.execute(sa.insert(LANDED).values(zone=zone, path=row.path, **values))

    def drop_landed(self, conn: sa.Connection, zone: str, paths: Iterable[str]) -> None:
        paths = list(paths)
        for i in range(0, len(paths), 500):
            conn.execute(sa.delete(LANDED).where(LANDED.c.zone == zone, LANDED.c.path.in_(paths[i:i + 500])))

    # ---- folders --------------------------------------------------------------------------------------------
    def dirs(self, zone: str) -> dict[str, tuple[str, int]]:
        """Every listed folder of ``zone``: path -> (parent, mtime_ns). Bounded by folders, not files."""
        q = sa.select(DIRS.c.path, DIRS.c.parent, DIRS.c.mtime_ns).where(DIRS.c.zone == zone)
        with self.engine.connect() as c:
            return {r.path: (r.parent, r.mtime_ns) for r in c.execute(q)}

    def put_dir(self, conn: sa.Connection, zone: str, path: str, mtime_ns: int) -> None:
        parent = path.rpartition("/")[0] if path else ""
        done = conn.execute(sa.update(DIRS).where(DIRS.c.zone == zone, DIRS.c.path == path)
                            .values(mtime_ns=mtime_ns, parent=parent))
        if done.rowcount == 0:
            conn.execute(sa.insert(DIRS).values(zone=zone, path=path, parent=parent, mtime_ns=mtime_ns))

    def drop_dir(self, conn: sa.Connection, zone: str, path: str) -> None:
        conn.execute(sa.delete(DIRS).where(DIRS.c.zone == zone, sa.or_(DIRS.c.path == path,
                                                                       DIRS.c.path.startswith(path + "/"))))

    # ---- recordings -------------------------------------------------------------------------------------------
    def add_recording(self, conn: sa.Connection, rec: Recording) -> None:
        conn.execute(sa.insert(RECORDINGS).values(**_rec_values(rec)))

    def key_taken(self, conn: sa.Connection, key: str) -> bool:
        return conn.execute(sa.select(RECORDINGS.c.key).where(RECORDINGS.c.key == key)).first() is not None

    def lookup_in(self, conn: sa.Connection, key: str) -> Recording:
        r = conn.execute(sa.select(RECORDINGS).where(RECORDINGS.c.key == key)).first()
        if r is None:
            raise RegistryError(f"recording {key!r} is not registered in {_redact(self.url)}; land the file again")
        return Recording(**r._asdict())

    def lookup(self, key: str) -> Recording:
        with self.engine.connect() as c:
            r = c.execute(sa.select(RECORDINGS).where(RECORDINGS.c.key == key)).first()
        if r is None:
            raise RegistryError(f"recording {key!r} is not registered in {_redact(self.url)}; land the file again")
        return Recording(**r._asdict())

    def recordings(self, keys: Sequence[str] | None = None, status: Sequence[str] | None = None,
                   limit: int | None = None) -> list[Recording]:
        q = sa.select(RECORDINGS).order_by(RECORDINGS.c.registered_at, RECORDINGS.c.key)
        if status:
            q = q.where(RECORDINGS.c.status.in_(list(status)))
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as c:
            if keys is None:
                return [Recording(**r._asdict()) for r in c.execute(q)]
            out = []
            keys = list(keys)
            for i in range(0, len(keys), 500):
                out += [Recording(**r._asdict()) for r in c.execute(q.where(RECORDINGS.c.key.in_(keys[i:i + 500])))]
            return out

    def counts(self) -> dict[str, int]:
        q = sa.select(RECORDINGS.c.status, sa.func.count()).group_by(RECORDINGS.c.status)
        with self.engine.connect() as c:
            return {s: int(n) for s, n in c.execute(q)}

    def landed_counts(self, zone: str) -> dict[str, int]:
        q = sa.select(LANDED.c.state, sa.func.count()).where(LANDED.c.zone == zone).group_by(LANDED.c.state)
        with self.engine.connect() as c:
            return {s: int(n) for s, n in c.execute(q)}

    def landed_with_state(self, zone: str, state: str, limit: int = 50) -> list[LandedRow]:
        q = sa.select(LANDED).where(LANDED.c.zone == zone, LANDED.c.state == state).order_by(LANDED.c.path).limit(limit)
        with self.engine.connect() as c:
            return [_landed(r) for r in c.execute(q)]

    def last_tick(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.max(RECORDINGS.c.tick))).scalar() or 0)

    def registered_since(self, tick: int) -> list[Recording]:
        """Recordings registered by ticks after ``tick`` (a tick whose result Dagster never stored)."""
        q = sa.select(RECORDINGS).where(RECORDINGS.c.tick > tick, RECORDINGS.c.status == REGISTERED)
        with self.engine.connect() as c:
            return [Recording(**r._asdict()) for r in c.execute(q)]

    def set_status(self, key: str, status: str, *, note: str = "", duplicate_of: str | None = None,
                   digest: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "note": note[:2000]}
        if duplicate_of is not None:
            values["duplicate_of"] = duplicate_of
        if digest is not None:
            values["digest"] = digest
        with self.engine.begin() as c:
            c.execute(sa.update(RECORDINGS).where(RECORDINGS.c.key == key).values(**values))

    def supersede(self, conn: sa.Connection, key: str, by: str) -> None:
        conn.execute(sa.update(RECORDINGS).where(RECORDINGS.c.key == key).values(
            status=SUPERSEDED, note=f"the landed content changed; now recording {by}"))

    def in_partition(self, partition: str, status: Sequence[str] | None = None) -> list[Recording]:
        """The recordings of one robot x day partition, oldest first."""
        q = (sa.select(RECORDINGS).where(RECORDINGS.c.partition_key == partition)
             .order_by(RECORDINGS.c.registered_at, RECORDINGS.c.key))
        if status:
            q = q.where(RECORDINGS.c.status.in_(list(status)))
        with self.engine.connect() as c:
            return [Recording(**r._asdict()) for r in c.execute(q)]

    def partitions(self, status: Sequence[str] | None = None) -> dict[str, int]:
        """Every partition that holds recordings (with ``status``): partition -> how many."""
        q = sa.select(RECORDINGS.c.partition_key, sa.func.count()).group_by(RECORDINGS.c.partition_key)
        if status:
            q = q.where(RECORDINGS.c.status.in_(list(status)))
        with self.engine.connect() as c:
            return {p: int(n) for p, n in c.execute(q) if p}

    # ---- tier outputs -----------------------------------------------------------------------------------------
    def outputs(self, tier: str, keys: Sequence[str] | None = None, *, partition: str | None = None
                ) -> dict[str, Output]:
        """``tier``'s outputs: of ``keys``, of one ``partition``, or all of them; recording key -> output."""
        q = sa.select(OUTPUTS).where(OUTPUTS.c.tier == tier)
        if partition is not None:
            q = q.where(OUTPUTS.c.partition_key == partition)
        with self.engine.connect() as c:
            if keys is None:
                return {r.key: _output(r) for r in c.execute(q)}
            out: dict[str, Output] = {}
            keys = list(keys)
            for i in range(0, len(keys), 500):
                out.update({r.key: _output(r) for r in c.execute(q.where(OUTPUTS.c.key.in_(keys[i:i + 500])))})
            return out

    def put_output(self, out: Output) -> None:
        values = dict(partition_key=out.partition_key, input_version=out.input_version, version=out.version,
                      status=out.status, path=out.path[:2000], checks=json.dumps(out.checks)[:4000],
                      summary=_short_json(out.summary), updated_at=out.updated_at or time.time(),
                      note=out.note[:2000])
        with self.engine.begin() as c:
            done = c.execute(sa.update(OUTPUTS).where(OUTPUTS.c.tier == out.tier, OUTPUTS.c.key == out.key)
                             .values(**values))
            if done.rowcount == 0:
                c.execute(sa.insert(OUTPUTS).values(tier=out.tier, key=out.key, **values))

    # ---- content ----------------------------------------------------------------------------------------------
    def claim_content(self, key: str, digest: str, size: int) -> Claim:
        """Claim the bytes with ``digest`` for recording ``key``: the first claim wins (the primary key decides
        between two copies racing); an owner that failed or was superseded yields to the next copy."""
        with self.engine.begin() as c:
            c.execute(sa.update(RECORDINGS).where(RECORDINGS.c.key == key).values(digest=digest))
            try:
                with c.begin_nested():
                    c.execute(sa.insert(CONTENTS).values(digest=digest, key=key, size=size))
                return Claim(key, size)
            except sa.exc.IntegrityError:
                pass
            row = c.execute(sa.select(CONTENTS).where(CONTENTS.c.digest == digest)).one()
            if row.key == key:
                return Claim(key, int(row.size))
            owner = c.execute(sa.select(RECORDINGS.c.status).where(RECORDINGS.c.key == row.key)).first()
            if owner is None or owner.status in _TAKEOVER:
                c.execute(sa.update(CONTENTS).where(CONTENTS.c.digest == digest, CONTENTS.c.key == row.key)
                          .values(key=key, size=size))
                return Claim(key, size, taken_over=True)
            return Claim(row.key, int(row.size))


def _migrate(eng: sa.Engine) -> None:
    """Columns added since a registry was created (``create_all`` makes missing tables, not columns)."""
    have = {c["name"] for c in sa.inspect(eng).get_columns(RECORDINGS.name)}
    if "partition_key" not in have:
        with eng.begin() as c:
            c.execute(sa.text(f"ALTER TABLE {RECORDINGS.name} ADD COLUMN partition_key VARCHAR(300) "
                              "NOT NULL DEFAULT ''"))


def _output(r: Any) -> Output:
    return Output(r.tier, r.key, r.partition_key, r.input_version, r.version, r.status, r.path or "",
                  json.loads(r.checks or "{}"), json.loads(r.summary or "{}"), float(r.updated_at), r.note or "")


def _landed(r: Any) -> LandedRow:
    return LandedRow(r.path, int(r.size), float(r.mtime), r.etag or "", r.state, int(r.seen), r.key,
                     float(r.first_seen), r.note or "")


def _rec_values(rec: Recording) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in ("key", "zone", "path", "size", "mtime", "etag", "registered_at", "tick",
                                         "status", "digest", "duplicate_of", "note", "partition_key")}


def _short_json(doc: dict[str, Any], limit: int = 4000) -> str:
    """``doc`` as JSON within ``limit`` characters: its scalar entries first, long values dropped."""
    text = json.dumps(doc, default=str)
    if len(text) <= limit:
        return text
    small = {k: v for k, v in doc.items() if isinstance(v, (int, float, str, bool)) and len(str(v)) < 200}
    return json.dumps(small, default=str)[:limit] if len(json.dumps(small, default=str)) <= limit else "{}"


def _redact(url: str) -> str:
    """A database URL without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never let redaction itself fail an error message
        return url.split("@")[-1]
