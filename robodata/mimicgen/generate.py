"""MimicGen-style demo generation in the local simulator: new scene, segment selection, object-centric transfer,
interpolation, noisy execution, success check; trials fanned out as Ray tasks with one cached simulator per worker.

Every trial draws its randomness from ``SeedSequence([seed, trial_index])`` and starts from a freshly reset
simulator, and results are consumed in trial order: the same seed and sources give the same demos, bit for bit,
whatever the number of workers.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.formats.isaaclab import EpisodeSchema, EpisodeStore, EpisodeStoreWriter
from robodata.formats.isaaclab_layout import (
    EEF_POSE,
    ENV_KWARGS_KEY,
    OBJECT_POSE,
    SEED_ATTR,
    SUBTASK_TERM_SIGNALS,
    TARGET_EEF_POSE,
)
from robodata.mimicgen.config import SubtaskConfig, SyntheticDemosConfig
from robodata.mimicgen.errors import MimicGenError
from robodata.mimicgen.poses import interpolate, position_matrix, transform_segment
from robodata.mimicgen.selection import select_source
from robodata.mimicgen.source import GOAL_OBJECT, SourceDemo, load_sources

ENGINE = "robodata-mimicgen-local"
GRIPPER_EEF = "gripper"
CUBE_OBJECT = "cube"
SIM_OBJECTS = (CUBE_OBJECT, GOAL_OBJECT)
MAX_PLOTTED_PATHS = 40  # end-effector paths kept in the report for the overview plot
# Features the local engine can produce for a generated frame (the Fetch session schema's names).
POSE_FEATURES = ("eef_pose", "object_pose")
STATE_FEATURES = ("joint_pos", "gripper", "goal")


@dataclass
class TrialResult:
    """One generation trial: outcome, provenance and (when kept) its frames."""

    index: int
    success: bool
    reason: str
    scene_seed: int
    steps: int
    segments: list[dict[str, Any]]
    frames: dict[str, Any] | None = None
    wall_s: float = 0.0

    @property
    def sources(self) -> dict[str, str]:
        return {s["subtask"]: s["source"] for s in self.segments}


@dataclass
class GenerationReport:
    """What a generation run did (the numbers an asset shows)."""

    path: str
    failed_path: str | None
    sources: int
    wanted: int
    trials: int
    successes: int
    failures: int
    surplus_trials: int
    failure_reasons: dict[str, int]
    source_usage: dict[str, dict[str, int]]
    steps: int
    kept_frames: int
    wall_s: float
    workers: int
    demo_lengths: list[int] = field(default_factory=list)
    scenes: list[dict[str, list[float]]] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.successes / (self.successes + self.failures) if self.successes + self.failures else 0.0

    @property
    def demos_per_min(self) -> float:
        return 60.0 * self.successes / self.wall_s if self.wall_s else 0.0


# -- the simulator, one per worker process ------------------------------------------------------------

_SIMS: dict[tuple, Any] = {}


def cached_sim(image_hw: tuple[int, int], cameras: dict | None = None):
    """This process's simulator for ``image_hw``/``cameras`` (created once, reused by every trial here)."""
    from robodata.sim.fetch import FetchPickPlace, SimulatorError

    key = (tuple(image_hw), repr(sorted((cameras or {}).items())))
    sim = _SIMS.get(key)
    if sim is None:
        try:
            sim = FetchPickPlace(image_hw=(int(image_hw[0]), int(image_hw[1])), cameras=cameras or None)
        except SimulatorError as err:
            raise MimicGenError(f"the local simulator failed to start: {err}") from err
        _SIMS[key] = sim
    return sim


def _fresh_scene(sim, scene_seed: int) -> None:
    """Reset, and clear what MuJoCo carries between episodes (solver warm start, applied forces), so a trial's
    physics depends on its seed only, not on the trials this worker ran before."""
    sim.reset(seed=scene_seed)
    d = sim.data
    d.qacc_warmstart[:] = 0.0
    d.qfrc_applied[:] = 0.0
    d.xfrc_applied[:] = 0.0
    d.ctrl[:] = 0.0


def object_pose_now(sim, name: str) -> np.ndarray:
    from robodata.sim.fetch import pose_to_matrix

    if name == CUBE_OBJECT:
        return pose_to_matrix(sim.object_pose())
    if name == GOAL_OBJECT:
        return position_matrix(sim.goal)
    raise MimicGenError(f"the local simulator has no object {name!r} (objects: {list(SIM_OBJECTS)})")


class _Frames:
    def __init__(self) -> None:
        self.rows: dict[str, list[np.ndarray]] = {}

    def add(self, **kw: Any) -> None:
        for k, v in kw.items():
            self.rows.setdefault(k, []).append(np.asarray(v))

    def take(self) -> dict[str, np.ndarray]:
        return {k: np.stack(v) for k, v in self.rows.items()}


def run_trial(
    sim,
    sources: Sequence[SourceDemo],
    subtasks: Sequence[SubtaskConfig],
    seed: int,
    index: int,
) -> tuple[TrialResult, dict[str, np.ndarray]]:
    """Run generation trial ``index``: returns its result and its per-step raw frames (no images)."""
    from robodata.sim.fetch import ACTION_SCALE, pose_to_matrix

    t0 = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    scene_seed = int(rng.integers(0, 2**31 - 1))
    _fresh_scene(sim, scene_seed)
    frames = _Frames()
    last_target = pose_to_matrix(sim.eef_pose())
    segments: list[dict[str, Any]] = []
    grasped = False
    step = 0
    for k, st in enumerate(subtasks):
        T_obj_new = object_pose_now(sim, st.object_ref)
        cuts = [src.segments(subtasks, rng) for src in sources]
        obj_src = [src.objects[st.object_ref][cut[k].start] for src, cut in zip(sources, cuts, strict=True)]
        i = select_source(st, obj_src, T_obj_new, rng)
        src, seg = sources[i], cuts[i][k]
        targets_seg = transform_segment(src.eef[seg.start:seg.end], obj_src[i], T_obj_new)
        grip_seg = src.gripper[seg.start:seg.end]
        n_bridge = st.num_interpolation_steps + st.num_fixed_steps
        bridge = np.concatenate([interpolate(last_target, targets_seg[0], st.num_interpolation_steps),
                                 np.repeat(targets_seg[:1], st.num_fixed_steps, axis=0)])
        targets = np.concatenate([bridge, targets_seg])
        grips = np.concatenate([np.full(n_bridge, grip_seg[0]), grip_seg])
        noisy = np.concatenate([np.full(n_bridge, st.apply_noise_during_interpolation), np.ones(len(grip_seg), bool)])
        noise = rng.normal(0.0, st.action_noise, (len(targets), 3)) if st.action_noise > 0 else np.zeros((len(targets), 3))
        segments.append({
            "subtask": st.name, "object_ref": st.object_ref, "source": src.name,
            "source_start": seg.start, "source_end": seg.end,
            "start": step, "transformed_start": step + n_bridge, "end": step + len(targets),
        })
        for j in range(len(targets)):
            eef = sim.eef_pose()
            move = np.clip((targets[j][:3, 3] - eef[:3]) / ACTION_SCALE, -1.0, 1.0)
            if noisy[j]:
                move = np.clip(move + noise[j], -1.0, 1.0)
            action = np.concatenate([move, [np.clip(grips[j], -1.0, 1.0)]]).astype(np.float32)
            grasping = bool(sim.is_grasping())
            grasped |= grasping
            frames.add(eef_pose=eef, object_pose=sim.object_pose(), goal=sim.goal, joint_pos=sim.arm_state().position,
                       gripper=sim.finger_state().position, state=sim.get_state(), action=action,
                       target=targets[j], grasp=grasping, place=bool(sim.is_success()))
            sim.step(action)
            step += 1
        last_target = targets_seg[-1]
    success = bool(sim.is_success())
    if success:
        reason = ""
    elif not grasped:
        reason = "never grasped the object"
    elif not sim.is_grasping():
        reason = "dropped the object"
    else:
        reason = "missed the goal"
    result = TrialResult(index, success, reason, scene_seed, step, segments, wall_s=time.perf_counter() - t0)
    return result, frames.take()


def _episode_frames(sim, raw: dict[str, np.ndarray], schema: EpisodeSchema, state_is_sim: bool) -> dict[str, Any]:
    """The ``DemoWriter.extend`` arguments of one trial; cameras rendered by replaying its simulator states."""
    from robodata.sim.fetch import pose_to_matrix

    n = len(raw["action"])
    obs: dict[str, np.ndarray] = {}
    cams = [f for f in schema.cameras]
    if cams:
        images: dict[str, list[np.ndarray]] = {c.name: [] for c in cams}
        hw = tuple(cams[0].shape[:2])
        for s in raw["state"]:
            sim.set_state(s)
            for c in cams:
                images[c.name].append(sim.render(c.name, hw))
        obs.update({k: np.stack(v) for k, v in images.items()})
    for f in schema.features:
        if f.role in ("image", "action"):
            continue
        if f.name not in raw:
            if f.role == "extra":
                continue
            raise MimicGenError(f"the local engine cannot produce feature {f.name!r} of the source schema")
        obs[f.name] = raw[f.name]
    obj = pose_to_matrix(raw["object_pose"])
    return {
        "timestamps": np.arange(n, dtype=np.float64) / schema.fps,
        "obs": obs,
        "actions": raw["action"],
        "states": raw["state"] if state_is_sim else None,
        "datagen": {
            OBJECT_POSE: {CUBE_OBJECT: obj, GOAL_OBJECT: position_matrix(raw["goal"])},
            EEF_POSE: {GRIPPER_EEF: pose_to_matrix(raw["eef_pose"])},
            TARGET_EEF_POSE: {GRIPPER_EEF: raw["target"]},
            SUBTASK_TERM_SIGNALS: {"grasp": raw["grasp"], "place": raw["place"]},
        },
    }


def generate_chunk(
    sources: Sequence[SourceDemo],
    subtasks_json: list[dict[str, Any]],
    seed: int,
    indices: Sequence[int],
    schema_json: dict[str, Any],
    cameras: dict | None,
    state_is_sim: bool,
    keep_failed: bool,
) -> list[TrialResult]:
    """Run trials ``indices`` in this process's cached simulator (a Ray task, or in-process)."""
    subtasks = [SubtaskConfig.model_validate(s) for s in subtasks_json]
    schema = EpisodeSchema.from_json(schema_json)
    hw = (int(schema.cameras[0].shape[0]), int(schema.cameras[0].shape[1])) if schema.cameras else (48, 64)
    sim = cached_sim(hw, cameras)
    out = []
    for idx in indices:
        res, raw = run_trial(sim, sources, subtasks, seed, idx)
        if res.success or keep_failed:
            res.frames = _episode_frames(sim, raw, schema, state_is_sim)
        out.append(res)
    return out


def _workers() -> int:
    try:
        import ray

        if ray.is_initialized():
            return max(1, int(ray.cluster_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001
        pass
    return 1


def generate_demos(
    source_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    cfg: SyntheticDemosConfig,
    *,
    failed_path: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationReport:
    """Generate ``cfg.demos_per_source`` successful demos per source demo of ``source_path`` into ``out_path``.

    Writes an Isaac Lab HDF5 store with the source's schema (cameras re-rendered at ``cfg.image_hw`` when set),
    the generated ``datagen_info`` and per-demo provenance (``source_demos`` per subtask, ``segments``,
    ``trial_index``, ``seed``, ``generation_seed``). Failed trials go to ``failed_path`` when
    ``cfg.datagen.keep_failed``. Raises :class:`MimicGenError` on unusable sources or config.
    """
    from robodata.parallel import run_tasks
    from robodata.sim.fetch import ENV_ID

    t0 = time.perf_counter()
    subtasks = list(cfg.subtasks)
    for st in subtasks:
        if st.object_ref not in SIM_OBJECTS:
            raise MimicGenError(
                f"subtask {st.name!r} is relative to object {st.object_ref!r}, which the local simulator does not "
                f"have (objects: {list(SIM_OBJECTS)})"
            )
    sources = load_sources(source_path, subtasks)
    with EpisodeStore(source_path) as es:
        schema = es.schema
        env_kwargs = dict(es.env_args.get(ENV_KWARGS_KEY, {}))
        src_state_width = es.state_vector(es.demo_names[0], 0, 1).shape[1] if es.demo_names else 0
    if cfg.image_hw is not None:
        h, w = cfg.image_hw
        for f in schema.cameras:
            f.shape = (int(h), int(w), 3)
        env_kwargs["image_hw"] = [int(h), int(w)]
    cameras = env_kwargs.get("cameras") if isinstance(env_kwargs.get("cameras"), dict) else None
    if cameras is not None:
        cameras = {c.name: cameras[c.name] for c in schema.cameras if c.name in cameras} or None
    # Our recorder stores the simulator state; ingested bags store the concatenated state features.
    state_is_sim = src_state_width != schema.width("state")
    dg = cfg.datagen
    wanted = cfg.demos_per_source * len(sources)
    cap = dg.num_trials or max(4 * wanted, wanted + dg.max_failures)
    n_workers = workers or _workers()
    subtasks_json = [s.model_dump(mode="json") for s in subtasks]
    env_kwargs.update({"generator": ENGINE, "source": str(source_path)})
    writer = EpisodeStoreWriter(out_path, schema, env_name=env_kwargs.get("env_id", ENV_ID), env_kwargs=env_kwargs)
    failed_writer = (EpisodeStoreWriter(failed_path, schema, env_name=ENV_ID, env_kwargs=env_kwargs)
                     if dg.keep_failed and failed_path is not None else None)
    successes = failures = surplus = trials = steps = kept_frames = 0
    reasons: Counter[str] = Counter()
    usage: dict[str, Counter[str]] = {s.name: Counter() for s in subtasks}
    lengths: list[int] = []
    scenes: list[dict[str, list[float]]] = []
    next_index = 0
    done = False
    try:
        while not done and next_index < cap:
            need = wanted - successes
            rate = successes / (successes + failures) if successes + failures else 0.7
            per_round = dg.batch_trials * n_workers
            n = int(np.ceil(need / max(rate, 0.25))) if dg.guarantee else per_round
            n = min(cap - next_index, per_round, max(n_workers, n))
            idx = list(range(next_index, next_index + n))
            next_index += n
            chunks = [c.tolist() for c in np.array_split(np.array(idx), min(n_workers, n)) if len(c)]
            args = [(sources, subtasks_json, dg.seed, c, schema.to_json(), cameras, state_is_sim, dg.keep_failed)
                    for c in chunks]
            results = run_tasks(generate_chunk, args, num_cpus=1)
            bad = [r.error for r in results if not r.ok]
            if bad:
                err = bad[0]
                if isinstance(err, MimicGenError):
                    raise err
                raise MimicGenError(f"a generation worker failed: {type(err).__name__}: {err}") from err
            for res in sorted((t for r in results for t in r.value), key=lambda t: t.index):
                if done:
                    surplus += 1
                    continue
                trials += 1
                steps += res.steps
                if res.success:
                    successes += 1
                    for seg in res.segments:
                        usage[seg["subtask"]][seg["source"]] += 1
                    _write(writer, res, dg.seed, str(source_path))
                    lengths.append(res.steps)
                    kept_frames += res.steps
                    obj0 = res.frames["obs"]["object_pose"][0] if "object_pose" in res.frames["obs"] else None
                    scenes.append({"object": [] if obj0 is None else [float(v) for v in obj0[:3]],
                                   "goal": [float(v) for v in res.frames["datagen"][OBJECT_POSE][GOAL_OBJECT][0][:3, 3]],
                                   "eef_xy": res.frames["datagen"][EEF_POSE][GRIPPER_EEF][:, :2, 3].tolist()
                                   if len(scenes) < MAX_PLOTTED_PATHS else []})
                else:
                    failures += 1
                    reasons[res.reason] += 1
                    if failed_writer is not None and res.frames is not None:
                        _write(failed_writer, res, dg.seed, str(source_path))
                if (dg.guarantee and successes >= wanted) or failures > dg.max_failures:
                    done = True
            if progress is not None:
                progress(successes, wanted)
        writer.commit()
        if failed_writer is not None:
            failed_writer.commit()
    except BaseException:
        writer.abort()
        if failed_writer is not None:
            failed_writer.abort()
        raise
    return GenerationReport(
        path=str(out_path), failed_path=str(failed_path) if failed_writer is not None else None,
        sources=len(sources), wanted=wanted, trials=trials, successes=successes, failures=failures,
        surplus_trials=surplus, failure_reasons=dict(reasons),
        source_usage={k: dict(sorted(v.items())) for k, v in usage.items()}, steps=steps, kept_frames=kept_frames,
        wall_s=time.perf_counter() - t0, workers=n_workers, demo_lengths=lengths, scenes=scenes,
    )


def _write(writer: EpisodeStoreWriter, res: TrialResult, seed: int, source: str) -> None:
    attrs = {
        SEED_ATTR: res.scene_seed,
        "trial_index": res.index,
        "generation_seed": seed,
        "source": ENGINE,
        "source_file": Path(source).name,
        "source_demos": res.sources,
        "segments": res.segments,
        "failure_reason": res.reason,
    }
    demo = writer.begin_episode(attrs=attrs)
    demo.extend(**(res.frames or {}))
    demo.close(success=res.success)
