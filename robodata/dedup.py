"""Duplicate episodes: exact copies and re-recorded / re-exported near copies, found through an index, not all-pairs.

Each episode is reduced once to an :class:`EpisodeSignature`:

- ``digest``: a 128-bit BLAKE2b of the decoded content (state and action arrays as float32, timestamps relative to
  the first, in 0.1 ms, and the sampled camera frames' pixels), so the file name, the container and the chunking
  do not matter: the same episode ingested twice, or copied into another store, has the same digest;
- ``trajectory``: the low-dim trajectory (state then action dimensions) resampled to ``points`` samples over
  normalised time ``[0, 1]``: a re-recording at another rate, with another clock offset or length, lands on the
  same grid;
- ``frames``: a 64-bit DCT perceptual hash (pHash) of ``frames_per_camera`` frames per camera at fixed normalised
  times; re-encoding, resizing or a small colour change moves a few bits, another scene moves about half of them.

The :class:`DedupIndex` (SQLite or PostgreSQL through SQLAlchemy, like the recording registry) holds one row per
episode (id, source: a recording key or release id, digest, trajectory, frame hashes) and its band keys:

- trajectory bands are Euclidean LSH (p-stable random projections, ``floor((a . x + b) / w)``, ``lsh_rows``
  projections per band, ``lsh_bands`` bands) of the trajectory smoothed to ``key_points`` samples and divided by
  the index's per-dimension scale (the spread of each dimension over the first episodes the index saw, kept in
  the index so every later key is comparable): two episodes within the tolerance share a band with probability
  ~1, two different demonstrations almost never;
- frame bands are bit-sampling LSH for the Hamming distance: ``frame_bands`` fixed random subsets of
  ``frame_band_bits`` of a camera's ``frames_per_camera x 64`` hash bits (copies 4 bits per frame apart share a
  band with probability > 0.99; frames of the same static scene that differ in a quarter of their bits, ~4 %).

A query looks its keys up (one indexed SQL lookup per batch), and verifies each candidate with a real distance:
the **aligned RMSE** (the minimum over time shifts of up to ``max_shift`` and rate changes of up to
``max_rate_change`` of the RMS difference of the scaled trajectories on their overlap) against ``tolerance``;
frames by the Hamming distance of the hashes slot by slot. A frames match alone is believed when the
trajectories cannot be compared (another state/action layout: a re-export with other features) or are within
``frames_trajectory_tolerance``; a static camera sees the same scene in every demonstration, so frames that
match while the robot clearly moved differently are not a duplicate.

:func:`dedup_episodes` checks a batch (a recording, a release) against the index and against itself, in order:
the later of two copies is the duplicate, the earlier (or the one in an earlier release) its twin. The policy
(:class:`DedupConfig`) excludes none, the exact copies, or every duplicate; the report always lists each with
its twin, distance and whether it was excluded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from robodata.errors import RobodataError

log = logging.getLogger(__name__)

EXACT = "exact"
NEAR_TRAJECTORY = "near-trajectory"
NEAR_FRAMES = "near-frames"
# The same motion copied exactly with other images (an augmented variant of a demo): reported, not a duplicate.
VISUAL_VARIANT = "visual-variant"
KINDS = (EXACT, NEAR_TRAJECTORY, NEAR_FRAMES)
_SAME_MOTION = 1e-6  # aligned RMSE (in spreads) at or below which the low-dim data is the same arrays

HASH_BITS = 64
_PHASH_SIZE = 32  # pHash: the frame is reduced to 32x32 grey, the 8x8 lowest DCT frequencies give the 64 bits


class DedupError(RobodataError):
    """Episodes or a dedup index cannot be read (the message names the file)."""


class DedupConfig(BaseModel):
    """How duplicates are found and what is done with them."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["report", "exclude_exact", "exclude_all"] = Field(
        "report", description="report only; exclude exact copies from the release; or exclude every duplicate")
    points: int = Field(32, ge=8, description="trajectory samples over normalised time (verification)")
    key_points: int = Field(8, ge=2, description="samples the LSH keys are made from (a smoothed trajectory)")
    tolerance: float = Field(0.2, gt=0, description="aligned RMSE, in units of each dimension's spread, "
                                                    "below which two trajectories are the same demonstration")
    max_shift: float = Field(0.1, ge=0, lt=0.5, description="time shift tried in alignment, fraction of the episode")
    max_rate_change: float = Field(0.1, ge=0, lt=0.5, description="rate change tried in alignment (fraction)")
    trim_dimensions: float = Field(0.1, ge=0, lt=0.5, description="share of dimensions with the largest error "
                                                                  "left out of the distance (noise-like signals)")
    lsh_bands: int = Field(32, ge=1)
    lsh_rows: int = Field(8, ge=1)
    lsh_width: float = Field(0.5, gt=0, description="LSH bucket width in the same units as the tolerance")
    frames_per_camera: int = Field(4, ge=0, description="frames hashed per camera (0: low-dim only)")
    frame_bands: int = Field(24, ge=1, description="frame-hash bands (bit samples) per camera")
    frame_band_bits: int = Field(24, ge=4, le=HASH_BITS, description="bits per frame-hash band")
    frame_hamming: int = Field(6, ge=0, le=HASH_BITS, description="bits two frame hashes may differ by")
    frame_match_fraction: float = Field(0.75, gt=0, le=1, description="share of a camera's frames that must match")
    frames_trajectory_tolerance: float = Field(
        0.5, gt=0, description="a frames match counts only if the trajectories are incomparable or within this")
    max_duration_ratio: float = Field(1.5, ge=1, description="longer / shorter duration above which two "
                                                             "episodes are not the same demonstration")
    seed: int = Field(0, description="seed of the LSH projections (part of the index: keep it)")
    index: str | None = Field(None, description="the releases' persistent index: a SQLAlchemy URL (PostgreSQL in "
                              "production) or a path; default lerobot/dedup-<settings>.sqlite in a local store, "
                              "else in the project home")

    def verify_settings(self) -> dict[str, Any]:
        """What decides whether two signatures are duplicates (the pairs an index stores were verified so)."""
        return self.model_dump(exclude={"policy", "index"})

    def settings_digest(self) -> str:
        return hashlib.blake2b(json.dumps(self.verify_settings(), sort_keys=True).encode(), digest_size=4).hexdigest()

    def excludes(self, kind: str) -> bool:
        return self.policy == "exclude_all" or (self.policy == "exclude_exact" and kind == EXACT)


# -- signatures ---------------------------------------------------------------------------------------------


@dataclass
class EpisodeSignature:
    """What dedup keeps of one episode (computed once, from the decoded arrays)."""

    episode_id: str
    source: str
    digest: str
    layout: str  # "state<S>+action<A>": trajectories of different layouts are never compared
    length: int
    duration: float
    trajectory: np.ndarray  # (points, S + A) float32 over normalised time
    frames: dict[str, list[int]] = field(default_factory=dict)  # camera -> pHash per sampled frame

    @classmethod
    def compute(
        cls,
        episode_id: str,
        source: str,
        state: np.ndarray,
        action: np.ndarray | None,
        timestamps: np.ndarray | None = None,
        frames: Mapping[str, Sequence[np.ndarray]] | None = None,
        config: DedupConfig | None = None,
        *,
        hashed_frames: tuple[dict[str, list[int]], str] | None = None,
    ) -> EpisodeSignature:
        """From an episode's ``(T, S)`` state, ``(T, A)`` action, ``(T,)`` timestamps (seconds; default frame
        index) and, per camera, the frames sampled at :func:`frame_times` (uint8 ``(H, W, 3)``), or instead
        ``hashed_frames``: what :func:`hash_frames` made of those frames where they were read (the Python API
        hashes them at ingest, before the episode's arrays travel without its images)."""
        cfg = config or DedupConfig()
        s = _rows(state, "state")
        n = len(s)
        a = _rows(action, "action") if action is not None else np.zeros((n, 0), np.float32)
        if len(a) != n:
            raise DedupError(f"episode {episode_id} of {source}: {n} state rows but {len(a)} action rows")
        ts = np.arange(n, dtype=np.float64) if timestamps is None else np.asarray(timestamps, np.float64).reshape(-1)
        if len(ts) != n:
            raise DedupError(f"episode {episode_id} of {source}: {n} rows but {len(ts)} timestamps")
        h = hashlib.blake2b(digest_size=16)
        for arr in (s, a):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr, "<f4").tobytes())
        h.update(np.round((ts - (ts[0] if n else 0.0)) * 1e4).astype("<i8").tobytes())
        hashes, frames_digest = hashed_frames if hashed_frames is not None else hash_frames(frames or {})
        h.update(frames_digest.encode())
        traj = resample(np.concatenate([s, a], axis=1), ts, cfg.points)
        duration = float(ts[-1] - ts[0]) if n > 1 else 0.0
        return cls(str(episode_id), str(source), h.hexdigest(), f"state{s.shape[1]}+action{a.shape[1]}", n,
                   duration, traj, hashes)


    def to_json(self) -> dict[str, Any]:
        return {"episode_id": self.episode_id, "source": self.source, "digest": self.digest, "layout": self.layout,
                "length": self.length, "duration": self.duration, "trajectory": self.trajectory.tolist(),
                "frames": self.frames}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EpisodeSignature:
        return cls(str(d["episode_id"]), str(d["source"]), str(d["digest"]), str(d["layout"]), int(d["length"]),
                   float(d["duration"]), np.asarray(d["trajectory"], np.float32).reshape(len(d["trajectory"]), -1),
                   {str(k): [int(x) for x in v] for k, v in (d.get("frames") or {}).items()})


def hash_frames(frames: Mapping[str, Sequence[np.ndarray]]) -> tuple[dict[str, list[int]], str]:
    """Per camera the pHash of each sampled frame, and a digest of the frames' bytes (part of the exact digest:
    an augmented variant has the same state and action but other images)."""
    h = hashlib.blake2b(digest_size=16)
    hashes: dict[str, list[int]] = {}
    for cam in sorted(frames):
        imgs = list(frames[cam])
        for img in imgs:
            h.update(np.ascontiguousarray(img).tobytes())
        hashes[_camera_name(cam)] = [phash(img) for img in imgs]
    return hashes, (h.hexdigest() if hashes else "")


def sampled_frames(es: Any, demo: str, k: int, start: int = 0, stop: int | None = None) -> dict[str, list[np.ndarray]]:
    """The ``k`` frames per camera that a signature hashes (:func:`frame_times`) of frames ``[start, stop)`` of
    ``demo`` in an open EpisodeStore."""
    stop = es.num_samples(demo) if stop is None else stop
    out = {}
    for cam in (c.name for c in es.schema.cameras):
        if es.has(demo, cam):
            out[cam] = [es.feature(demo, cam, start + i, start + i + 1)[0] for i in frame_times(stop - start, k)]
    return out


def _rows(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x, np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return arr.reshape(len(arr), -1)


def _camera_name(key: str) -> str:
    from robodata.lerobot.layout import IMAGES_PREFIX

    return key[len(IMAGES_PREFIX):] if key.startswith(IMAGES_PREFIX) else key


def resample(values: np.ndarray, timestamps: np.ndarray, points: int) -> np.ndarray:
    """``(T, D)`` values on ``points`` equal bins of normalised time: each the mean of the samples in the bin
    (a low-pass: a re-recording's jitter and rate do not matter), linear interpolation where a bin holds none."""
    v = np.asarray(values, np.float64)
    n = len(v)
    if n == 0:
        return np.zeros((points, v.shape[1] if v.ndim == 2 else 0), np.float32)
    ts = np.asarray(timestamps, np.float64)
    span = ts[-1] - ts[0]
    u = (ts - ts[0]) / span if span > 0 else np.linspace(0.0, 1.0, n)
    u = np.maximum.accumulate(u)  # a clock that steps back is read as standing still
    centres = (np.arange(points) + 0.5) / points
    out = np.empty((points, v.shape[1]), np.float64)
    for d in range(v.shape[1]):
        out[:, d] = np.interp(centres, u, v[:, d])
    b = np.minimum((u * points).astype(np.int64), points - 1)
    cnt = np.bincount(b, minlength=points)
    full = cnt > 0
    if full.any():
        sums = np.zeros((points, v.shape[1]))
        np.add.at(sums, b, v)
        out[full] = sums[full] / cnt[full, None]
    return out.astype(np.float32)


def frame_times(n: int, k: int) -> list[int]:
    """The frame indices hashed in an episode of ``n`` frames: ``k`` at fixed normalised times."""
    if n <= 0 or k <= 0:
        return []
    return [min(n - 1, int(round((j + 0.5) / k * (n - 1)))) for j in range(k)]


_DCT_CACHE: dict[int, np.ndarray] = {}


def _dct_matrix(n: int) -> np.ndarray:
    m = _DCT_CACHE.get(n)
    if m is None:
        k = np.arange(n).reshape(-1, 1)
        i = np.arange(n).reshape(1, -1)
        m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
        m[0] /= math.sqrt(2.0)
        _DCT_CACHE[n] = m
    return m


def phash(img: np.ndarray) -> int:
    """64-bit perceptual hash (the pHash of ``imagehash``: grey 32x32, 2-D DCT-II, 8x8 lowest frequencies
    compared with their median), in NumPy + Pillow, so dedup needs no extra dependency."""
    from PIL import Image

    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    im = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("L")
    small = np.asarray(im.resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS), np.float64)
    d = _dct_matrix(_PHASH_SIZE)
    low = (d @ small @ d.T)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# -- readers ------------------------------------------------------------------------------------------------


def store_signatures(path: str | os.PathLike[str], config: DedupConfig | None = None, source: str | None = None,
                     episodes: Sequence[str] | None = None) -> Iterator[EpisodeSignature]:
    """Signatures of the demos of an Isaac Lab HDF5 episode store (robodata's canonical episodes)."""
    from robodata.formats.isaaclab import EpisodeStore, EpisodeStoreError
    from robodata.formats.isaaclab_layout import ACTIONS

    cfg = config or DedupConfig()
    try:
        es = EpisodeStore(path)
    except EpisodeStoreError as err:
        raise DedupError(str(err)) from err
    src = source or Path(path).stem
    with es:
        states = es.schema.of_role("state")
        for demo in episodes if episodes is not None else es.demo_names:
            n = es.num_samples(demo)
            # the state as the LeRobot writer exports it (the state features; else the flat sim state), so that an
            # episode and its release compare
            if states and all(es.has(demo, f.name) for f in states):
                state = np.concatenate([es.feature(demo, f.name).reshape(n, -1) for f in states], axis=1)
            else:
                state = es.state_vector(demo)
            yield EpisodeSignature.compute(demo, src, state, es.group(demo)[ACTIONS][()],
                                           es.timestamps(demo), sampled_frames(es, demo, cfg.frames_per_camera), cfg)


def lerobot_signatures(root: str | os.PathLike[str], config: DedupConfig | None = None, source: str | None = None,
                       episodes: Sequence[int] | None = None) -> Iterator[EpisodeSignature]:
    """Signatures of the episodes of a LeRobot dataset (v2.x or v3.0: a release), frames decoded with PyAV."""
    from robodata.lerobot.errors import LeRobotError
    from robodata.lerobot.layout import ACTION_KEY, STATE_KEY
    from robodata.lerobot.metadata import read_meta
    from robodata.lerobot.source import FileCache, episode_rows, meta_video

    cfg = config or DedupConfig()
    try:
        meta = read_meta(root)
    except LeRobotError as err:
        raise DedupError(str(err)) from err
    if STATE_KEY not in meta.features:
        raise DedupError(f"{Path(root) / 'meta/info.json'}: no {STATE_KEY!r} feature to compare episodes by")
    src = source or Path(root).name
    cache = FileCache()
    wanted = set(episodes) if episodes is not None else None
    for ep in meta.episodes:
        if wanted is not None and ep.index not in wanted:
            continue
        try:
            t = episode_rows(meta, ep, cache)
            frames = {}
            for key in meta.video_keys:
                path, start, _end = meta_video(meta, ep, key)
                frames[key] = [_frame_at(path, start + i / meta.fps) for i in frame_times(ep.length, cfg.frames_per_camera)]
        except LeRobotError as err:
            raise DedupError(str(err)) from err
        state = _column(t, STATE_KEY)
        action = _column(t, ACTION_KEY) if ACTION_KEY in t.column_names else None
        yield EpisodeSignature.compute(f"episode_{ep.index:06d}", src, state, action,
                                       t.column("timestamp").to_numpy(), frames, cfg)


def _column(t: Any, key: str) -> np.ndarray:
    arr = t.column(key).combine_chunks()
    n = len(arr)
    if hasattr(arr, "flatten"):
        return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(n, -1)
    return np.asarray(arr.to_numpy(zero_copy_only=False), np.float32).reshape(n, -1)


def _frame_at(path: Path, t: float) -> np.ndarray:
    from robodata.lerobot.errors import LeRobotError
    from robodata.lerobot.video import decode

    for _, img in decode(path, t):
        return img
    raise LeRobotError(f"{path}: no video frame at {t:.3f} s")


# -- the index ----------------------------------------------------------------------------------------------

_MD = sa.MetaData()
EPISODES = sa.Table(
    "robodata_dedup_episodes", _MD,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("episode_id", sa.String(512), nullable=False),
    sa.Column("source", sa.String(512), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("layout", sa.String(64), nullable=False),
    sa.Column("length", sa.Integer, nullable=False),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("trajectory", sa.LargeBinary, nullable=False),
    sa.Column("frames", sa.Text, nullable=False),
    sa.UniqueConstraint("source", "episode_id", name="robodata_dedup_episode"),
    sa.Index("robodata_dedup_digest", "digest"),
)
BANDS = sa.Table(
    "robodata_dedup_bands", _MD,
    sa.Column("key", sa.BigInteger, nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Index("robodata_dedup_band_key", "key"),
)
LAYOUTS = sa.Table(
    "robodata_dedup_layouts", _MD,
    sa.Column("layout", sa.String(64), primary_key=True),
    sa.Column("scale", sa.LargeBinary, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
)
# A release's index: which sources (a shard version, ``<recording>@<version>``) are indexed, the verified pairs
# among every indexed episode (found once, when the later one is indexed), and which sources each published
# release held, so a cut derives its duplicates from stored pairs and queries only shards it has not indexed.
SOURCES = sa.Table(
    "robodata_dedup_sources", _MD,
    sa.Column("source", sa.String(512), primary_key=True),
    sa.Column("recording", sa.String(512), nullable=False),  # versions of one recording never duplicate each other
    sa.Column("episodes", sa.Integer, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),  # DedupConfig.verify_settings() the pairs were verified with
)
PAIRS = sa.Table(
    "robodata_dedup_pairs", _MD,
    sa.Column("row", sa.Integer, nullable=False),  # the episode indexed later
    sa.Column("twin", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("distance", sa.Float, nullable=True),
    sa.Column("frame_distance", sa.Float, nullable=True),
    sa.Index("robodata_dedup_pair_row", "row"),
    sa.Index("robodata_dedup_pair_twin", "twin"),
)
RELEASED = sa.Table(
    "robodata_dedup_released", _MD,
    sa.Column("release", sa.String(64), nullable=False),
    sa.Column("source", sa.String(512), nullable=False),
    sa.UniqueConstraint("release", "source", name="robodata_dedup_release_source"),
)
_IN_CHUNK = 900  # bound parameters per IN (...): well under SQLite's limit


@dataclass
class Twin:
    """An episode already known that a queried episode duplicates."""

    episode_id: str
    source: str
    kind: str  # exact / near-trajectory / near-frames
    distance: float | None  # aligned RMSE (units of each dimension's spread); None: layouts differ
    frame_distance: float | None  # mean Hamming bits over the matched frames; None: no common camera


@dataclass
class _Entry:
    episode_id: str
    source: str
    digest: str
    layout: str
    trajectory: np.ndarray
    frames: dict[str, list[int]]
    duration: float = 0.0


def index_engine(url: str | os.PathLike[str]) -> tuple[sa.Engine, str]:
    """The SQL engine of an index at ``url`` (``sqlite:///path``, any SQLAlchemy URL, a path, or ``:memory:``: one
    connection shared by threads) and the URL it resolved to."""
    u = str(url)
    if u == ":memory:":
        from sqlalchemy.pool import StaticPool

        return sa.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}), u
    if "://" not in u:
        Path(u).parent.mkdir(parents=True, exist_ok=True)
        u = f"sqlite:///{u}"
    return sa.create_engine(u), u


class DedupIndex:
    """Episode signatures and their band keys in a SQL database (``sqlite:///path``, a path, or ``:memory:``)."""

    def __init__(self, url: str | os.PathLike[str] = ":memory:", config: DedupConfig | None = None):
        self.config = config or DedupConfig()
        self.engine, u = index_engine(url)
        self.url = u
        try:
            _MD.create_all(self.engine)
        except sa.exc.SQLAlchemyError as err:
            raise DedupError(f"dedup index {u}: {str(err).splitlines()[0]}") from err
        self._scales: dict[str, np.ndarray] = {}
        self._projections: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._frame_picks: dict[int, list[np.ndarray]] = {}
        with self.engine.connect() as c:
            for r in c.execute(sa.select(LAYOUTS)):
                self._load_layout(r.layout, np.frombuffer(r.scale, np.float32).copy(), json.loads(r.settings))

    # settings the keys depend on: an index keeps the ones it was built with
    def _settings(self) -> dict[str, Any]:
        c = self.config
        return {"points": c.points, "key_points": c.key_points, "lsh_bands": c.lsh_bands, "lsh_rows": c.lsh_rows,
                "lsh_width": c.lsh_width, "frame_bands": c.frame_bands, "frame_band_bits": c.frame_band_bits,
                "seed": c.seed}

    def _load_layout(self, layout: str, scale: np.ndarray, settings: dict[str, Any]) -> None:
        if settings != self._settings():
            raise DedupError(f"dedup index {self.url}: built with {settings}, asked to use {self._settings()}; "
                             "use the settings it was built with or a new index")
        self._scales[layout] = scale
        dims = len(scale) * self.config.key_points
        rng = np.random.default_rng([self.config.seed, int(hashlib.blake2b(layout.encode(), digest_size=4).hexdigest(), 16)])
        m = self.config.lsh_bands * self.config.lsh_rows
        self._projections[layout] = (rng.standard_normal((m, dims)), rng.uniform(0.0, self.config.lsh_width, m))

    def _ensure_layouts(self, sigs: Sequence[EpisodeSignature]) -> None:
        """Fix each new layout's per-dimension scale from the first episodes seen with it (kept in the index)."""
        by: dict[str, list[np.ndarray]] = defaultdict(list)
        for s in sigs:
            if s.layout not in self._scales:
                by[s.layout].append(s.trajectory)
        for layout, trajs in by.items():
            pts = np.concatenate(trajs, axis=0).astype(np.float64)
            std = pts.std(axis=0)
            pos = std[std > 0]
            floor = max(1e-6, 1e-3 * float(np.median(pos))) if len(pos) else 1.0
            scale = np.maximum(std, floor).astype(np.float32)
            with self.engine.begin() as c:
                c.execute(sa.insert(LAYOUTS).values(layout=layout, scale=scale.tobytes(),
                                                    settings=json.dumps(self._settings())))
            self._load_layout(layout, scale, self._settings())

    def scaled(self, sig: EpisodeSignature) -> np.ndarray:
        return sig.trajectory / self._scales[sig.layout]

    def band_keys(self, sig: EpisodeSignature) -> list[int]:
        """The signature's lookup keys: trajectory LSH bands and frame-hash quarters."""
        cfg = self.config
        keys: list[int] = []
        x = self.scaled(sig)
        if x.shape[1]:
            smooth = _smooth(x, cfg.key_points)
            v = smooth.ravel() / math.sqrt(smooth.size)
            a, b = self._projections[sig.layout]
            h = np.floor((a @ v + b) / cfg.lsh_width).astype(np.int64).reshape(cfg.lsh_bands, cfg.lsh_rows)
            for i, band in enumerate(h):
                keys.append(_key(("t", sig.layout, i, *band.tolist())))
        for cam, hs in sig.frames.items():
            if not hs:
                continue
            bits = np.unpackbits(np.array(hs, ">u8").view(np.uint8))  # the camera's K hashes as K * 64 bits
            for i, pick in enumerate(self._frame_bits(len(hs))):
                keys.append(_key(("f", cam, len(hs), i, np.packbits(bits[pick]).tobytes())))
        return keys

    def _frame_bits(self, k: int) -> list[np.ndarray]:
        """Bit-sampling LSH for Hamming distance: ``frame_bands`` random subsets of ``frame_band_bits`` of a
        camera's ``k * 64`` hash bits (fixed by the seed)."""
        got = self._frame_picks.get(k)
        if got is None:
            rng = np.random.default_rng([self.config.seed, 7, k])
            got = [np.sort(rng.choice(k * HASH_BITS, self.config.frame_band_bits, replace=False))
                   for _ in range(self.config.frame_bands)]
            self._frame_picks[k] = got
        return got

    def add(self, sig: EpisodeSignature) -> None:
        self.add_many([sig])

    def add_many(self, sigs: Sequence[EpisodeSignature]) -> None:
        """Store signatures and their keys (an episode id already in its source is replaced)."""
        if not sigs:
            return
        self._ensure_layouts(sigs)
        with self.engine.begin() as c:
            self._insert(c, sigs)

    def _insert(self, c: sa.Connection, sigs: Sequence[EpisodeSignature]) -> list[int]:
        for s in sigs:
            old = c.execute(sa.select(EPISODES.c.id).where(EPISODES.c.source == s.source,
                                                          EPISODES.c.episode_id == s.episode_id)).scalar()
            if old is not None:
                c.execute(sa.delete(BANDS).where(BANDS.c.row == old))
                c.execute(sa.delete(PAIRS).where(sa.or_(PAIRS.c.row == old, PAIRS.c.twin == old)))
                c.execute(sa.delete(EPISODES).where(EPISODES.c.id == old))
        rows = [dict(episode_id=s.episode_id, source=s.source, digest=s.digest, layout=s.layout, length=s.length,
                     duration=s.duration, trajectory=np.ascontiguousarray(s.trajectory, np.float32).tobytes(),
                     frames=json.dumps(s.frames)) for s in sigs]
        ids = []
        for r in rows:  # one statement per row to learn its id (portable: no RETURNING on old SQLite)
            pk = c.execute(sa.insert(EPISODES).values(**r)).inserted_primary_key
            assert pk is not None
            ids.append(int(pk[0]))
        bands = [dict(key=k, row=i) for s, i in zip(sigs, ids, strict=True) for k in set(self.band_keys(s))]
        for j in range(0, len(bands), 20_000):
            c.execute(sa.insert(BANDS), bands[j:j + 20_000])
        return ids

    # -- sources (shard versions) and releases --------------------------------------------------------------

    def indexed_sources(self, sources: Iterable[str]) -> set[str]:
        """Those of ``sources`` already indexed with :meth:`add_source` (their episodes are not signed again)."""
        wanted = sorted(set(sources))
        out: set[str] = set()
        with self.engine.connect() as c:
            for j in range(0, len(wanted), _IN_CHUNK):
                out |= set(c.execute(sa.select(SOURCES.c.source).where(SOURCES.c.source.in_(wanted[j:j + _IN_CHUNK])))
                           .scalars())
        return out

    def add_source(self, source: str, recording: str, sigs: Iterable[EpisodeSignature]) -> int:
        """Index one source's episodes (a shard version: signed once, never again) with every verified pair
        between them and the episodes indexed before (other versions of the same ``recording`` excepted: a
        rewritten shard is not a copy of itself) or earlier in the source. Returns the candidates verified."""
        if self.indexed_sources([source]):
            return 0
        sigs = [s for s in sigs]
        if any(s.source != source for s in sigs):
            raise DedupError(f"dedup index {self.url}: signatures of {source} name another source")
        self._ensure_layouts(sigs)
        cands = self.candidates(sigs)
        with self.engine.connect() as c:
            entries = self._entries(c, {i for e, n in cands for i in e | n})
            recs = self._recordings(c, {e.source for e in entries.values()})
        in_batch: dict[int, list[int]] = defaultdict(list)
        pairs: list[tuple[int, int, Twin]] = []  # (batch position, row id or -(batch position + 1), twin)
        verified = 0
        for i, s in enumerate(sigs):
            ks = self.band_keys(s)
            ex, near = cands[i]
            for row in sorted(ex | near):
                e = entries[row]
                if e.source == source or recs.get(e.source, e.source) == recording:
                    continue  # replaced below, or another version of this recording
                verified += 1
                if (t := self.verify(s, e)) is not None:
                    pairs.append((i, row, t))
            for j in sorted({j for k in ks for j in in_batch.get(k, ())}):
                verified += 1
                if (t := self.verify(s, sigs[j])) is not None:
                    pairs.append((i, -(j + 1), t))
            for k in ks:
                in_batch[k].append(i)
        with self.engine.begin() as c:
            ids = self._insert(c, sigs)
            rows = [dict(row=ids[i], twin=other if other > 0 else ids[-other - 1], kind=t.kind, distance=t.distance,
                         frame_distance=t.frame_distance) for i, other, t in pairs]
            if rows:
                c.execute(sa.insert(PAIRS), rows)
            c.execute(sa.insert(SOURCES).values(source=source, recording=recording, episodes=len(sigs),
                                                settings=json.dumps(self.config.verify_settings(), sort_keys=True)))
        return verified

    def _recordings(self, c: sa.Connection, sources: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(sources))
        out: dict[str, str] = {}
        for j in range(0, len(wanted), _IN_CHUNK):
            q = sa.select(SOURCES.c.source, SOURCES.c.recording).where(SOURCES.c.source.in_(wanted[j:j + _IN_CHUNK]))
            out.update({s: r for s, r in c.execute(q)})
        return out

    def mark_released(self, release: str, sources: Iterable[str]) -> None:
        """Record that the published ``release`` holds ``sources``: later cuts check against them."""
        with self.engine.begin() as c:
            have = set(c.execute(sa.select(RELEASED.c.source).where(RELEASED.c.release == release)).scalars())
            new = [dict(release=release, source=s) for s in sorted(set(sources) - have)]
            if new:
                c.execute(sa.insert(RELEASED), new)

    def released_sources(self, but: str | None = None) -> set[str]:
        """The sources of every published release recorded with :meth:`mark_released` (but ``but``)."""
        with self.engine.connect() as c:
            return set(c.execute(sa.select(RELEASED.c.source).where(RELEASED.c.release != (but or ""))).scalars())

    def release_report(self, sources: Sequence[tuple[str, str]], earlier: Iterable[str] = (),
                       config: DedupConfig | None = None, verified: int = 0) -> DedupReport:
        """The duplicates of a release of ``sources`` (``(source, recording)``, each indexed with
        :meth:`add_source`) from the stored pairs: no signature is computed or verified here.

        An episode's twin is an episode of this release that comes before it (recordings in the order they were
        first indexed, so a recording's new version keeps its old one's place; episodes in their order), or an
        episode of another recording, indexed before it, in an earlier published release (``earlier``: sources)
        that this release no longer holds: the later of two copies is the duplicate. Twins in shard versions that are neither (a version since replaced and never released, a
        quarantined cut) do not count. Sources are reported by recording for this release's episodes, as
        ``<recording>@<version>`` for an earlier release's."""
        cfg = config or self.config
        rec_of = dict(sources)
        earlier = set(earlier) - set(rec_of)
        settings = json.dumps(self.config.verify_settings(), sort_keys=True)
        with self.engine.connect() as c:
            known = {r.source: r for r in self._source_rows(c, set(rec_of) | earlier)}
            missing = sorted(set(rec_of) - set(known))
            if missing:
                raise DedupError(f"dedup index {self.url}: sources {missing} are not indexed (add_source first)")
            stale = sorted(s for s in rec_of if known[s].settings != settings)
            if stale:
                raise DedupError(f"dedup index {self.url}: {stale} were indexed with other dedup settings than "
                                 f"{settings}; use the settings the index was built with or a new index")
            rec_of |= {s: known[s].recording for s in earlier if s in known}
            rows: dict[int, tuple[str, str]] = {}
            names = sorted(rec_of)
            for j in range(0, len(names), _IN_CHUNK):
                q = sa.select(EPISODES.c.id, EPISODES.c.episode_id, EPISODES.c.source).where(
                    EPISODES.c.source.in_(names[j:j + _IN_CHUNK]))
                rows.update({i: (e, s) for i, e, s in c.execute(q)})
            mine = sorted(i for i, (_, s) in rows.items() if s in dict(sources))
            links: dict[int, list[tuple[int, Twin]]] = defaultdict(list)
            for j in range(0, len(mine), _IN_CHUNK):
                chunk = mine[j:j + _IN_CHUNK]
                q = sa.select(PAIRS).where(sa.or_(PAIRS.c.row.in_(chunk), PAIRS.c.twin.in_(chunk)))
                for p in c.execute(q):
                    for a, b in ((p.row, p.twin), (p.twin, p.row)):
                        if a in rows and b in rows:
                            e, s = rows[b]
                            links[a].append((b, Twin(e, s, p.kind, p.distance, p.frame_distance)))
        first: dict[str, int] = {}
        for i in sorted(rows):
            first.setdefault(rec_of[rows[i][1]], i)
        release = dict(sources)
        order = {i: (first[rec_of[rows[i][1]]], i) for i in rows}
        dups: list[Duplicate] = []
        variants: list[Duplicate] = []
        for i in sorted(mine, key=order.__getitem__):
            ep, src = rows[i]
            best: Twin | None = None
            for other, t in links.get(i, ()):
                if order[other] >= order[i]:
                    continue  # the later of two copies is the duplicate (in this release or an earlier one)
                if t.source not in release and rec_of[t.source] == rec_of[src]:
                    continue  # an earlier release's version of this same recording
                if best is None or _rank(t) < _rank(best):
                    best = t
            if best is not None:
                twin_src = release[best.source] if best.source in release else best.source
                d = Duplicate(ep, release[src], best.episode_id, twin_src, best.kind, best.distance,
                              best.frame_distance, best.kind != VISUAL_VARIANT and cfg.excludes(best.kind))
                (variants if best.kind == VISUAL_VARIANT else dups).append(d)
        rep = DedupReport(cfg.policy, len(mine), dups, verified, len(self), variants)
        if dups:
            log.warning("dedup: %d of %d episodes of the release are duplicates; %d excluded by policy %s",
                        len(dups), len(mine), len(rep.excluded), cfg.policy)
        return rep

    def _source_rows(self, c: sa.Connection, sources: Iterable[str]) -> list[Any]:
        wanted = sorted(set(sources))
        out: list[Any] = []
        for j in range(0, len(wanted), _IN_CHUNK):
            out += list(c.execute(sa.select(SOURCES).where(SOURCES.c.source.in_(wanted[j:j + _IN_CHUNK]))))
        return out

    def __len__(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(EPISODES)).scalar() or 0)

    def _entries(self, c: sa.Connection, ids: Iterable[int]) -> dict[int, _Entry]:
        out: dict[int, _Entry] = {}
        ids = list(ids)
        for j in range(0, len(ids), _IN_CHUNK):
            q = sa.select(EPISODES).where(EPISODES.c.id.in_(ids[j:j + _IN_CHUNK]))
            for r in c.execute(q):
                traj = np.frombuffer(r.trajectory, np.float32).reshape(self.config.points, -1)
                out[r.id] = _Entry(r.episode_id, r.source, r.digest, r.layout, traj,
                                   {k: [int(x) for x in v] for k, v in json.loads(r.frames).items()}, r.duration)
        return out

    def candidates(self, sigs: Sequence[EpisodeSignature]) -> list[tuple[set[int], set[int]]]:
        """Per signature: (rows with the same digest, rows sharing a band key)."""
        self._ensure_layouts(sigs)
        keys = [self.band_keys(s) for s in sigs]
        by_key: dict[int, set[int]] = defaultdict(set)
        by_digest: dict[str, set[int]] = defaultdict(set)
        allkeys = sorted({k for ks in keys for k in ks})
        digests = sorted({s.digest for s in sigs})
        with self.engine.connect() as c:
            for j in range(0, len(allkeys), _IN_CHUNK):
                for k, row in c.execute(sa.select(BANDS.c.key, BANDS.c.row).where(BANDS.c.key.in_(allkeys[j:j + _IN_CHUNK]))):
                    by_key[k].add(row)
            for j in range(0, len(digests), _IN_CHUNK):
                q = sa.select(EPISODES.c.digest, EPISODES.c.id).where(EPISODES.c.digest.in_(digests[j:j + _IN_CHUNK]))
                for d, row in c.execute(q):
                    by_digest[d].add(row)
        return [(by_digest.get(s.digest, set()), set().union(*(by_key.get(k, set()) for k in ks)) if ks else set())
                for s, ks in zip(sigs, keys, strict=True)]

    def query(self, sig: EpisodeSignature) -> list[Twin]:
        """The indexed episodes ``sig`` duplicates, best first (exact, then by distance)."""
        return self.query_many([sig])[0]

    def query_many(self, sigs: Sequence[EpisodeSignature]) -> list[list[Twin]]:
        cands = self.candidates(sigs)
        with self.engine.connect() as c:
            entries = self._entries(c, {i for ex, near in cands for i in ex | near})
        out = []
        for s, (ex, near) in zip(sigs, cands, strict=True):
            twins = [t for i in sorted(ex | near) if (t := self.verify(s, entries[i])) is not None
                     and not (entries[i].source == s.source and entries[i].episode_id == s.episode_id)]
            out.append(sorted(twins, key=_rank))
        return out

    def verify(self, sig: EpisodeSignature, other: _Entry | EpisodeSignature) -> Twin | None:
        """Whether ``sig`` duplicates ``other``, by a real distance; the :class:`Twin` if so."""
        cfg = self.config
        dist = None
        if other.layout == sig.layout and sig.trajectory.shape[1]:
            scale = self._scales[sig.layout]
            a, b = sig.trajectory / scale, other.trajectory / scale
            # first on the trajectories averaged to key_points samples: by Jensen their RMSE is (about) a lower
            # bound of the full one, and 4x cheaper; only a pair within reach is aligned at full resolution
            dist = aligned_rmse(_smooth(a, cfg.key_points), _smooth(b, cfg.key_points), cfg.max_shift,
                                cfg.max_rate_change, trim=cfg.trim_dimensions)
            if dist <= max(cfg.tolerance, cfg.frames_trajectory_tolerance):
                dist = aligned_rmse(a, b, cfg.max_shift, cfg.max_rate_change, trim=cfg.trim_dimensions)
        fdist = frames_distance(sig.frames, other.frames, cfg)
        if other.digest == sig.digest:
            return Twin(other.episode_id, other.source, EXACT, 0.0 if dist is None else dist, fdist[0])
        longer, shorter = max(sig.duration, other.duration), min(sig.duration, other.duration)
        if longer > 0 and (shorter <= 0 or longer / shorter > cfg.max_duration_ratio):
            return None  # a re-recording of the same demonstration takes about as long
        if (dist is not None and dist <= _SAME_MOTION and fdist[0] is not None and not fdist[1]
                and fdist[0] > cfg.frame_hamming):
            # identical state/action, images that do not match: augmentation's variant of the demo (a re-recording
            # has noise in its low-dim data, a re-export matching frames)
            return Twin(other.episode_id, other.source, VISUAL_VARIANT, dist, fdist[0])
        if dist is not None and dist <= cfg.tolerance:
            return Twin(other.episode_id, other.source, NEAR_TRAJECTORY, dist, fdist[0])
        if fdist[1] and (dist is None or dist <= cfg.frames_trajectory_tolerance):
            return Twin(other.episode_id, other.source, NEAR_FRAMES, dist, fdist[0])
        return None


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    """``(P, D)`` averaged over ``k`` equal bins of normalised time."""
    return x[: (len(x) // k) * k].reshape(k, -1, x.shape[1]).mean(axis=1)


def _rank(t: Twin) -> tuple[int, float, float]:
    return ((KINDS + (VISUAL_VARIANT,)).index(t.kind), t.distance if t.distance is not None else math.inf,
            t.frame_distance if t.frame_distance is not None else math.inf)


def _key(parts: tuple[Any, ...]) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little", signed=True)


def aligned_rmse(a: np.ndarray, b: np.ndarray, max_shift: float = 0.1, max_rate_change: float = 0.1,
                 steps: int = 9, trim: float = 0.0) -> float:
    """RMS difference of two ``(P, D)`` trajectories over normalised time after the best affine time alignment
    ``t_b = rate * t_a + shift`` (``|shift| <= max_shift``, ``|rate - 1| <= max_rate_change``), on the part of
    ``[0, 1]`` where both are defined (at least half of it). ``trim``: the share of dimensions with the largest
    error left out (velocities and forces are noise-like: a re-recording never repeats them)."""
    p = len(a)
    t = np.linspace(0.0, 1.0, p)
    shifts = np.linspace(-max_shift, max_shift, steps) if max_shift > 0 else np.zeros(1)
    rates = np.linspace(1 - max_rate_change, 1 + max_rate_change, 2 * (steps // 4) + 1) if max_rate_change > 0 else np.ones(1)
    warp = (rates[:, None, None] * t[None, None, :] + shifts[None, :, None]).reshape(-1, p)  # (W, P) times in b
    inside = (warp >= 0.0) & (warp <= 1.0)
    pos = np.clip(warp, 0.0, 1.0) * (p - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, p - 1)
    frac = (pos - lo)[..., None]
    bw = b[lo] * (1 - frac) + b[hi] * frac  # (W, P, D)
    sq = (bw - a[None]) ** 2 * inside[..., None]  # (W, P, D)
    cnt = inside.sum(axis=1)
    per_dim = sq.sum(axis=1) / np.maximum(cnt, 1)[:, None]  # (W, D) mean squared error per dimension
    d = a.shape[1]
    drop = int(trim * d)
    if drop:
        per_dim = np.sort(per_dim, axis=1)[:, : d - drop]
    mse = np.where(cnt >= p // 2, per_dim.mean(axis=1), np.inf)
    return float(math.sqrt(float(mse.min())))


def frames_distance(a: Mapping[str, list[int]], b: Mapping[str, list[int]], cfg: DedupConfig) -> tuple[float | None, bool]:
    """(mean Hamming bits over the common cameras' frames, whether every common camera matches)."""
    common = [c for c in a if c in b and a[c] and len(a[c]) == len(b[c])]
    if not common:
        return None, False
    dists: list[int] = []
    ok = True
    for cam in common:
        d = [hamming(x, y) for x, y in zip(a[cam], b[cam], strict=True)]
        dists += d
        ok = ok and sum(x <= cfg.frame_hamming for x in d) >= math.ceil(cfg.frame_match_fraction * len(d))
    return float(np.mean(dists)), ok


# -- a batch against the index, and the policy --------------------------------------------------------------


@dataclass
class Duplicate:
    episode_id: str
    source: str
    twin_id: str
    twin_source: str
    kind: str
    distance: float | None
    frame_distance: float | None
    excluded: bool

    def describe(self) -> str:
        bits = []
        if self.distance is not None:
            bits.append(f"aligned RMSE {self.distance:.3f}")
        if self.frame_distance is not None:
            bits.append(f"frames {self.frame_distance:.1f}/64 bits apart")
        what = "excluded from the release" if self.excluded else "kept (the policy does not exclude it)"
        return (f"{self.source}/{self.episode_id} duplicates {self.twin_source}/{self.twin_id} ({self.kind}"
                f"{'; ' if bits else ''}{', '.join(bits)}): {what}")


@dataclass
class DedupReport:
    policy: str
    checked: int
    duplicates: list[Duplicate]
    candidates_verified: int
    index_size: int
    variants: list[Duplicate] = field(default_factory=list)  # visual variants (augmentation): not duplicates

    @property
    def excluded(self) -> list[tuple[str, str]]:
        return [(d.source, d.episode_id) for d in self.duplicates if d.excluded]

    def kept(self, sigs: Iterable[EpisodeSignature]) -> list[EpisodeSignature]:
        out = set(self.excluded)
        return [s for s in sigs if (s.source, s.episode_id) not in out]

    def counts(self) -> dict[str, int]:
        return {k: sum(d.kind == k for d in self.duplicates) for k in KINDS}

    def to_markdown(self, limit: int = 200) -> str:
        c = self.counts()
        lines = [f"**Dedup** ({self.policy}): {self.checked} episodes checked against {self.index_size} indexed; "
                 f"{len(self.duplicates)} duplicates ({c[EXACT]} exact, {c[NEAR_TRAJECTORY]} near-trajectory, "
                 f"{c[NEAR_FRAMES]} near-frames), {len(self.excluded)} excluded; {len(self.variants)} visual "
                 "variants (the same motion with other images: augmented demos, not duplicates).", ""]
        if self.duplicates:
            lines += ["| episode | twin | kind | aligned RMSE | frame bits | excluded |", "|---|---|---|---|---|---|"]
            for d in self.duplicates[:limit]:
                lines.append(f"| {d.source}/{d.episode_id} | {d.twin_source}/{d.twin_id} | {d.kind} | "
                             f"{'' if d.distance is None else f'{d.distance:.3f}'} | "
                             f"{'' if d.frame_distance is None else f'{d.frame_distance:.1f}'} | "
                             f"{'yes' if d.excluded else 'no'} |")
            if len(self.duplicates) > limit:
                lines.append(f"| ... {len(self.duplicates) - limit} more | | | | | |")
        return "\n".join(lines)

    def as_metadata(self) -> dict[str, Any]:
        return {"dedup_policy": self.policy, "episodes_checked": self.checked, "duplicates": len(self.duplicates),
                **{f"duplicates_{k.replace('-', '_')}": v for k, v in self.counts().items()},
                "excluded": len(self.excluded), "visual_variants": len(self.variants),
                "duplicate_pairs": [[f"{d.source}/{d.episode_id}", f"{d.twin_source}/{d.twin_id}", d.kind]
                                    for d in self.duplicates[:100]]}


def dedup_episodes(sigs: Sequence[EpisodeSignature], index: DedupIndex | None = None, *, add: bool = True,
                   config: DedupConfig | None = None) -> DedupReport:
    """Check ``sigs`` (in order) against ``index`` (earlier recordings and releases) and against each other.

    The later of two copies is the duplicate; its twin is the best match (exact first, then the smallest
    distance) among the indexed episodes and the earlier ones of the batch. With ``add``, the batch is then
    indexed (duplicates too: they are in their source). The policy of ``config`` (default: the index's) decides
    which duplicates are excluded; every one is in the report.
    """
    if index is None:
        index = DedupIndex(config=config)
    cfg = config or index.config
    before = len(index)
    sigs = list(sigs)
    cands = index.candidates(sigs)  # against what the index already holds
    with index.engine.connect() as c:
        entries: dict[int, _Entry | EpisodeSignature] = dict(index._entries(c, {i for e, n in cands for i in e | n}))
    # the batch against itself, through the same keys, in memory (batch rows get negative ids)
    keys_in_batch: dict[int, list[int]] = defaultdict(list)
    digest_in_batch: dict[str, list[int]] = defaultdict(list)
    dups: list[Duplicate] = []
    variants: list[Duplicate] = []
    verified = 0
    for i, s in enumerate(sigs):
        ks = index.band_keys(s)
        ex, near = cands[i]
        mine = {-(j + 1) for k in ks for j in keys_in_batch.get(k, ())} | {-(j + 1) for j in digest_in_batch.get(s.digest, ())}
        best: Twin | None = None
        for row in sorted(ex | near | mine):
            other = entries[row] if row > 0 else sigs[-row - 1]
            if other.source == s.source and other.episode_id == s.episode_id:
                continue
            verified += 1
            t = index.verify(s, other)
            if t is not None and (best is None or _rank(t) < _rank(best)):
                best = t
        if best is not None:
            d = Duplicate(s.episode_id, s.source, best.episode_id, best.source, best.kind, best.distance,
                          best.frame_distance, best.kind != VISUAL_VARIANT and cfg.excludes(best.kind))
            (variants if best.kind == VISUAL_VARIANT else dups).append(d)
        for k in ks:
            keys_in_batch[k].append(i)
        digest_in_batch[s.digest].append(i)
    if add:
        index.add_many(sigs)
    rep = DedupReport(cfg.policy, len(sigs), dups, verified, before, variants)
    for d in dups:
        log.info("%s", d.describe())
    if dups:
        counts = rep.counts()
        log.warning("dedup: %d of %d episodes are duplicates (%s); %d excluded by policy %s", len(dups), len(sigs),
                    ", ".join(f"{v} {k}" for k, v in counts.items() if v), len(rep.excluded), cfg.policy)
    return rep
