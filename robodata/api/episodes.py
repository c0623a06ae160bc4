"""Episode rows and what happens to them, for both runners (Ray Data in the Python API, Dagster assets).

A canonical store becomes rows (:func:`episode_rows`); a user's stage runs on rows with each episode's
failure isolated (:func:`run_episode_hook`, :func:`run_batch_hook`); validators decide whether a row goes on
(:func:`validate_episode`); rows become a canonical store again (:func:`write_store`), carrying the arrays
and task text a stage changed. The runners differ only in how they move rows and where they record events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robodata.api.errors import PipelineError
from robodata.api.extensions import ARRAY_COLUMNS, REQUIRED_COLUMNS, PipelineStage, Validator
from robodata.stages.base import Finding

Row = dict[str, Any]
FRAMES_COLUMN = "_frames"  # [start, stop) of a row's frames in its source demo (a stage that cuts sets it)
NAME_COLUMNS = {"action": "action_names", "observation.state": "state_names"}  # a stage's names for the columns


@dataclass
class EpisodeEvent:
    """Something that happened to one episode: ``dropped`` by a stage, ``failed`` in one, ``quarantined``."""

    kind: str
    episode_id: str
    stage: str
    message: str
    findings: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        key = "error" if self.kind == "failed" else "reason"
        out: dict[str, Any] = {"episode_id": self.episode_id, "stage": self.stage, key: self.message}
        if self.findings:
            out["findings"] = self.findings
        return out


def signature(action: np.ndarray, state: np.ndarray) -> str:
    """A 128-bit digest of an episode's low-dim content (exact-duplicate test; tells changed arrays apart)."""
    h = hashlib.blake2b(digest_size=16)
    for a in (action, state):
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def low_dim(es: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``action`` and ``observation.state`` of one episode of an open EpisodeStore, as LeRobot will write them."""
    from robodata.formats.isaaclab import ACTIONS

    g = es.group(name)
    n = es.num_samples(name)
    states = es.schema.of_role("state")
    if states and all(es.has(name, f.name) for f in states):
        state = np.concatenate([es.feature(name, f.name, 0, n).reshape(n, -1) for f in states], axis=1)
    else:
        state = es.state_vector(name, 0, n)
    return np.asarray(g[ACTIONS][:n], np.float32).reshape(n, -1), np.asarray(state, np.float32)


FRAME_HASHES_COLUMN = "_frame_hashes"  # JSON [{camera: [pHash, ...]}, digest]: what dedup keeps of the images


def episode_rows(store: Path, *, key: str, source: str, rel: str, default_task: str = "",
                 frames_per_camera: int = 0) -> list[Row]:
    """One row per episode of the canonical store at ``store`` (known in its store as ``rel``). With
    ``frames_per_camera``, each row carries the perceptual hashes of that many frames per camera (dedup's, read
    here once while the store is open: later the row travels without its images)."""
    from robodata.dedup import hash_frames, sampled_frames
    from robodata.formats.isaaclab import EpisodeStore

    rows = []
    with EpisodeStore(store) as es:
        for name in es.demo_names:
            action, state = low_dim(es, name)
            attrs = es.attrs(name)
            success = attrs.get("success")
            row = {
                "episode_id": f"{key}/{name}", "recording": key, "source": source, "store": rel, "demo": name,
                "num_frames": int(len(action)), "fps": float(es.schema.fps),
                "task": str(attrs.get("task") or es.schema.task or default_task),
                "success": None if success is None else bool(success),
                "action": action, "observation.state": state, "_signature": signature(action, state),
            }
            if frames_per_camera:
                row[FRAME_HASHES_COLUMN] = json.dumps(hash_frames(sampled_frames(es, name, frames_per_camera)))
            rows.append(row)
    return rows


# ---- a user's stage on rows, one episode's failure never another's ----------------------------------------


def frames_of(row: Row) -> tuple[int, int] | None:
    """The ``[start, stop)`` frames of its source demo a row holds (``_frames``, set by a stage that cuts
    episodes), or None when it holds the whole demo."""
    fr = row.get(FRAMES_COLUMN)
    if fr is None or (isinstance(fr, str) and not fr):
        return None
    a = np.asarray(fr).reshape(-1)
    if a.shape != (2,):
        raise PipelineError(f"episode {row.get('episode_id')}: {FRAMES_COLUMN} is {fr!r}, not [start, stop)")
    return int(a[0]), int(a[1])


def names_of(row: Row, column: str) -> list[str] | None:
    """The per-column names a stage gave an array column (``action_names`` / ``state_names``), or None."""
    v = row.get(NAME_COLUMNS[column])
    if v is None or (isinstance(v, str) and not v):
        return None
    return [str(x) for x in np.asarray(v, dtype=object).reshape(-1)]


def carried(row: Row) -> dict[str, str]:
    """What the writer needs of a row besides its arrays (frames cut, column names), as one JSON column for
    the metadata rows the driver keeps ("" when the row holds its whole demo under the source's names)."""
    doc: dict[str, Any] = {}
    fr = frames_of(row)
    if fr is not None:
        doc[FRAMES_COLUMN] = list(fr)
    for col, key in NAME_COLUMNS.items():
        names = names_of(row, col)
        if names is not None:
            doc[key] = names
    return {"carried": json.dumps(doc) if doc else ""}


def uncarried(row: Row) -> Row:
    """The columns :func:`carried` packed, back as row columns."""
    return json.loads(row["carried"]) if row.get("carried") else {}


def check_row(stage: str, row: Row, before: Row | None) -> None:
    """A stage's output row has the required columns, arrays of its length, and the same episode; its length
    changes only with ``_frames`` saying which frames of the source demo it holds (a stage that cuts)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise PipelineError(f"stage {stage!r} returned the wrong schema: missing column(s) {', '.join(missing)}")
    n = int(row["num_frames"])
    for col in ARRAY_COLUMNS:
        arr = np.asarray(row[col])
        if arr.ndim != 2 or arr.shape[0] != n:
            raise PipelineError(f"stage {stage!r} returned the wrong schema: {col} has shape {arr.shape}, "
                                f"expected ({n}, D)")
        names = names_of(row, col)
        if names is not None and len(names) != arr.shape[1]:
            raise PipelineError(f"stage {stage!r}: {NAME_COLUMNS[col]} has {len(names)} names for the "
                                f"{arr.shape[1]} columns of {col}")
    fr = frames_of(row)
    if fr is not None and (fr[0] < 0 or fr[1] - fr[0] != n):
        raise PipelineError(f"stage {stage!r}: {FRAMES_COLUMN} {list(fr)} does not hold the row's {n} frames")
    if before is not None:
        if row["episode_id"] != before["episode_id"]:
            raise PipelineError(f"stage {stage!r} changed episode_id ({before['episode_id']} -> {row['episode_id']})")
        if n != int(before["num_frames"]):
            if fr is None:
                raise PipelineError(f"stage {stage!r} changed the number of frames ({before['num_frames']} -> {n}) "
                                    f"without saying which frames it kept ({FRAMES_COLUMN}: [start, stop) of the "
                                    "source demo; robodata.trajectory_api.cut_row sets it)")
            lo, hi = frames_of(before) or (0, int(before["num_frames"]))
            if fr[0] < lo or fr[1] > hi:
                raise PipelineError(f"stage {stage!r}: {FRAMES_COLUMN} {list(fr)} lies outside the frames "
                                    f"[{lo}, {hi}) the episode held before it")


def origin(row: Row) -> str:
    """The episode a row came from: itself, or the episode a segment was cut from (``segment_of``)."""
    return str(row.get("segment_of") or row["episode_id"])


def _failure(stage: PipelineStage, row: Row, err: Exception) -> EpisodeEvent:
    msg = str(err) if isinstance(err, PipelineError) else f"stage {stage.label!r} raised {type(err).__name__}: {err}"
    return EpisodeEvent("failed", row["episode_id"], stage.label, f"{msg} (episode {row['episode_id']})")


def _drop(stage: PipelineStage, row: Row) -> EpisodeEvent:
    return EpisodeEvent("dropped", row["episode_id"], stage.label, f"dropped by stage {stage.label!r}")


def run_episode_hook(stage: PipelineStage, row: Row) -> tuple[list[Row], list[EpisodeEvent]]:
    try:
        out = stage.process_episode(dict(row))
        if out is None:
            return [], [_drop(stage, row)]
        check_row(stage.label, out, row)
        return [out], []
    except Exception as err:  # noqa: BLE001 - a user's stage failing one episode fails only that episode
        return [], [_failure(stage, row, err)]


def rows_of(batch: dict[str, Any]) -> list[Row]:
    n = len(batch["episode_id"]) if "episode_id" in batch else len(next(iter(batch.values()), []))
    return [{k: v[i] for k, v in batch.items()} for i in range(n)]


def batch_of(rows: list[Row], like: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rows as a numpy batch (variable-length arrays as object arrays), the shape Ray Data hands to UDFs."""
    cols = list(rows[0]) if rows else list(like or {})
    out: dict[str, Any] = {}
    for c in cols:
        vals = [r[c] for r in rows]
        if c in ARRAY_COLUMNS or (vals and isinstance(vals[0], np.ndarray)):
            arr = np.empty(len(vals), dtype=object)
            arr[:] = vals
            out[c] = arr
        else:
            out[c] = np.asarray(vals) if vals else np.asarray((like or {}).get(c, []))[:0]
    return out


def run_batch_hook(stage: PipelineStage, rows: list[Row]) -> tuple[list[Row], list[EpisodeEvent]]:
    """``process_batch`` on ``rows``; if it raises, again one episode at a time to name the one that fails."""

    def once(rs: list[Row]) -> list[Row]:
        got = rows_of(stage.process_batch(batch_of(rs)))
        before = {r["episode_id"]: r for r in rs}
        for r in got:
            check_row(stage.label, r, before.get(r.get("episode_id", "")))
        return got

    events: list[EpisodeEvent] = []
    try:
        out = once(rows)
    except Exception:  # noqa: BLE001 - find the episode(s) that fail, one at a time
        out = []
        for r in rows:
            try:
                out += once([r])
            except Exception as err:  # noqa: BLE001
                events.append(_failure(stage, r, err))
    kept = {r["episode_id"] for r in out} | {origin(r) for r in out}
    failed = {e.episode_id for e in events}
    events += [_drop(stage, r) for r in rows if r["episode_id"] not in kept | failed]
    return out, events


def run_stage_on_rows(stage: PipelineStage, rows: list[Row], batch_size: int) -> tuple[list[Row], list[EpisodeEvent]]:
    """A stage over rows in this process (the Dagster runner; the Python API does this on Ray Data)."""
    out: list[Row] = []
    events: list[EpisodeEvent] = []
    if stage.overrides("process"):
        import ray.data

        got = stage.process(ray.data.from_items(rows)).take_all()
        before = {r["episode_id"]: r for r in rows}
        for r in got:
            check_row(stage.label, dict(r), before.get(r.get("episode_id", "")))
        kept = {g["episode_id"] for g in got} | {origin(g) for g in got}
        return [dict(r) for r in got], [_drop(stage, r) for r in rows if r["episode_id"] not in kept]
    if stage.overrides("process_batch"):
        for i in range(0, len(rows), stage.batch_size or batch_size):
            o, e = run_batch_hook(stage, rows[i:i + (stage.batch_size or batch_size)])
            out, events = out + o, events + e
        return out, events
    for r in rows:
        o, e = run_episode_hook(stage, r)
        out, events = out + o, events + e
    return out, events


def validate_episode(validators: Sequence[Validator], row: Row) -> tuple[bool, list[Finding]]:
    """Every validator on one episode: (keep it, findings). A non-blocking validator's errors are warnings."""
    findings: list[Finding] = []
    for v in validators:
        try:
            found = list(v.validate_episode(row) or ())
        except Exception as err:  # noqa: BLE001 - a broken validator fails its check on this episode, named
            found = [Finding(v.label, f"validator raised {type(err).__name__}: {err}", "error", row["episode_id"])]
        for f in found:
            f.where = f.where or row["episode_id"]
            if f.severity == "error" and not v.blocking:
                f.severity = "warning"
        findings += found
    return not any(f.severity == "error" for f in findings), findings


# ---- rows back into a canonical store ---------------------------------------------------------------------


def _respec(schema: Any, role: str, width: int, names: list[str] | None, default: str) -> list[Any]:
    """The features of ``role`` for arrays ``width`` wide: the schema's (renamed when ``names`` are given)
    when the width is theirs, else one feature of that width (a stage changed the action space)."""
    from robodata.formats.isaaclab import FeatureSpec

    feats = schema.of_role(role)
    widths = [int(np.prod(f.shape)) if f.shape else 1 for f in feats]
    if feats and sum(widths) == width:
        if names is None:
            return list(feats)
        out, col = [], 0
        for f, w in zip(feats, widths, strict=True):
            out.append(FeatureSpec(f.name, f.role, f.shape, f.dtype, names[col:col + w], f.path))
            col += w
        return out
    name = feats[0].name if len(feats) == 1 else default
    return [FeatureSpec(name, role, (width,), "float32", names, None)]


def _store_schema(src: Path, schema: Any, rows: Sequence[Row]) -> Any:
    """``schema`` with its action and state features as the rows have them (width and names a stage set)."""
    from robodata.formats.isaaclab import EpisodeSchema

    feats = list(schema.features)
    for col, role, default in (("action", "action", "actions"), ("observation.state", "state", "state")):
        shapes = {(int(np.asarray(r[col]).shape[1]), tuple(names_of(r, col) or ())) for r in rows}
        if len(shapes) > 1:
            raise PipelineError(f"{src}: the episodes' {col} differ in width or names ({sorted(shapes)[:3]}): one "
                                "store holds one action space")
        width, names = next(iter(shapes))
        new = _respec(schema, role, width, list(names) or None, default)
        if [f.to_json() for f in new] == [f.to_json() for f in schema.of_role(role)]:
            continue
        at = next((k for k, f in enumerate(feats) if f.role == role), len(feats))
        feats = [f for f in feats if f.role != role]
        taken = {f.name for f in feats}
        feats[at:at] = [f if f.name not in taken else replace(f, name=f"{f.name}_{role}") for f in new]
    if feats == list(schema.features):
        return schema
    return EpisodeSchema(feats, schema.fps, schema.task, schema.robot_type, dict(schema.extra))


def _copy_cut(src: Any, parent: Any, name: str, start: int, stop: int, n: int) -> None:
    """Copy the demo group ``src`` into ``parent`` as ``name`` with every per-frame dataset (first axis ``n``:
    obs, states, actions, timestamps, camera frames, datagen info) cut to frames ``[start, stop)``;
    ``initial_state`` becomes the state at ``start``, timestamps count from the first kept frame."""
    import h5py

    from robodata.formats.isaaclab import INITIAL_STATE, STATES, TIMESTAMPS

    dst = parent.create_group(name)

    def visit(g: Any, out: Any, rel: str) -> None:
        for k, v in g.attrs.items():
            out.attrs[k] = v
        for key, item in g.items():
            path = f"{rel}{key}"
            if isinstance(item, h5py.Group):
                visit(item, out.create_group(key), f"{path}/")
                continue
            if item.ndim == 0 or item.shape[0] != n:
                g.copy(item, out, name=key)
                continue
            data = item[start:stop]
            if path == TIMESTAMPS and len(data):
                data = data - data[0]
            chunks = None if item.chunks is None else tuple(max(1, min(c, s)) for c, s in
                                                             zip(item.chunks, data.shape, strict=True))
            ds = out.create_dataset(key, data=data, chunks=chunks, compression=item.compression,
                                    compression_opts=item.compression_opts)
            for a, av in item.attrs.items():
                ds.attrs[a] = av

    visit(src, dst, "")
    init = dst.get(INITIAL_STATE)
    if start and init is not None:  # the state the kept frames start from
        leaves = [init] if isinstance(init, h5py.Dataset) else []
        if isinstance(init, h5py.Group):
            init.visititems(lambda _k, v: leaves.append(v) if isinstance(v, h5py.Dataset) else None)
        for leaf in leaves:
            rel = leaf.name.split(f"/{INITIAL_STATE}", 1)[1]
            st = src.get(f"{STATES}{rel}")
            if isinstance(st, h5py.Dataset) and st.ndim and st.shape[0] == n and st[start].size == leaf.size:
                leaf[...] = st[start].reshape(leaf.shape).astype(leaf.dtype)


def write_store(src: Path, out: Path, rows: Sequence[Row]) -> int:
    """A canonical store at ``out`` holding the episodes of ``rows`` (demos of ``src``, in the rows' order),
    with each row's ``action``, ``observation.state`` and ``task``; camera frames are copied as they are.

    A row with ``_frames`` holds only those frames of its demo: every per-frame dataset of the demo (camera
    frames, states, timestamps, datagen info) is cut to them, and each such row (a segment) is a demo of its
    own. When the rows' ``action`` or ``observation.state`` is not as wide as the source's features, or a stage
    named their columns (``action_names``/``state_names``), the feature table says so, so that info.json and
    modality.json describe what was written. Returns the number of frames written. ``out`` must not exist
    (callers write to a staging path)."""
    import h5py

    from robodata.formats.isaaclab import (
        ACTIONS,
        DATA_GROUP,
        ENV_ARGS_ATTR,
        NUM_SAMPLES_ATTR,
        OBS_GROUP,
        ROBODATA_KEY,
        STATES,
        TOTAL_ATTR,
        EpisodeStore,
        demo_name,
    )

    with EpisodeStore(src) as es:
        schema = es.schema
        lengths = {d: es.num_samples(d) for d in es.demo_names}
        env_args = dict(es.env_args)
    new_schema = _store_schema(src, schema, rows) if rows else schema
    state_specs = new_schema.of_role("state")
    respecced = [f.to_json() for f in state_specs] != [f.to_json() for f in schema.of_role("state")]
    total = 0
    with h5py.File(src, "r") as fi, h5py.File(out, "w") as fo:
        data = fo.create_group(DATA_GROUP)
        for k, v in fi[DATA_GROUP].attrs.items():
            data.attrs[k] = v
        if new_schema is not schema:
            if not env_args.get(ROBODATA_KEY):
                raise PipelineError(f"{src}: not a canonical store (no feature table): cannot record the new "
                                    "action/state features a stage made")
            env_args[ROBODATA_KEY] = new_schema.to_json()
            data.attrs[ENV_ARGS_ATTR] = json.dumps(env_args)
        for i, row in enumerate(rows):
            ep, demo = row["episode_id"], row["demo"]
            if demo not in lengths:
                raise PipelineError(f"{src}: episode {ep} (recording {row.get('recording')}): no demo {demo!r}")
            n_src, n = lengths[demo], int(row["num_frames"])
            start, stop = frames_of(row) or (0, n_src)
            if not (0 <= start < stop <= n_src) or stop - start != n:
                raise PipelineError(f"{src}: episode {ep} (recording {row.get('recording')}) holds frames "
                                    f"[{start}, {stop}) and {n} rows of {demo!r}, which has {n_src} frames")
            name = demo_name(i)
            if (start, stop) == (0, n_src):
                fi.copy(fi[DATA_GROUP][demo], data, name=name)
            else:
                _copy_cut(fi[DATA_GROUP][demo], data, name, start, stop, n_src)
                data[name].attrs["robodata_source_frames"] = [start, stop]
            g = data[name]
            g.attrs["task"] = str(row["task"])
            g.attrs["robodata_episode_id"] = str(ep)
            if NUM_SAMPLES_ATTR in g.attrs or (start, stop) != (0, n_src):
                g.attrs[NUM_SAMPLES_ATTR] = n
            total += n
            action = np.asarray(row["action"], np.float32)
            state = np.asarray(row["observation.state"], np.float32)
            if signature(action, state) == row.get("_signature") and new_schema is schema:
                continue  # arrays as in the source: nothing to rewrite
            del g[ACTIONS]
            g.create_dataset(ACTIONS, data=action)
            if respecced and state.shape[1]:
                for f in schema.of_role("state"):
                    if f.h5path in g:
                        del g[f.h5path]
                if OBS_GROUP not in g or not isinstance(g[OBS_GROUP], h5py.Group):
                    raise PipelineError(f"{src}: episode {ep}: a store with a flat {OBS_GROUP!r} dataset cannot "
                                        f"take an observation.state {state.shape[1]} wide")
                col = 0
                for f in state_specs:
                    w = int(np.prod(f.shape)) if f.shape else 1
                    g.create_dataset(f.h5path, data=state[:, col:col + w].reshape(n, *f.shape))
                    col += w
            elif state_specs and all(isinstance(g.get(f.h5path), h5py.Dataset) for f in state_specs):
                col = 0
                for f in state_specs:
                    shape, dtype = g[f.h5path].shape, g[f.h5path].dtype
                    width = int(np.prod(shape[1:]))
                    del g[f.h5path]
                    g.create_dataset(f.h5path, data=state[:, col:col + width].reshape(shape).astype(dtype))
                    col += width
            elif isinstance(g.get(STATES), h5py.Dataset) and state.shape[1]:
                del g[STATES]
                g.create_dataset(STATES, data=state)
        data.attrs[TOTAL_ATTR] = total
    return total


# ---- stages that fit over the published episodes (the Python API runs them after dedup) ----------------------


def publish_fitted(stages: Sequence[PipelineStage]) -> list[PipelineStage]:
    """The stages that fit statistics over the episodes that are published (``fits_published``, e.g.
    ``normalize_actions`` without given statistics): the Python API runs them after validators and dedup, on
    the rows it writes, so they must come last (a stage after one would see the actions before it)."""
    tail: list[PipelineStage] = []
    for k, s in enumerate(stages):
        if getattr(s, "fits_published", False):
            later = [t for t in stages[k + 1:] if not getattr(t, "fits_published", False)]
            if later:
                raise PipelineError(f"stage {s.label!r} fits its statistics over the published episodes, so it runs "
                                    f"last; stage {later[0].label!r} comes after it (move {later[0].label!r} before "
                                    f"it, or give {s.label!r} fixed statistics)")
            tail.append(s)
    return tail


def part_key(stages: Sequence[PipelineStage]) -> list[str]:
    """What the publish-fitted stages add to a part's identity (their fitted statistics)."""
    out = []
    for s in stages:
        key = getattr(s, "part_key", None)
        out.append(str(key()) if callable(key) else s.label)
    return out


def kept_row(work: Any, row: Row) -> Row:
    """A kept metadata row (``finalize_row``'s) with its arrays again (a stage's, saved by content in ``work``,
    else the source demo's) and the columns :func:`carried` packed, as :func:`write_store` takes it."""
    from robodata.formats.isaaclab import EpisodeStore

    if row.get("arrays"):
        with work.read_path(row["arrays"]) as arr, np.load(arr) as z:
            action, state = np.asarray(z["action"]), np.asarray(z["state"])
    else:
        with work.read_path(row["store"]) as src, EpisodeStore(src) as es:
            action, state = low_dim(es, row["demo"])
    return {**row, **uncarried(row), "action": action, "observation.state": state, "_signature": ""}


def kept_action(work: Any, row: Row) -> Row:
    """Only the ``action`` of a kept row (what a publish-fitted stage fits on)."""
    return {"episode_id": row["episode_id"], "action": kept_row(work, row)["action"]}


def finish_row(row: Row, stages: Sequence[PipelineStage]) -> Row:
    """``row`` through the publish-fitted stages (each's ``finish_published``), named on failure."""
    for s in stages:
        try:
            row = s.finish_published(row)  # type: ignore[attr-defined]
        except Exception as err:
            raise PipelineError(f"stage {s.label!r} raised {type(err).__name__}: {err} "
                                f"(episode {row['episode_id']})") from err
    return row
