"""Episode rows and what happens to them, for both runners (Ray Data in the Python API, Dagster assets).

A canonical store becomes rows (:func:`episode_rows`); a user's stage runs on rows with each episode's
failure isolated (:func:`run_episode_hook`, :func:`run_batch_hook`); validators decide whether a row goes on
(:func:`validate_episode`); rows become a canonical store again (:func:`write_store`), carrying the arrays
and task text a stage changed. The runners differ only in how they move rows and where they record events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.api.errors import PipelineError
from robodata.api.extensions import ARRAY_COLUMNS, REQUIRED_COLUMNS, PipelineStage, Validator
from robodata.stages.base import Finding

Row = dict[str, Any]


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


def episode_rows(store: Path, *, key: str, source: str, rel: str, default_task: str = "") -> list[Row]:
    """One row per episode of the canonical store at ``store`` (known in its store as ``rel``)."""
    from robodata.formats.isaaclab import EpisodeStore

    rows = []
    with EpisodeStore(store) as es:
        for name in es.demo_names:
            action, state = low_dim(es, name)
            attrs = es.attrs(name)
            success = attrs.get("success")
            rows.append({
                "episode_id": f"{key}/{name}", "recording": key, "source": source, "store": rel, "demo": name,
                "num_frames": int(len(action)), "fps": float(es.schema.fps),
                "task": str(attrs.get("task") or es.schema.task or default_task),
                "success": None if success is None else bool(success),
                "action": action, "observation.state": state, "_signature": signature(action, state),
            })
    return rows


# ---- a user's stage on rows, one episode's failure never another's ----------------------------------------


def check_row(stage: str, row: Row, before: Row | None) -> None:
    """A stage's output row has the required columns, arrays of its length, and the same episode and length."""
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise PipelineError(f"stage {stage!r} returned the wrong schema: missing column(s) {', '.join(missing)}")
    n = int(row["num_frames"])
    for col in ARRAY_COLUMNS:
        arr = np.asarray(row[col])
        if arr.ndim != 2 or arr.shape[0] != n:
            raise PipelineError(f"stage {stage!r} returned the wrong schema: {col} has shape {arr.shape}, "
                                f"expected ({n}, D)")
    if before is not None:
        if row["episode_id"] != before["episode_id"]:
            raise PipelineError(f"stage {stage!r} changed episode_id ({before['episode_id']} -> {row['episode_id']})")
        if n != int(before["num_frames"]):
            raise PipelineError(f"stage {stage!r} changed the number of frames ({before['num_frames']} -> {n}); "
                                "stages change values, not episode lengths")


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
    kept = {r["episode_id"] for r in out}
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
        return [dict(r) for r in got], [_drop(stage, r) for r in rows
                                        if r["episode_id"] not in {g["episode_id"] for g in got}]
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


def write_store(src: Path, out: Path, rows: Sequence[Row]) -> int:
    """A canonical store at ``out`` holding the episodes of ``rows`` (demos of ``src``, in the rows' order),
    with each row's ``action``, ``observation.state`` and ``task``; camera frames are copied as they are.

    Returns the number of frames written. ``out`` must not exist (callers write to a staging path)."""
    import h5py

    from robodata.formats.isaaclab import (
        ACTIONS,
        DATA_GROUP,
        STATES,
        TOTAL_ATTR,
        EpisodeStore,
        demo_name,
    )

    with EpisodeStore(src) as es:
        states = es.schema.of_role("state")
    total = 0
    with h5py.File(src, "r") as fi, h5py.File(out, "w") as fo:
        data = fo.create_group(DATA_GROUP)
        for k, v in fi[DATA_GROUP].attrs.items():
            data.attrs[k] = v
        for i, row in enumerate(rows):
            name = demo_name(i)
            fi.copy(fi[DATA_GROUP][row["demo"]], data, name=name)
            g = data[name]
            g.attrs["task"] = str(row["task"])
            g.attrs["robodata_episode_id"] = str(row["episode_id"])
            total += int(row["num_frames"])
            action = np.asarray(row["action"], np.float32)
            state = np.asarray(row["observation.state"], np.float32)
            if signature(action, state) == row.get("_signature"):
                continue  # arrays as in the source: nothing to rewrite
            del g[ACTIONS]
            g.create_dataset(ACTIONS, data=action)
            if states and all(isinstance(g.get(f.h5path), h5py.Dataset) for f in states):
                col = 0
                for f in states:
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
