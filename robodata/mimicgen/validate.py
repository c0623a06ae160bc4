"""Checks of a generated store, read back from disk and independent of the generator's bookkeeping: success
re-verified by replaying each demo's actions in the simulator, the object-centric invariant against the source
demos, finiteness and lengths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from robodata.formats.isaaclab import EpisodeStore
from robodata.formats.isaaclab_layout import EEF_POSE, SUCCESS_ATTR, TARGET_EEF_POSE, demo_path
from robodata.mimicgen.config import SubtaskConfig

CHECK_SUCCESS = "kept_demos_succeed_in_sim"
CHECK_INVARIANT = "object_centric_invariant"
CHECK_FINITE = "no_nan"
CHECK_LENGTHS = "demo_lengths_in_bounds"


@dataclass
class Check:
    """One check's verdict. ``evaluated=False``: what the output records cannot decide it (the details say
    why); such a check is never passed, and it blocks nothing (a runner shows it as a warning)."""

    name: str
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""  # when it failed: one sentence saying what (demos named)
    evaluated: bool = True

    @classmethod
    def not_evaluated(cls, name: str, why: str, details: dict[str, Any] | None = None) -> Check:
        return cls(name, False, {**(details or {}), "evaluated": False, "reason": why}, f"not evaluated: {why}",
                   evaluated=False)


def _frames_of(row: dict[str, Any]) -> str:
    return f"{row['demo']}: {row['frames']}"


def _replay_success(sim, ep) -> bool:
    """Re-execute a demo's actions from its initial simulator state; True when the object ends at the goal."""
    from robodata.mimicgen.generate import _fresh_scene

    _fresh_scene(sim, 0)
    sim.set_goal(ep.obs["goal"][0])
    sim.set_state(ep.states[0].astype(np.float64))
    sim.data.qacc_warmstart[:] = 0.0
    for a in ep.actions:
        sim.step(a)
    return bool(sim.is_success())


def validate_generated(
    gen_path: str | os.PathLike[str],
    source_path: str | os.PathLike[str],
    subtasks: Sequence[SubtaskConfig],
    *,
    tolerance: float = 1e-4,
    min_frames: int = 1,
    max_frames: int = 100_000,
    replay: bool = True,
    sim=None,
) -> dict[str, Check]:
    """Run the four blocking checks of ``synthetic_demos`` on a written store."""
    from robodata.mimicgen.poses import pose_error, relative_to  # SciPy: only where a store is checked
    from robodata.mimicgen.source import episode_objects, load_sources

    sources = {s.name: s for s in load_sources(source_path, subtasks, successful_only=False)}
    by_name = {s.name: s for s in subtasks}
    succ_bad: list[str] = []
    inv_rows: dict[str, dict[str, Any]] = {}
    nan_bad: list[dict[str, Any]] = []
    len_bad: list[dict[str, Any]] = []
    replayed = 0
    track = []
    with EpisodeStore(gen_path) as es:
        for name in es.demo_names:
            ep = es.read(name, images=False)
            n = len(ep)
            if not (min_frames <= n <= max_frames):
                len_bad.append({"demo": name, "frames": n})
            with h5py.File(es.path, "r") as f:
                bad = []
                f[demo_path(name)].visititems(lambda k, d: bad.append(k) if isinstance(d, h5py.Dataset)  # noqa: B023 - called at once
                                             and d.dtype.kind == "f" and not np.isfinite(d[()]).all() else None)
            if bad:
                nan_bad.append({"demo": name, "datasets": bad[:5]})
            ok = ep.attrs.get(SUCCESS_ATTR) is True
            if ok and replay and sim is not None and ep.states.shape[1] == sim.state_size and "goal" in ep.obs:
                ok = _replay_success(sim, ep)
                replayed += 1
            if not ok:
                succ_bad.append(name)
            objects = episode_objects(ep, f"{gen_path} {name}")
            target = np.asarray(ep.datagen[TARGET_EEF_POSE]["gripper"], np.float64)
            measured = np.asarray(ep.datagen[EEF_POSE]["gripper"], np.float64)
            for seg in ep.attrs.get("segments", []):
                src = sources.get(seg["source"])
                st = by_name.get(seg["subtask"])
                row = inv_rows.setdefault(seg["subtask"], {"max_pos_err_m": 0.0, "max_rot_err_rad": 0.0,
                                                           "segments": 0, "missing_source": 0})
                if src is None or st is None:
                    row["missing_source"] += 1
                    continue
                a, b = seg["transformed_start"], seg["end"]
                s0, s1 = seg["source_start"], seg["source_end"]
                T_obj_gen = objects[st.object_ref][seg["start"]]
                T_obj_src = src.objects[st.object_ref][s0]
                want = relative_to(T_obj_src, src.eef[s0:s1])
                got = relative_to(T_obj_gen, target[a:b])
                if got.shape != want.shape:
                    row["max_pos_err_m"] = float("inf")
                    continue
                dp, dr = pose_error(got, want)
                row["max_pos_err_m"] = max(row["max_pos_err_m"], float(dp.max()))
                row["max_rot_err_rad"] = max(row["max_rot_err_rad"], float(dr.max()))
                row["segments"] += 1
                tp, _ = pose_error(relative_to(T_obj_gen, measured[a:b]), want)
                track.append(float(np.median(tp)))
    inv_ok = all(r["max_pos_err_m"] <= tolerance and r["max_rot_err_rad"] <= tolerance and not r["missing_source"]
                 for r in inv_rows.values()) and bool(inv_rows)
    for r in inv_rows.values():
        r["max_pos_err_m"] = float(f"{r['max_pos_err_m']:.3g}")
        r["max_rot_err_rad"] = float(f"{r['max_rot_err_rad']:.3g}")
    off = {k: r for k, r in inv_rows.items() if r["max_pos_err_m"] > tolerance or r["max_rot_err_rad"] > tolerance
           or r["missing_source"]}
    return {
        CHECK_SUCCESS: Check(CHECK_SUCCESS, not succ_bad, {"failed": succ_bad[:20], "replayed": replayed},
                             f"{len(succ_bad)} kept demos do not succeed when replayed in the simulator "
                             f"({', '.join(succ_bad[:5])})"),
        CHECK_INVARIANT: Check(CHECK_INVARIANT, inv_ok, {
            "per_subtask": inv_rows, "tolerance": tolerance,
            "median_tracking_error_m": float(f"{np.median(track):.3g}") if track else None,
        }, "no demo records its segments' source provenance" if not inv_rows else
           "target poses in the object frame differ from the source's beyond the tolerance "
           f"{tolerance:g} in subtasks {sorted(off)} ({off})"),
        CHECK_FINITE: Check(CHECK_FINITE, not nan_bad, {"bad": nan_bad[:20]},
                            f"{len(nan_bad)} demos hold NaN or inf ({', '.join(b['demo'] for b in nan_bad[:5])})"),
        CHECK_LENGTHS: Check(CHECK_LENGTHS, not len_bad, {"out_of_bounds": len_bad[:20], "min": min_frames,
                                                          "max": max_frames},
                             f"{len(len_bad)} demos are outside [{min_frames}, {max_frames}] frames "
                             f"({', '.join(_frames_of(b) for b in len_bad[:5])})"),
    }
