"""The canonical episode store between tiers: Isaac Lab / robomimic HDF5, written frame by frame.

Layout (what Isaac Lab's recorders and Isaac Lab Mimic read, plus two documented extensions)::

    /data                       attrs: total (frames in all demos), env_args (JSON)
    /data/demo_N                attrs: num_samples, success, seed, source, + any provenance
        actions                 (T, A) float32, the commanded action (all action features, concatenated)
        processed_actions       (T, A) float32, same as actions unless an engine post-processes them
        states                  (T, S) float32, all state features concatenated (the sim state where known)
        initial_state           (S,)   float32, states[0]
        timestamps              (T,)   float64, seconds since the episode's first frame   [extension]
        obs/<feature>           (T, ...) one dataset per observation (state parts, poses, cameras uint8 T,H,W,3)
        obs/datagen_info/object_pose/<object>         (T, 4, 4) float32
        obs/datagen_info/eef_pose/<eef>               (T, 4, 4) float32
        obs/datagen_info/target_eef_pose/<eef>        (T, 4, 4) float32
        obs/datagen_info/subtask_term_signals/<name>  (T,) bool

``env_args`` holds Isaac Lab's ``env_name``/``type``/``env_kwargs`` and, under ``"robodata"``, the
feature table (one source of truth for names, roles, shapes, slices), fps, task and provenance
[extension]. Readers that do not know it ignore it.

The names and paths above live in :mod:`robodata.formats.isaaclab_layout` (re-exported here).

Writes are streaming (resizable, chunked datasets; one frame or a batch at a time: memory stays flat in
the episode length) and atomic (:mod:`robodata.atomic`): the store is written under a ``.partial-``
sibling and renamed over the destination on ``commit``.

Camera frames are one chunk each, raw or deflated (``image_compression``: ``auto``, ``none``, ``lzf``,
``gzip``, ``gzip-4``; lossless, standard HDF5 filters only, so plain h5py and Isaac Lab read them as any
other dataset). The writer deflates frames in a thread pool and stores each as a chunk of its own
(``H5Dwrite_chunk``); a frame not worth deflating is stored raw with its chunk's filter mask saying so.
:func:`read_frames` (used by :meth:`EpisodeStore.read` and :meth:`EpisodeStore.iter_frames`) inflates them
in threads too; ``ds[...]`` in h5py gives the same arrays.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from robodata.atomic import AtomicPath
from robodata.errors import RobodataError
from robodata.formats.isaaclab_layout import (  # also importable from here (DEMO_PREFIX, demo_name, ...)
    ACTIONS,
    DATA_GROUP,
    DATAGEN_GROUP,
    DATAGEN_KINDS,
    DATAGEN_SIGNALS,
    DEMO_RE,
    ENV_ARGS_ATTR,
    ENV_KWARGS_KEY,
    ENV_NAME_KEY,
    ENV_TYPE,
    ENV_TYPE_KEY,
    INITIAL_STATE,
    NUM_SAMPLES_ATTR,
    OBS_GROUP,
    PROCESSED_ACTIONS,
    ROBODATA_KEY,
    STATES,
    SUCCESS_ATTR,
    TIMESTAMPS,
    TOTAL_ATTR,
    datagen_path,
    demo_name,
    obs_path,
)
from robodata.formats.quaternions import OrderDecision

ROLES = ("state", "action", "image", "pose", "extra")
DEFAULT_FPS = 30.0  # the frame rate assumed for a file with no timestamps, no fps setting and no env_kwargs rate
MASK_GROUP = "mask"  # robomimic's filter keys: /mask/<key> lists demo names (train, valid, ...)
FILTER_KEYS = "filter_keys"  # ... kept in the feature table, by the names the demos had in the file they came from
SOURCE_DEMO_ATTR = "source_demo"  # on a demo copied from a file with filter keys: its name there
_UNIT_QUATERNION_TOL = 0.05  # |q| within this of 1 in every sampled row: the columns look like a quaternion


# How camera frames are stored. Every option is a standard HDF5 filter that plain h5py (and any HDF5 reader)
# decodes with no plugin, and every option is lossless; each frame is one chunk (1, H, W, C).
#   auto    deflate (gzip level 1) where it pays: a frame that does not shrink by AUTO_MIN_SAVING is stored raw
#           (the chunk's HDF5 filter mask says so), and after such frames the writer tries less often (backoff)
#   none    raw frames
#   lzf     h5py's lzf filter (compressed inside h5py's write, one thread)
#   gzip    deflate level 1 on every frame;  gzip-4: level 4 (smaller on renders, ~2x the CPU, slower reads)
# The deflate options compress frames in a thread pool (zlib releases the GIL) and write the chunks with
# H5Dwrite_chunk: the bytes are what HDF5's own deflate filter writes. Numbers: benchmarks/README.md (ingest).
ImageCompression = Literal["auto", "none", "lzf", "gzip", "gzip-4"]
IMAGE_COMPRESSIONS: tuple[str, ...] = ("auto", "none", "lzf", "gzip", "gzip-4")
DEFAULT_IMAGE_COMPRESSION: ImageCompression = "auto"
AUTO_MIN_SAVING = 0.25  # auto: a deflated frame is kept when it is at most 75 % of the raw frame
_AUTO_MAX_BACKOFF = 64  # auto: after frames not worth deflating, at most this many raw frames between tries
_DEFLATE_LEVEL: dict[str, int] = {"auto": 1, "gzip": 1, "gzip-4": 4}
_COMPRESSION_ARGS: dict[str, dict[str, Any]] = {
    "none": {},
    "lzf": {"compression": "lzf"},
    **{k: {"compression": "gzip", "compression_opts": v} for k, v in _DEFLATE_LEVEL.items()},
}


class EpisodeStoreError(RobodataError):
    """An episode store is missing, malformed, or used wrongly."""


@dataclass
class FeatureSpec:
    """One feature of an episode: its name (the ``obs/<name>`` key), role, shape of one frame, dtype."""

    name: str
    role: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    names: list[str] | None = None
    path: str | None = None  # the dataset inside a demo group when it is not obs/<name> (a nested Isaac Lab term)

    @property
    def h5path(self) -> str:
        """Where the feature's dataset is inside a demo group: ``obs/<name>`` unless ``path`` says otherwise
        (action features: the concatenated ``actions``)."""
        return self.path or (ACTIONS if self.role == "action" else obs_path(self.name))

    def to_json(self) -> dict[str, Any]:
        out = {"role": self.role, "shape": list(self.shape), "dtype": self.dtype, "names": self.names}
        return out | ({"path": self.path} if self.path else {})

    @classmethod
    def from_json(cls, name: str, d: Mapping[str, Any]) -> FeatureSpec:
        return cls(name, d["role"], tuple(d["shape"]), d.get("dtype", "float32"), d.get("names"), d.get("path"))


@dataclass
class EpisodeSchema:
    """The features of every episode in a store, in order (state and action parts concatenate in this order)."""

    features: list[FeatureSpec]
    fps: float
    task: str = ""
    robot_type: str = "unknown"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise EpisodeStoreError(f"duplicate feature names in {names}")
        for f in self.features:
            if f.role not in ROLES:
                raise EpisodeStoreError(f"feature {f.name!r} has unknown role {f.role!r} (one of {ROLES})")

    def of_role(self, role: str) -> list[FeatureSpec]:
        return [f for f in self.features if f.role == role]

    @property
    def cameras(self) -> list[FeatureSpec]:
        return self.of_role("image")

    def slices(self, role: str) -> dict[str, tuple[int, int]]:
        """Named ``[start, end)`` slices of the concatenated vector of a role (``state`` or ``action``)."""
        out, start = {}, 0
        for f in self.of_role(role):
            width = int(np.prod(f.shape)) if f.shape else 1
            out[f.name] = (start, start + width)
            start += width
        return out

    def width(self, role: str) -> int:
        s = self.slices(role)
        return max((e for _, e in s.values()), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "task": self.task,
            "robot_type": self.robot_type,
            "features": {f.name: f.to_json() for f in self.features},
            **self.extra,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EpisodeSchema:
        d = dict(d)
        feats = [FeatureSpec.from_json(k, v) for k, v in d.pop("features").items()]
        return cls(feats, float(d.pop("fps")), d.pop("task", ""), d.pop("robot_type", "unknown"), d)


def demo_index(name: str) -> int:
    """The index of a demo group name (``demo_7`` -> 7); raises :class:`EpisodeStoreError` for other names."""
    m = DEMO_RE.match(name)
    if not m:
        raise EpisodeStoreError(f"{name!r} is not a demo group name (demo_N)")
    return int(m.group(1))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class FrameStats:
    """Camera frames a writer stored: how many, their raw bytes, the bytes of their chunks, how many deflated."""

    frames: int = 0
    raw_bytes: int = 0
    stored_bytes: int = 0
    deflated: int = 0

    @property
    def ratio(self) -> float:
        """Raw bytes per stored byte (1.0: stored raw)."""
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 1.0


class _DeflatePolicy:
    """Which frames of one camera get deflated, and which deflated chunks are kept (one per camera per store).

    ``gzip``/``gzip-4`` deflate every frame and keep the chunk unless it is no smaller. ``auto`` keeps a
    deflated frame only when it is at most ``1 - AUTO_MIN_SAVING`` of the raw size. While the camera's frames
    pay (``good``) each is deflated whole, in the writer's threads. After one that does not, the next
    ``backoff`` frames (1, 2, 4, ... at most ``_AUTO_MAX_BACKOFF``) are stored raw without trying; then one
    frame is tried on a sample of its rows (8 slabs of 8 rows, 1/8 of a VGA frame), on the caller's thread, and
    deflated whole only when the sample pays. So a camera whose frames do not compress costs a small fraction
    of deflating them, and one that starts to compress is caught within ``_AUTO_MAX_BACKOFF`` frames. The
    state carries from one episode to the next.
    """

    def __init__(self, level: int, adaptive: bool):
        self.level = level
        self.adaptive = adaptive
        self.good = False  # auto: frames pay (the last try did)
        self.skip = 0  # auto: frames to store raw before the next try
        self.backoff = 0  # auto: the length of the last raw run
        self.epoch = 0  # auto: bumped when frames stop paying; deflated frames queued before do not count

    def plan(self) -> tuple[str | None, int]:
        """For the next frame: ``None`` (store raw), ``"full"`` (deflate it) or ``"sample"`` (try a sample
        first, then report with :meth:`sampled`), and the epoch to hand back to :meth:`keep`."""
        if self.level == 0:
            return None, self.epoch
        if not self.adaptive or self.good:
            return "full", self.epoch
        if self.skip > 0:
            self.skip -= 1
            return None, self.epoch
        return "sample", self.epoch

    def pays(self, raw: int, packed: int) -> bool:
        return packed <= raw * (1.0 - AUTO_MIN_SAVING) if self.adaptive else packed < raw

    def sampled(self, raw: int, packed: int) -> bool:
        """The result of a sample try (``raw`` bytes deflated to ``packed``): deflate the frame?"""
        if self.pays(raw, packed):
            self.good, self.backoff, self.skip = True, 0, 0
            return True
        self._miss()
        return False

    def keep(self, raw: int, packed: int, epoch: int) -> bool:
        """Store a frame deflated to ``packed`` bytes as such (else raw)? A frame that does not pay ends the
        ``good`` run, unless it was queued before the run's last change (``epoch``)."""
        pays = self.pays(raw, packed)
        if self.adaptive and not pays and epoch == self.epoch and self.good:
            self._miss()
        return pays

    def _miss(self) -> None:
        self.good = False
        self.backoff = min(_AUTO_MAX_BACKOFF, max(1, 2 * self.backoff))
        self.skip = self.backoff
        self.epoch += 1


@dataclass
class _FrameSink:
    """One camera dataset of a demo, written a chunk (one frame) at a time with ``H5Dwrite_chunk``.

    With ``policy.level`` 0 the dataset has no filter and chunks are raw. Otherwise its only filter is deflate
    and a chunk is either the zlib stream of the frame (what HDF5's deflate filter writes) or, where deflating
    did not pay, the raw frame with bit 0 of its filter mask set (HDF5 readers skip the filter for it).
    """

    ds: h5py.Dataset
    policy: _DeflatePolicy

    def offset(self, index: int) -> tuple[int, ...]:
        return (index,) + (0,) * (self.ds.ndim - 1)


def _sample_rows(frame: np.ndarray) -> np.ndarray:
    """8 slabs of 8 consecutive rows, evenly spread over the frame (deflate sees rows next to each other)."""
    h = frame.shape[0]
    if h < 128:
        return frame
    step = h // 8
    return np.concatenate([frame[i : i + 8] for i in range(0, 8 * step, step)])


_read_pool: ThreadPoolExecutor | None = None
_read_pool_lock = threading.Lock()
_READ_THREADS = 8  # at most, and at most one per core this process may use


def _reader_pool() -> tuple[ThreadPoolExecutor, int]:
    global _read_pool
    threads = max(1, min(_READ_THREADS, _cores()))
    with _read_pool_lock:
        if _read_pool is None:
            _read_pool = ThreadPoolExecutor(threads, thread_name_prefix="robodata-inflate")
        return _read_pool, threads


def _forget_read_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there (a new pool starts on first use)."""
    global _read_pool, _read_pool_lock
    _read_pool, _read_pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_read_pool)


def _deflated_frames(ds: h5py.Dataset) -> bool:
    """A uint8 dataset of one-frame chunks whose only filter is deflate (what the deflate options write)."""
    if ds.dtype != np.uint8 or ds.chunks is None or ds.ndim < 2 or ds.chunks != (1, *ds.shape[1:]):
        return False
    dcpl = ds.id.get_create_plist()
    return dcpl.get_nfilters() == 1 and dcpl.get_filter(0)[0] == h5py.h5z.FILTER_DEFLATE


def _inflate_into(data: bytes, row: np.ndarray) -> None:
    row[:] = np.frombuffer(zlib.decompress(data, bufsize=row.nbytes), np.uint8)


def read_frames(ds: h5py.Dataset, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``[start, stop)`` of a dataset, the same array as ``ds[start:stop]``.

    Camera frames stored deflated one per chunk are inflated in a thread pool (zlib releases the GIL) instead
    of one after the other inside HDF5: each chunk is read with ``H5Dread_chunk`` and inflated here, raw chunks
    (filter mask set) are copied. Anything else is read by h5py as usual.
    """
    n = ds.shape[0]
    start = max(0, start)
    stop = n if stop is None else max(start, min(stop, n))
    if stop - start < 2 or not _deflated_frames(ds):
        return ds[start:stop]
    out = np.empty((stop - start, *ds.shape[1:]), np.uint8)
    rows = out.reshape(stop - start, -1)
    pool, threads = _reader_pool()
    pending: deque[Future[None]] = deque()
    window = 4 * threads
    zero = (0,) * (ds.ndim - 1)
    for i in range(start, stop):
        try:
            mask, data = ds.id.read_direct_chunk((i, *zero))
        except Exception:  # noqa: BLE001 - a chunk never written (fill value) or an odd one: HDF5 reads it
            out[i - start] = ds[i]
            continue
        if mask & 1:
            rows[i - start] = np.frombuffer(data, np.uint8)
        else:
            pending.append(pool.submit(_inflate_into, data, rows[i - start]))
            while len(pending) > window:
                pending.popleft().result()
    for f in pending:
        f.result()
    return out


class DemoWriter:
    """Appends frames to one ``/data/demo_N`` group; created by :meth:`EpisodeStoreWriter.begin_episode`."""

    def __init__(self, store: EpisodeStoreWriter, group: h5py.Group, schema: EpisodeSchema, chunk_frames: int):
        self._store = store
        self._g = group
        self._schema = schema
        self._chunk = chunk_frames
        self._n = 0
        self._ds: dict[str, h5py.Dataset] = {}
        self._sinks: dict[str, _FrameSink] = {}  # camera datasets written chunk by chunk
        self.closed = False

    @property
    def num_frames(self) -> int:
        return self._n

    @property
    def name(self) -> str:
        return self._g.name.rsplit("/", 1)[-1]

    def _dataset(self, path: str, frame_shape: tuple[int, ...], dtype: Any) -> h5py.Dataset:
        ds = self._ds.get(path)
        if ds is None:
            is_image = len(frame_shape) == 3 and np.dtype(dtype) == np.uint8
            chunk_t = 1 if is_image else self._chunk
            compression = self._store.image_compression if is_image else "none"
            ds = self._g.create_dataset(
                path,
                shape=(0, *frame_shape),
                maxshape=(None, *frame_shape),
                dtype=dtype,
                chunks=(chunk_t, *frame_shape),
                **_COMPRESSION_ARGS[compression],
            )
            self._ds[path] = ds
            if is_image and compression != "lzf":  # lzf: compressed by h5py's own filter on write
                self._sinks[path] = _FrameSink(ds, self._store._policy(path))
        elif ds.shape[1:] != tuple(frame_shape):
            raise EpisodeStoreError(
                f"{self._store.path}: {self._g.name}/{path} frames have shape {ds.shape[1:]}, got {tuple(frame_shape)}"
            )
        return ds

    def _append(self, path: str, values: np.ndarray, dtype: Any = None) -> None:
        values = np.asarray(values, dtype=dtype) if dtype is not None else np.asarray(values)
        ds = self._dataset(path, values.shape[1:], values.dtype)
        n0 = ds.shape[0]
        ds.resize(n0 + len(values), axis=0)
        sink = self._sinks.get(path)
        if sink is None:
            ds[n0:] = values
        else:
            for i, frame in enumerate(values):
                self._store._put_frame(sink, n0 + i, frame)

    def extend(
        self,
        timestamps: np.ndarray,
        obs: Mapping[str, np.ndarray],
        actions: np.ndarray | None = None,
        states: np.ndarray | None = None,
        datagen: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        *,
        skip_roles: tuple[str, ...] = (),
        passthrough: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Append a batch of ``len(timestamps)`` frames.

        ``obs`` maps feature names to ``(n, ...)`` arrays; every state/pose/image feature of the schema must be
        present. ``actions`` is ``(n, A)`` (all action features concatenated); when omitted, the action
        features are read from ``obs`` and concatenated. ``states`` defaults to the concatenated state
        features. ``datagen`` maps a kind (``object_pose``...) to ``{name: array}``. Features whose role is in
        ``skip_roles`` were already written with :meth:`write_feature` (e.g. camera frames streamed one by one).
        ``passthrough`` maps other per-frame datasets, by their path inside the demo group, to ``(n, ...)``
        arrays written as they are: an Isaac Lab recording's nested sim state (``states/articulation/robot/
        joint_position``...), its ``processed_actions``, rewards. Nested ``states/...`` replace the flat
        ``states`` / ``initial_state`` datasets (the two cannot share the name).
        """
        if self.closed:
            raise EpisodeStoreError(f"{self._store.path}: {self._g.name} is already closed")
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        n = len(ts)
        if n == 0:
            return
        for f in self._schema.features:
            if f.role in skip_roles or (f.role == "action" and actions is not None):
                continue
            if f.name not in obs:
                if f.role == "extra":
                    continue
                raise EpisodeStoreError(f"{self._store.path}: frame batch lacks feature {f.name!r}")
            arr = np.asarray(obs[f.name])
            if arr.shape[0] != n:
                raise EpisodeStoreError(
                    f"{self._store.path}: feature {f.name!r} has {arr.shape[0]} rows for {n} timestamps"
                )
            if f.role == "action":
                continue
            self._append(f.h5path, arr.reshape(n, *f.shape), np.dtype(f.dtype))
        if actions is None:
            parts = [np.asarray(obs[f.name], np.float32).reshape(n, -1) for f in self._schema.of_role("action")]
            actions = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.float32)
        actions = np.asarray(actions, np.float32).reshape(n, -1)
        if states is None:
            parts = [np.asarray(obs[f.name], np.float32).reshape(n, -1) for f in self._schema.of_role("state")]
            states = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.float32)
        states = np.asarray(states, np.float32).reshape(n, -1)
        extra = dict(passthrough or {})
        for path, arr in extra.items():
            if np.shape(arr)[:1] != (n,):
                raise EpisodeStoreError(f"{self._store.path}: {self._g.name}/{path} has {len(arr)} rows for {n} frames")
        self._append(TIMESTAMPS, ts)
        self._append(ACTIONS, actions)
        if PROCESSED_ACTIONS not in extra:
            self._append(PROCESSED_ACTIONS, actions)
        if not self._nested_states(extra):
            self._append(STATES, states)
            if INITIAL_STATE not in self._g:
                self._g.create_dataset(INITIAL_STATE, data=states[0])
        for path, arr in extra.items():
            self._append(path, np.asarray(arr))
        for kind, items in (datagen or {}).items():
            if kind not in DATAGEN_KINDS:
                raise EpisodeStoreError(f"unknown {DATAGEN_GROUP} kind {kind!r} (one of {DATAGEN_KINDS})")
            for name, arr in items.items():
                arr = np.asarray(arr)
                if arr.shape[0] != n:
                    raise EpisodeStoreError(f"{datagen_path(kind, name)} has {arr.shape[0]} rows for {n} frames")
                dtype = bool if kind in DATAGEN_SIGNALS else np.float32
                self._append(datagen_path(kind, name), arr, dtype)
        self._n += n

    def _nested_states(self, passthrough: Mapping[str, Any]) -> bool:
        """Whether this demo keeps its sim state as a ``states/...`` tree (Isaac Lab's recorder) rather than flat."""
        if STATES in self._g:
            return isinstance(self._g[STATES], h5py.Group)
        paths = list(passthrough) + [f.h5path for f in self._schema.features]
        return any(p.startswith(STATES + "/") for p in paths)

    def put_static(self, path: str, value: np.ndarray) -> None:
        """Write a dataset that is not per frame (``initial_state/...`` of an Isaac Lab recording) as it is."""
        if path in self._g:
            raise EpisodeStoreError(f"{self._store.path}: {self._g.name}/{path} is already written")
        self._g.create_dataset(path, data=np.asarray(value))

    def write_frames(self, name: str, frames: Sequence[np.ndarray]) -> None:
        """Append camera frames to ``obs/<name>`` (like :meth:`write_feature`, without stacking them first).

        Each frame is one ``(H, W, C)`` array; read-only views of a message buffer are fine (each frame is
        written, or handed to a compression thread, as it is: hold no writable alias to it until
        :meth:`close`).
        """
        spec = next((f for f in self._schema.features if f.name == name), None)
        if spec is None:
            raise EpisodeStoreError(f"{self._store.path}: unknown feature {name!r}")
        if not frames:
            return
        path = spec.h5path
        dtype = np.dtype(spec.dtype)
        ds = self._dataset(path, tuple(spec.shape), dtype)
        sink = self._sinks.get(path)
        if sink is None:
            self.write_feature(name, np.stack([np.asarray(f) for f in frames]))
            return
        checked = []
        for f in frames:
            arr = np.asarray(f)
            if arr.shape != tuple(spec.shape) or arr.dtype != dtype:
                if arr.size != int(np.prod(spec.shape)):
                    raise EpisodeStoreError(
                        f"{self._store.path}: {self._g.name}/{path} frames have shape {tuple(spec.shape)}, got {arr.shape}"
                    )
                arr = np.asarray(arr, dtype).reshape(spec.shape)
            checked.append(arr)
        n0 = ds.shape[0]
        ds.resize(n0 + len(checked), axis=0)
        for i, arr in enumerate(checked):
            self._store._put_frame(sink, n0 + i, arr)

    def write_feature(self, name: str, values: np.ndarray) -> None:
        """Append rows to one feature's dataset only (frame counters move with :meth:`extend`)."""
        spec = next((f for f in self._schema.features if f.name == name), None)
        if spec is None:
            raise EpisodeStoreError(f"{self._store.path}: unknown feature {name!r}")
        values = np.asarray(values)
        self._append(spec.h5path, values.reshape(len(values), *spec.shape), np.dtype(spec.dtype))

    def append(self, timestamp: float, obs: Mapping[str, Any], action: Any = None, **kw: Any) -> None:
        """Append one frame (``obs`` values are single-frame arrays)."""
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        act = None if action is None else np.asarray(action, np.float32)[None]
        extra: dict[str, Any] = {}
        if kw.get("states") is not None:
            extra["states"] = np.asarray(kw["states"])[None]
        if kw.get("datagen") is not None:
            extra["datagen"] = {k: {n: np.asarray(a)[None] for n, a in d.items()} for k, d in kw["datagen"].items()}
        self.extend(np.array([timestamp]), batch, act, **extra)

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the frames where ``mask`` is true (compacts every dataset in place, streaming)."""
        mask = np.asarray(mask, bool)
        if len(mask) != self._n:
            raise EpisodeStoreError(f"keep mask has {len(mask)} entries for {self._n} frames")
        if mask.all():
            return
        self._store._drain(0)  # every queued frame in the file before rows move
        idx = np.flatnonzero(mask)
        # Runs of kept frames move down as blocks (destination <= source, ascending: never overwrites unread rows).
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        runs = [(int(r[0]), len(r)) for r in np.split(idx, breaks) if len(r)]

        def visit(name: str, obj: Any) -> None:
            static = name == INITIAL_STATE or name.startswith(INITIAL_STATE + "/")
            if isinstance(obj, h5py.Dataset) and not static and obj.shape and obj.shape[0] == self._n:
                row_bytes = max(1, int(np.prod(obj.shape[1:])) * obj.dtype.itemsize)
                step = max(1, (32 << 20) // row_bytes)
                dst = 0
                for src, length in runs:
                    if src != dst:
                        for off in range(0, length, step):
                            m = min(step, length - off)
                            obj[dst + off : dst + off + m] = obj[src + off : src + off + m]
                    dst += length
                obj.resize(len(idx), axis=0)

        self._g.visititems(visit)
        self._n = len(idx)
        if self._n and isinstance(self._g.get(INITIAL_STATE), h5py.Dataset) and isinstance(self._g.get(STATES), h5py.Dataset):
            self._g[INITIAL_STATE][...] = self._g[STATES][0]

    def close(self, success: bool | None = None, **attrs: Any) -> None:
        if self.closed:
            return
        self._store._drain(0)
        self._g.attrs[NUM_SAMPLES_ATTR] = self._n
        if success is not None:
            self._g.attrs[SUCCESS_ATTR] = bool(success)
        for k, v in attrs.items():
            self._g.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
        self.closed = True
        self._store._on_demo_closed(self)


class EpisodeStoreWriter:
    """Writes an Isaac Lab HDF5 episode store atomically.

    Use as a context manager: on a clean exit the temporary ``.partial-`` file is renamed to ``path``
    (:class:`robodata.atomic.AtomicPath`); on an exception it is deleted and ``path`` (if it existed) is left
    untouched::

        with EpisodeStoreWriter(path, schema) as store:
            demo = store.begin_episode(attrs={"seed": 3})
            demo.extend(timestamps, obs)
            demo.close(success=True)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: EpisodeSchema,
        *,
        env_name: str = "robodata",
        env_kwargs: Mapping[str, Any] | None = None,
        chunk_frames: int = 256,
        image_compression: ImageCompression = "none",
        threads: int | None = None,
    ):
        if image_compression not in IMAGE_COMPRESSIONS:
            raise EpisodeStoreError(f"{path}: image_compression {image_compression!r} is not one of "
                                    f"{', '.join(IMAGE_COMPRESSIONS)}")
        self.path = Path(path)
        self.schema = schema
        self.image_compression = image_compression
        # Deflating camera frames: ``threads`` workers (default one per core, at most 8), a bounded queue of
        # frames in flight, their chunks written in order as they complete.
        self.threads = max(1, threads if threads is not None else min(8, _cores()))
        self.frame_stats = FrameStats()
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: deque[tuple[_FrameSink, int, Future[bytes], np.ndarray, int]] = deque()
        self._max_inflight = 4 * self.threads
        self._policies: dict[str, _DeflatePolicy] = {}  # per camera dataset path, across demos
        self._atomic = AtomicPath(self.path, kind="file")
        self._tmp = self._atomic.tmp
        self._f = h5py.File(self._tmp, "w")
        self._data = self._f.create_group(DATA_GROUP)
        env_args = {ENV_NAME_KEY: env_name, ENV_TYPE_KEY: ENV_TYPE, ENV_KWARGS_KEY: dict(env_kwargs or {}),
                    ROBODATA_KEY: schema.to_json()}  # fmt: skip
        self._data.attrs[ENV_ARGS_ATTR] = json.dumps(env_args)
        self._data.attrs[TOTAL_ATTR] = 0
        self._chunk = chunk_frames
        self._open: DemoWriter | None = None
        self._next_index = 0
        self._total = 0
        self.demos: list[str] = []
        self.committed = False

    def begin_episode(self, index: int | None = None, attrs: Mapping[str, Any] | None = None) -> DemoWriter:
        if self._open is not None and not self._open.closed:
            raise EpisodeStoreError(f"{self.path}: close {self._open.name} before starting another episode")
        index = self._next_index if index is None else index
        name = demo_name(index)
        if name in self._data:
            raise EpisodeStoreError(f"{self.path}: {name} already exists")
        g = self._data.create_group(name)
        if all(f.h5path != OBS_GROUP for f in self.schema.features):  # else a flat obs dataset takes the name
            g.create_group(OBS_GROUP)
        for k, v in (attrs or {}).items():
            g.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
        self._next_index = max(self._next_index, index + 1)
        self._open = DemoWriter(self, g, self.schema, self._chunk)
        return self._open

    def _policy(self, path: str) -> _DeflatePolicy:
        pol = self._policies.get(path)
        if pol is None:
            c = self.image_compression
            pol = self._policies[path] = _DeflatePolicy(_DEFLATE_LEVEL.get(c, 0), adaptive=c == "auto")
        return pol

    def _put_frame(self, sink: _FrameSink, index: int, frame: np.ndarray) -> None:
        """Store one frame as chunk ``index`` of ``sink``'s dataset: now (raw), or once a thread deflated it."""
        buf = np.ascontiguousarray(frame)
        pol = sink.policy
        plan, epoch = pol.plan()
        if plan == "sample":  # a small try, here: its answer decides this frame and the next ones
            rows = _sample_rows(buf)
            packed = zlib.compress(rows, pol.level)
            deflate = pol.sampled(rows.nbytes, len(packed))
            if rows is buf:  # the sample was the whole (small) frame
                self._write_chunk(sink, index, buf, packed if deflate else None)
                plan = "written"
            else:
                plan, epoch = ("full" if deflate else None), pol.epoch
        if plan == "full":
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="robodata-deflate")
            self._inflight.append((sink, index, self._pool.submit(zlib.compress, buf, pol.level), buf, epoch))
        elif plan is None:
            self._write_chunk(sink, index, buf, None)
        if self._inflight:
            self._drain(self._max_inflight)

    def _drain(self, keep: int) -> None:
        """Write the deflated frames that are ready, waiting for the oldest while more than ``keep`` are queued."""
        q = self._inflight
        while q and (len(q) > keep or q[0][2].done()):
            sink, index, fut, buf, epoch = q.popleft()
            packed = fut.result()
            self._write_chunk(sink, index, buf, packed if sink.policy.keep(buf.nbytes, len(packed), epoch) else None)

    def _write_chunk(self, sink: _FrameSink, index: int, raw: np.ndarray, packed: bytes | None) -> None:
        st = self.frame_stats
        st.frames += 1
        st.raw_bytes += raw.nbytes
        if packed is not None:
            sink.ds.id.write_direct_chunk(sink.offset(index), packed, 0)
            st.stored_bytes += len(packed)
            st.deflated += 1
        else:  # raw: with a deflate pipeline, bit 0 of the filter mask says "not deflated"
            sink.ds.id.write_direct_chunk(sink.offset(index), raw, 1 if sink.policy.level else 0)
            st.stored_bytes += raw.nbytes

    def _stop_pool(self, cancel: bool) -> None:
        if cancel:
            for _sink, _i, fut, _buf, _epoch in self._inflight:
                fut.cancel()
            self._inflight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None

    def discard_open_episode(self) -> None:
        """Drop the episode being written (e.g. an episode that turned out empty)."""
        self._drain(0)
        if self._open is not None and not self._open.closed:
            name = self._open.name
            del self._data[name]
            self._open.closed = True
            self._open = None

    def set_attrs(self, demo: str, **attrs: Any) -> None:
        """Set attributes of an already written demo (e.g. a success flag that arrived after its last frame)."""
        g = self._data[demo]
        for k, v in attrs.items():
            g.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v

    def _on_demo_closed(self, demo: DemoWriter) -> None:
        self._total += demo.num_frames
        self.demos.append(demo.name)
        self._open = None

    def _write_filter_keys(self) -> None:
        """robomimic's ``/mask`` group in this store's demo names: each demo that carries its name in the file it
        came from (``source_demo``) is in the filter keys that named it there (the feature table's ``filter_keys``)."""
        keys = self.schema.extra.get(FILTER_KEYS)
        if not isinstance(keys, dict) or not keys:
            return
        ours: dict[str, list[str]] = {}
        for demo in self.demos:
            src = self._data[demo].attrs.get(SOURCE_DEMO_ATTR)
            if src is not None:
                ours.setdefault(src.decode() if isinstance(src, bytes) else str(src), []).append(demo)
        mask = self._f.create_group(MASK_GROUP)
        for key, names in keys.items():
            mine = sorted({d for n in names for d in ours.get(n, [])}, key=demo_index)
            mask.create_dataset(key, data=np.array(mine, dtype="S"))

    def commit(self) -> Path:
        if self._open is not None and not self._open.closed:
            self._open.close()
        self._drain(0)
        self._stop_pool(cancel=False)
        self._data.attrs[TOTAL_ATTR] = self._total
        self._write_filter_keys()
        self._f.close()
        self._atomic.commit()
        self.committed = True
        return self.path

    def abort(self) -> None:
        self._stop_pool(cancel=True)
        try:
            self._f.close()
        except Exception:  # noqa: BLE001 - already closed or broken; the temp file goes either way
            pass
        self._atomic.abort()

    def __enter__(self) -> EpisodeStoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@dataclass
class Episode:
    """One episode read fully into memory (for small episodes, tests and checks)."""

    name: str
    timestamps: np.ndarray
    obs: dict[str, np.ndarray]
    actions: np.ndarray
    states: np.ndarray
    attrs: dict[str, Any]
    datagen: dict[str, dict[str, np.ndarray]]

    def __len__(self) -> int:
        return len(self.timestamps)


# Obs terms that are the previous action (Isaac Lab's ``last_action``), kept but not part of the state vector.
_ACTION_ECHOES = ("actions", "last_action", "last_actions", "prev_action", "prev_actions")
_QUAT_WORDS = ("quat", "orientation", "orient", "rot")


def _datasets(group: h5py.Group, skip: str | None = None) -> list[tuple[str, h5py.Dataset]]:
    """Every dataset under ``group`` by its path relative to it, in file order (``skip``: a subgroup left out)."""
    out: list[tuple[str, h5py.Dataset]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and not (skip and (name == skip or name.startswith(skip + "/"))):
            out.append((name, obj))

    group.visititems(visit)
    return out


def _infer_role(rel: str, ds: h5py.Dataset) -> str:
    """The role of an Isaac Lab obs term: camera (uint8 T,H,W,3), state (numeric T or T,D), else extra."""
    leaf = rel.rsplit("/", 1)[-1]
    if ds.dtype == np.uint8 and ds.ndim == 4 and ds.shape[-1] == 3:
        return "image"
    numeric = np.issubdtype(ds.dtype, np.number) or ds.dtype == np.bool_
    if numeric and ds.ndim <= 2 and leaf not in _ACTION_ECHOES:
        return "state"
    return "extra"


def _quaternion_columns(spec: FeatureSpec) -> list[int]:
    """Column offsets of the quaternions in a state feature, judged by its name (``eef_quat``: [0],
    ``cube_orientations`` (12,): [0, 4, 8], ``root_pose`` / ``*_pose`` (7,): [3]); [] for anything else."""
    leaf = (spec.path or spec.name).rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower()
    width = int(np.prod(spec.shape)) if spec.shape else 1
    if any(w in leaf for w in _QUAT_WORDS) and width % 4 == 0 and "pos" not in leaf.replace("pose", ""):
        return list(range(0, width, 4))
    if leaf.endswith("pose") and width == 7:
        return [3]
    return []


def parse_quaternion_columns(items: Sequence[str]) -> dict[str, list[int]]:
    """``FEATURE:START[,START...]`` items (the CLIs' ``--quaternion-column``) as ``quaternion_columns``; ``FEATURE:``
    says the feature holds no quaternion. Repeated features add up."""
    out: dict[str, list[int]] = {}
    for item in items:
        name, sep, starts = item.rpartition(":")
        try:
            cols = [int(c) for c in starts.split(",") if c.strip()]
        except ValueError:
            cols = None
        if not sep or not name or cols is None:
            raise EpisodeStoreError(f"--quaternion-column {item!r}: expected FEATURE:START (a column index, e.g. "
                                    "object:3), FEATURE:S1,S2 or FEATURE: (it holds none)")
        out.setdefault(name, []).extend(cols)
    return out


@dataclass
class DemoBatch:
    """Frames ``[s, e)`` of one demo, as every tier copies them: features by name, actions, the flat state
    vector (``None`` when the demo keeps a nested sim state), Mimic's datagen_info, and every other per-frame
    dataset by its path (``passthrough``: nested ``states/...``, ``processed_actions``, ...)."""

    s: int
    e: int
    timestamps: np.ndarray
    obs: dict[str, np.ndarray]
    actions: np.ndarray
    states: np.ndarray | None
    datagen: dict[str, dict[str, np.ndarray]]
    passthrough: dict[str, np.ndarray]


@dataclass
class _DemoLayout:
    """Where a demo keeps what: datagen datasets, other per-frame and static datasets (paths in the group)."""

    datagen: list[tuple[str, str, str]]  # (kind, name, path)
    per_frame: list[str]
    static: list[str]
    flat_states: bool


class EpisodeStore:
    """Reads an Isaac Lab HDF5 episode store: robodata's own, or one written by Isaac Lab's recorder / robomimic.

    The one reader of the format: every tier (ingest, LeRobot, MimicGen, augmentation, inspect) reads demos
    through it. A file written by Isaac Lab's ``HDF5DatasetFileHandler`` keeps dict-valued terms as nested
    groups (``states/articulation/robot/joint_position``, ``initial_state/...``, ``obs/<group>/<term>``),
    gzip-compresses every dataset and stores no timestamps; its features are inferred from the first demo's
    ``obs`` tree (a nested term ``obs/policy/joint_pos`` becomes the feature ``policy.joint_pos``), the sim
    state and everything else are carried as they are (:meth:`batches` ``passthrough``, :meth:`statics`),
    and timestamps are ``frame / fps`` (``fps``, else ``env_kwargs`` ``fps`` or robomimic's ``control_freq``,
    else 30, assumed: :attr:`notes` says which). Isaac Lab's flat policy observations (``concatenate_terms=True``:
    ``obs`` is one ``(T, D)`` dataset, not a group) are one state feature named ``obs``. robomimic's filter
    keys (the root ``/mask`` group) are kept in ``schema.extra["filter_keys"]`` and written back as ``/mask``.

    Quaternions: robodata's order is ``xyzw``. A foreign file's order (Isaac Lab 2.x ``wxyz``, 3.0 ``xyzw``)
    is decided by :func:`robodata.formats.quaternions.decide_order` (``quaternion_order``, a stamp in
    ``env_args``, else the data) and the quaternion columns of its obs features are given in ``xyzw``: those
    the name rule finds (``eef_quat``, ``*_pose``) and those ``quaternion_columns`` names (feature -> column
    starts; it replaces the name rule for that feature, ``[]``: none). A 4- or 7-wide state feature whose
    columns hold unit quaternions but that neither covers stays in the file's order, and the store says so
    (``schema.extra["unconverted_quaternion_columns"]``, a note). The nested sim state stays in the file's
    order (the simulator that replays it needs it so) and the schema says which
    (``schema.extra["sim_state_quaternion_order"]``).

    Raises :class:`EpisodeStoreError` naming the file (and the group) when the layout is not what Isaac Lab writes.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None,
                 quaternion_order: str | None = None,
                 quaternion_columns: Mapping[str, Sequence[int]] | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise EpisodeStoreError(f"{self.path}: no such file")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as err:
            raise EpisodeStoreError(f"{self.path}: not a readable HDF5 file ({err})") from err
        try:
            self._open(fps, quaternion_order, quaternion_columns)
        except BaseException:
            self._f.close()
            raise

    def _open(self, fps: float | None, quaternion_order: str | None,
              quaternion_columns: Mapping[str, Sequence[int]] | None) -> None:
        if DATA_GROUP not in self._f or not isinstance(self._f[DATA_GROUP], h5py.Group):
            raise EpisodeStoreError(f"{self.path}: no /data group (not an Isaac Lab / robomimic HDF5 episode file)")
        self._data = self._f[DATA_GROUP]
        names = [k for k in self._data.keys() if DEMO_RE.match(k)]
        self.demo_names = sorted(names, key=demo_index)
        raw = self._data.attrs.get(ENV_ARGS_ATTR, "{}")
        try:
            env_args = json.loads(raw) if isinstance(raw, (str, bytes)) else {}
        except json.JSONDecodeError as err:
            raise EpisodeStoreError(
                f"{self.path}: /{DATA_GROUP} attribute {ENV_ARGS_ATTR} is not JSON ({err})"
            ) from err
        self.env_args: dict[str, Any] = env_args if isinstance(env_args, dict) else {}
        for name in self.demo_names:
            g = self._data[name]
            where = f"{self.path}: /{DATA_GROUP}/{name}"
            if not isinstance(g, h5py.Group):
                raise EpisodeStoreError(f"{where} is a dataset, not a demo group")
            if not isinstance(g.get(ACTIONS), h5py.Dataset):
                raise EpisodeStoreError(f"{where} lacks the {ACTIONS!r} dataset (one row per frame)")
            if not isinstance(g.get(OBS_GROUP), (h5py.Group, h5py.Dataset)):
                raise EpisodeStoreError(f"{where} lacks the {OBS_GROUP!r} group (or a flat {OBS_GROUP!r} dataset)")
            if g[ACTIONS].ndim < 1:
                raise EpisodeStoreError(f"{where}/{ACTIONS} is a scalar, not one row per frame")
        self._layouts: dict[str, _DemoLayout] = {}
        self.foreign = not self.env_args.get(ROBODATA_KEY)
        self.timestamps_inferred = False
        self.fps_source = "stored"  # where the frame rate of a file without timestamps came from
        self.schema = self._schema(fps)
        self._quat_cols: dict[str, list[int]] = {}
        self.quaternion_order: OrderDecision | None = None  # decided for foreign files only (ours are xyzw)
        self.unconverted_quaternions: dict[str, list[int]] = {}  # quaternion-like columns left as the file has them
        if self.foreign:
            self._decide_quaternions(quaternion_order, quaternion_columns)
            masks = self._filter_keys()
            if masks:
                self.schema.extra[FILTER_KEYS] = masks

    def _schema(self, fps: float | None) -> EpisodeSchema:
        rd = self.env_args.get(ROBODATA_KEY)
        if rd:
            try:
                return EpisodeSchema.from_json(rd)
            except (KeyError, TypeError, ValueError) as err:
                raise EpisodeStoreError(f"{self.path}: env_args.{ROBODATA_KEY} is not a feature table ({err!r})") from err
        # A foreign Isaac Lab file: infer features from the first demo's obs tree.
        feats: list[FeatureSpec] = []
        if self.demo_names:
            first = self.demo_names[0]
            g, n = self._data[first], self.num_samples(first)
            used = {ACTIONS}
            obs = g[OBS_GROUP]
            if isinstance(obs, h5py.Dataset):  # Isaac Lab's flat policy obs (concatenate_terms=True): (T, D)
                if obs.ndim != 2 or obs.shape[0] != n:
                    raise EpisodeStoreError(f"{self.path}: /{DATA_GROUP}/{first}/{OBS_GROUP} is a flat dataset of "
                                            f"shape {obs.shape}, not one row per frame of its {n} ({n}, D)")
                feats.append(FeatureSpec(OBS_GROUP, "state", tuple(obs.shape[1:]), str(obs.dtype), path=OBS_GROUP))
            for rel, ds in _datasets(obs, skip=DATAGEN_GROUP) if isinstance(obs, h5py.Group) else []:
                if not ds.shape or ds.shape[0] != n:
                    continue  # not one row per frame: carried as a static dataset
                name = rel.replace("/", ".")
                if name in used:  # obs/actions (the last action) beside the action itself
                    name = f"{OBS_GROUP}.{name}"
                used.add(name)
                feats.append(FeatureSpec(name, _infer_role(rel, ds), tuple(ds.shape[1:]), str(ds.dtype),
                                         path=None if name == rel else obs_path(rel)))
            if not any(f.role == "state" for f in feats) and isinstance(g.get(STATES), h5py.Group):
                # no low-dim observation: the robots' joint positions of the sim state are the state
                for rel, ds in _datasets(g[STATES]):
                    parts = rel.split("/")
                    if len(parts) == 3 and parts[0] == "articulation" and parts[2] == "joint_position":
                        feats.append(FeatureSpec(f"{parts[1]}.joint_position", "state", tuple(ds.shape[1:]),
                                                 str(ds.dtype), path=f"{STATES}/{rel}"))
            feats.append(FeatureSpec(ACTIONS, "action", tuple(g[ACTIONS].shape[1:]), "float32"))
            self.timestamps_inferred = TIMESTAMPS not in g
        kwargs = self.env_args.get(ENV_KWARGS_KEY)
        kwargs = kwargs if isinstance(kwargs, dict) else {}
        # the rate: a setting, else what env_kwargs say (robomimic/robosuite's control_freq), else assumed
        rate, self.fps_source = float(fps or 0), "set"
        for key in ("fps", "control_freq"):
            if not rate and isinstance(kwargs.get(key), (int, float)) and kwargs[key] > 0:
                rate, self.fps_source = float(kwargs[key]), f"{ENV_ARGS_ATTR} {ENV_KWARGS_KEY}.{key}"
        if not rate:
            rate, self.fps_source = DEFAULT_FPS, "assumed"
        return EpisodeSchema(feats, rate, task=str(self.env_args.get(ENV_NAME_KEY, "") or ""))

    def _decide_quaternions(self, setting: str | None, explicit: Mapping[str, Sequence[int]] | None) -> None:
        from robodata.formats.quaternions import CANONICAL, decide_order

        given = self._checked_quaternion_columns(explicit or {})
        for f in self.schema.features:
            cols = given[f.name] if f.name in given else _quaternion_columns(f) if f.role == "state" else []
            if cols:
                self._quat_cols[f.name] = cols
        samples: dict[str, np.ndarray] = {}
        if self.demo_names:
            g = self._data[self.demo_names[0]]
            n = min(self.num_samples(self.demo_names[0]), 512)
            for f in self.schema.features:
                for c in self._quat_cols.get(f.name, []):
                    samples[f"{f.h5path}[{c}:{c + 4}]"] = g[f.h5path][:n].reshape(n, -1)[:, c : c + 4]
            for top in (STATES, INITIAL_STATE):
                if isinstance(g.get(top), h5py.Group):
                    for rel, ds in _datasets(g[top]):
                        if rel.endswith("root_pose") and ds.ndim == 2 and ds.shape[1] == 7:
                            samples[f"{top}/{rel}[3:7]"] = ds[:n, 3:7]
        try:
            decision = decide_order(setting, self.env_args, samples, str(self.path))
        except ValueError as err:
            raise EpisodeStoreError(str(err)) from err
        self.quaternion_order = decision
        extra = self.schema.extra
        extra["quaternion_order"] = CANONICAL
        extra["source_quaternion_order"] = decision.describe()
        extra["sim_state_quaternion_order"] = decision.order
        if self._quat_cols:
            extra["quaternion_columns"] = dict(self._quat_cols)
        self.unconverted_quaternions = self._quaternion_like(given)
        if self.unconverted_quaternions:  # the store says which columns its quaternion_order does not cover
            extra["unconverted_quaternion_columns"] = dict(self.unconverted_quaternions)

    def _checked_quaternion_columns(self, given: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
        """``quaternion_columns`` checked against the features: each names a numeric feature and 4-wide column
        ranges inside it (an empty list: the feature holds no quaternion, whatever its name says)."""
        out: dict[str, list[int]] = {}
        for name, starts in given.items():
            spec = next((f for f in self.schema.features if f.name == name), None)
            if spec is None or spec.role in ("image", "action"):
                raise EpisodeStoreError(f"{self.path}: quaternion_columns names {name!r}, which is no state feature "
                                        f"of the file (features: {[f.name for f in self.schema.of_role('state')]})")
            width = int(np.prod(spec.shape)) if spec.shape else 1
            cols = sorted({int(c) for c in starts})
            bad = [c for c in cols if c < 0 or c + 4 > width]
            if bad or any(b - a < 4 for a, b in zip(cols, cols[1:], strict=False)):
                raise EpisodeStoreError(f"{self.path}: quaternion_columns {name!r}: starts {cols} do not fit 4-wide "
                                        f"quaternions in its {width} columns without overlap")
            out[name] = cols
        return out

    def _quaternion_like(self, given: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
        """State features 4 wide (a quaternion) or 7 wide (position + quaternion) whose columns hold unit
        quaternions in the first demo but are not converted (neither the name rule nor ``quaternion_columns``
        covers them): their order is the file's, not the store's ``quaternion_order``."""
        out: dict[str, list[int]] = {}
        if not self.demo_names:
            return out
        g = self._data[self.demo_names[0]]
        n = min(self.num_samples(self.demo_names[0]), 512)
        for f in self.schema.of_role("state"):
            width = int(np.prod(f.shape)) if f.shape else 1
            if width not in (4, 7) or f.name in self._quat_cols or f.name in given or n == 0:
                continue
            start = width - 4
            q = np.asarray(g[f.h5path][:n], np.float64).reshape(n, -1)[:, start:]
            if np.isfinite(q).all() and np.all(np.abs(np.linalg.norm(q, axis=1) - 1.0) <= _UNIT_QUATERNION_TOL):
                out[f.name] = [start]
        return out

    def _filter_keys(self) -> dict[str, list[str]]:
        """robomimic's filter keys (the root ``/mask`` group: ``train``, ``valid``, ... each a list of demo names)."""
        mask = self._f.get(MASK_GROUP)
        out: dict[str, list[str]] = {}
        if not isinstance(mask, h5py.Group):
            return out
        for key, ds in mask.items():
            if not isinstance(ds, h5py.Dataset):
                raise EpisodeStoreError(f"{self.path}: /{MASK_GROUP}/{key} is a group, not a list of demo names")
            names = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(ds[()]).reshape(-1)]
            unknown = [v for v in names if v not in self.demo_names]
            if unknown:
                raise EpisodeStoreError(f"{self.path}: /{MASK_GROUP}/{key} names demos the file lacks ({unknown[:3]})")
            out[str(key)] = names
        return out

    @property
    def notes(self) -> list[str]:
        """What reading this file assumed or decided, one sentence each (for the user: ingest, convert print them)."""
        out: list[str] = []
        if self.timestamps_inferred:
            how = {"set": "set", "assumed": "assumed: set fps to change"}.get(self.fps_source, f"from {self.fps_source}")
            out.append(f"no timestamps in the file: frames are {self.schema.fps:g} Hz apart ({how})")
        if self.quaternion_order is not None and self._quat_cols:
            listed = ", ".join(f"{k}{v}" for k, v in self._quat_cols.items())
            out.append(f"quaternions {self.quaternion_order.describe()}; features written as xyzw (columns {listed})")
        if self.quaternion_order is not None and self.quaternion_order.order != "xyzw":
            for name, cols in self.unconverted_quaternions.items():
                c = cols[0]
                out.append(f"feature {name!r} looks like it holds a quaternion at column {c} but is not converted "
                           f"(left {self.quaternion_order.order}); quaternion_columns {{{name}: [{c}]}} "
                           f"(--quaternion-column {name}:{c}) converts it, {{{name}: []}} says it holds none")
        if FILTER_KEYS in self.schema.extra and self.foreign:
            out.append(f"robomimic filter keys kept: {', '.join(sorted(self.schema.extra[FILTER_KEYS]))}")
        return out

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    def __len__(self) -> int:
        return len(self.demo_names)

    @property
    def total_frames(self) -> int:
        return sum(self.num_samples(n) for n in self.demo_names)

    def group(self, name: str) -> h5py.Group:
        return self._data[name]

    def num_samples(self, name: str) -> int:
        g = self._data[name]
        return int(g.attrs.get(NUM_SAMPLES_ATTR, g[ACTIONS].shape[0]))

    def attrs(self, name: str) -> dict[str, Any]:
        """The demo's attributes (JSON strings decoded); a demo of a foreign file with filter keys also says its
        name there (``source_demo``: a writer maps the filter keys to the names it gives the demos)."""
        out: dict[str, Any] = {SOURCE_DEMO_ATTR: name} if self.foreign and FILTER_KEYS in self.schema.extra else {}
        for k, v in self._data[name].attrs.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, str) and v[:1] in "[{":
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    pass
            out[k] = v
        return out

    def timestamps(self, name: str) -> np.ndarray:
        g = self._data[name]
        if TIMESTAMPS in g:
            return g[TIMESTAMPS][()]
        return np.arange(self.num_samples(name), dtype=np.float64) / self.schema.fps

    # -- features, by name, wherever the demo keeps them --------------------------------------------------

    def spec(self, feature: str) -> FeatureSpec:
        for f in self.schema.features:
            if f.name == feature:
                return f
        raise EpisodeStoreError(f"{self.path}: no feature {feature!r} (features: {[f.name for f in self.schema.features]})")

    def has(self, name: str, feature: str) -> bool:
        """Whether demo ``name`` holds the dataset of ``feature``."""
        return isinstance(self._data[name].get(self.spec(feature).h5path), h5py.Dataset)

    def dataset(self, name: str, feature: str) -> h5py.Dataset:
        """The h5py dataset of ``feature`` in demo ``name`` (raises naming the group path when it is missing)."""
        spec = self.spec(feature)
        ds = self._data[name].get(spec.h5path)
        if not isinstance(ds, h5py.Dataset):
            raise EpisodeStoreError(f"{self.path}: /{DATA_GROUP}/{name}/{spec.h5path} is missing (feature {feature!r})")
        return ds

    def feature(self, name: str, feature: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` of a feature (camera frames inflated in threads; quaternions in ``xyzw``)."""
        ds = self.dataset(name, feature)
        rows = read_frames(ds, start, stop) if ds.ndim == 4 else ds[start:stop]
        cols = self._quat_cols.get(feature)
        if cols and self.quaternion_order is not None and self.quaternion_order.order != "xyzw":
            from robodata.formats.quaternions import reorder_columns

            rows = reorder_columns(rows, cols, self.quaternion_order.order, "xyzw")
        return rows

    def state_vector(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The flat ``(n, S)`` state: the ``states`` dataset where the demo has one, else the state features."""
        g = self._data[name]
        if isinstance(g.get(STATES), h5py.Dataset):
            return g[STATES][start:stop].reshape(-1, g[STATES].shape[1] if g[STATES].ndim > 1 else 1)
        n = len(range(*slice(start, stop).indices(self.num_samples(name))))
        parts = [self.feature(name, f.name, start, stop).reshape(n, -1).astype(np.float32)
                 for f in self.schema.of_role("state")]
        return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.float32)

    def _layout(self, name: str) -> _DemoLayout:
        lay = self._layouts.get(name)
        if lay is not None:
            return lay
        g, n = self._data[name], self.num_samples(name)
        claimed = {f.h5path for f in self.schema.features if f.role != "action"} | {ACTIONS, TIMESTAMPS}
        datagen: list[tuple[str, str, str]] = []
        per_frame: list[str] = []
        static: list[str] = []
        flat_states = isinstance(g.get(STATES), h5py.Dataset)
        dg_prefix = f"{OBS_GROUP}/{DATAGEN_GROUP}/"
        for path, ds in _datasets(g):
            if path in claimed or (flat_states and path in (STATES, INITIAL_STATE)):
                continue
            parts = path.split("/")
            if path.startswith(dg_prefix) and len(parts) == 4:
                datagen.append((parts[2], parts[3], path))
            elif path.startswith(dg_prefix) and len(parts) == 3:
                datagen.append((parts[2], parts[2], path))  # a kind stored as one dataset
            elif path == INITIAL_STATE or path.startswith(INITIAL_STATE + "/"):
                static.append(path)
            elif not ds.shape or ds.shape[0] != n:
                if path.startswith((STATES + "/", OBS_GROUP + "/")) or path == PROCESSED_ACTIONS:
                    raise EpisodeStoreError(f"{self.path}: /{DATA_GROUP}/{name}/{path} has "
                                            f"{ds.shape[0] if ds.shape else 'no'} rows for the demo's {n} frames")
                static.append(path)
            else:
                per_frame.append(path)
        lay = _DemoLayout(datagen, per_frame, static, flat_states)
        self._layouts[name] = lay
        return lay

    def datagen(self, name: str, start: int = 0, stop: int | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Isaac Lab Mimic's ``obs/datagen_info``: ``{kind: {name: rows}}`` (empty when the demo has none)."""
        g = self._data[name]
        out: dict[str, dict[str, np.ndarray]] = {}
        for kind, item, path in self._layout(name).datagen:
            out.setdefault(kind, {})[item] = g[path][start:stop]
        return out

    def statics(self, name: str) -> dict[str, np.ndarray]:
        """The demo's datasets that are not per frame (``initial_state/...`` of an Isaac Lab recording), by path."""
        g = self._data[name]
        return {p: g[p][()] for p in self._layout(name).static}

    def batches(self, name: str, batch: int = 256, *, images: bool = True) -> Iterator[DemoBatch]:
        """Demo ``name`` in batches of ``batch`` frames, everything in it (see :class:`DemoBatch`)."""
        g = self._data[name]
        n = self.num_samples(name)
        ts = self.timestamps(name)
        lay = self._layout(name)
        feats = [f for f in self.schema.features if f.role != "action" and (images or f.role != "image")]
        for s in range(0, n, batch):
            e = min(n, s + batch)
            obs = {f.name: self.feature(name, f.name, s, e) for f in feats if self.has(name, f.name)}
            yield DemoBatch(
                s, e, ts[s:e], obs, g[ACTIONS][s:e],
                g[STATES][s:e] if lay.flat_states else None,
                self.datagen(name, s, e),
                {p: g[p][s:e] for p in lay.per_frame},
            )

    def read(self, name: str, *, images: bool = True) -> Episode:
        g = self._data[name]
        obs = {f.name: self.feature(name, f.name) for f in self.schema.features
               if f.role != "action" and (images or f.role != "image") and self.has(name, f.name)}
        return Episode(name, self.timestamps(name), obs, g[ACTIONS][()], self.state_vector(name), self.attrs(name),
                       self.datagen(name))

    def iter_frames(self, name: str, keys: list[str], batch: int = 64) -> Iterator[dict[str, np.ndarray]]:
        """Yield batches (dicts of ``(b, ...)`` arrays) of the given features, ``actions`` or ``timestamps``."""
        g = self._data[name]
        n = self.num_samples(name)
        for s in range(0, n, batch):
            e = min(n, s + batch)
            out = {}
            for k in keys:
                if k == ACTIONS:
                    out[k] = g[ACTIONS][s:e]
                elif k == TIMESTAMPS:
                    out[k] = self.timestamps(name)[s:e]
                else:
                    out[k] = self.feature(name, k, s, e)
            yield out
