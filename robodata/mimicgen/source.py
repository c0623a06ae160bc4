"""Source demos for generation: end-effector targets, object poses and subtask signals read from an episode store."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robodata.formats.isaaclab import Episode, EpisodeStore, EpisodeStoreError
from robodata.formats.isaaclab_layout import (
    EEF_POSE,
    OBJECT_POSE,
    SUBTASK_TERM_SIGNALS,
    SUCCESS_ATTR,
    TARGET_EEF_POSE,
    datagen_path,
)
from robodata.mimicgen.annotate import SubtaskSegment, detect_signals, segment_ends
from robodata.mimicgen.config import SubtaskConfig
from robodata.mimicgen.errors import MimicGenError
from robodata.mimicgen.poses import position_matrix

GOAL_OBJECT = "goal"  # the placement goal, treated as an object with identity orientation
GOAL_FEATURE = "goal"  # obs/<goal>: (T, 3) goal position, where the task records one


@dataclass
class SourceDemo:
    """What generation needs of one source demo (no images)."""

    name: str
    eef: np.ndarray  # (T, 4, 4) end-effector target poses (recorded targets where present, else measured poses)
    eef_measured: np.ndarray  # (T, 4, 4)
    objects: dict[str, np.ndarray]  # name -> (T, 4, 4)
    gripper: np.ndarray  # (T,) the gripper action
    signals: dict[str, np.ndarray]  # name -> (T,) bool
    signals_detected: bool = False
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.gripper)

    def segments(self, subtasks: Sequence[SubtaskConfig], rng: np.random.Generator | None = None,
                 where: str = "") -> list[SubtaskSegment]:
        """The demo cut into the configured subtasks; offsets drawn from ``rng`` (none without one)."""
        offsets = [
            int(rng.integers(s.term_offset_range[0], s.term_offset_range[1] + 1)) if rng is not None else 0
            for s in subtasks
        ]
        ends = segment_ends(self.signals, [s.term_signal for s in subtasks], len(self), offsets,
                            where=where or self.name)
        starts = [0, *ends[:-1]]
        return [SubtaskSegment(s.name, s.object_ref, a, b) for s, a, b in zip(subtasks, starts, ends, strict=True)]


def episode_objects(ep: Episode, where: str) -> dict[str, np.ndarray]:
    """Object poses of an episode: ``datagen_info/object_pose/*`` plus the goal (from ``obs/goal``) as an object."""
    objects = {k: np.asarray(v, np.float64) for k, v in ep.datagen.get(OBJECT_POSE, {}).items()}
    if not objects:
        raise MimicGenError(
            f"{where}: no object poses ({datagen_path(OBJECT_POSE)} is missing or empty); MimicGen needs the pose "
            "of every object a subtask is relative to"
        )
    if GOAL_OBJECT not in objects and GOAL_FEATURE in ep.obs:
        objects[GOAL_OBJECT] = position_matrix(np.asarray(ep.obs[GOAL_FEATURE], np.float64).reshape(len(ep), 3))
    return objects


def source_from_episode(ep: Episode, subtasks: Sequence[SubtaskConfig], where: str) -> SourceDemo:
    objects = episode_objects(ep, where)
    eefs = ep.datagen.get(EEF_POSE, {})
    if not eefs:
        raise MimicGenError(f"{where}: no end-effector poses ({datagen_path(EEF_POSE)} is missing or empty)")
    eef_name = sorted(eefs)[0]
    measured = np.asarray(eefs[eef_name], np.float64)
    targets = ep.datagen.get(TARGET_EEF_POSE, {}).get(eef_name)
    eef = np.asarray(targets, np.float64) if targets is not None else measured
    for s in subtasks:
        if s.object_ref not in objects:
            raise MimicGenError(
                f"{where}: subtask {s.name!r} is relative to object {s.object_ref!r}, which this demo does not "
                f"have (objects: {sorted(objects)})"
            )
    if ep.actions.ndim != 2 or ep.actions.shape[1] < 1:
        raise MimicGenError(f"{where}: actions have shape {ep.actions.shape}; need (T, A) with the gripper last")
    gripper = np.asarray(ep.actions[:, -1], np.float64)
    signals = {k: np.asarray(v, bool) for k, v in ep.datagen.get(SUBTASK_TERM_SIGNALS, {}).items()}
    needed = [s.term_signal for s in subtasks if s.term_signal is not None]
    detected = False
    if any(n not in signals for n in needed):
        ref = next(iter(objects.values())) if "cube" not in objects else objects["cube"]
        goal = objects[GOAL_OBJECT][:, :3, 3] if GOAL_OBJECT in objects else None
        found = detect_signals(measured[:, :3, 3], ref[:, :3, 3], gripper, fingers=ep.obs.get("gripper"), goal=goal)
        signals = {**found, **signals}
        detected = True
    demo = SourceDemo(ep.name, eef, measured, objects, gripper, signals, detected, dict(ep.attrs))
    demo.segments(subtasks, where=where)  # raises when no subtasks can be found
    return demo


def load_sources(
    path: str | os.PathLike[str],
    subtasks: Sequence[SubtaskConfig],
    *,
    demos: Sequence[str] | None = None,
    successful_only: bool = True,
) -> list[SourceDemo]:
    """Read the source demos of a store; raises :class:`MimicGenError` naming the file and demo on bad input."""
    p = Path(path)
    try:
        store = EpisodeStore(p)
    except EpisodeStoreError as err:
        raise MimicGenError(str(err)) from err
    with store:
        names = list(demos) if demos is not None else store.demo_names
        out = []
        for name in names:
            if name not in store.demo_names:
                raise MimicGenError(f"{p}: no demo {name!r}")
            ep = store.read(name, images=False)
            if successful_only and ep.attrs.get(SUCCESS_ATTR) is False:
                continue
            out.append(source_from_episode(ep, subtasks, f"{p} {name}"))
    if not out:
        raise MimicGenError(f"{p}: no successful source demos to generate from")
    return out
