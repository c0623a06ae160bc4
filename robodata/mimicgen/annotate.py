"""Subtask annotation of source demos: term signals recorded, or detected from gripper events, contact and object motion.

A subtask term signal (``obs/datagen_info/subtask_term_signals/<name>``, Isaac Lab Mimic's layout) is a per-frame
bool that turns on when the subtask is done; the subtask boundary is its rising edge. Detection for gripper
pick-and-place: ``grasp`` is on while the gripper is commanded closed, the fingers stop on something (neither open
nor shut) and the object is within reach of the end effector; ``place`` is on while the object is within
``place_distance`` of the goal (Fetch's success criterion), or, without a goal, from the gripper re-opening after
a grasp.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from robodata.atomic import atomic_path
from robodata.formats.isaaclab_layout import ACTIONS, SUBTASK_TERM_SIGNALS, datagen_path, demo_path
from robodata.mimicgen.errors import MimicGenError

SIGNALS_PATH = datagen_path(SUBTASK_TERM_SIGNALS)  # inside a demo group
GRASP_REACH = 0.03  # m: object centre to end effector while held
FINGER_OPEN = 0.045  # m: one finger's opening when open (Fetch: 0.05)
FINGER_SHUT = 0.005  # m: one finger's opening when closed on nothing
PLACE_DISTANCE = 0.05  # m: Fetch's success distance


@dataclass
class SubtaskSegment:
    """One subtask of one demo: frames ``[start, end)``, replayed relative to ``object_ref``."""

    name: str
    object_ref: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


def rising_edges(signal: np.ndarray) -> np.ndarray:
    """Frames where a bool signal turns on (frame 0 counts when it starts on)."""
    s = np.asarray(signal, bool).astype(np.int8)
    return np.flatnonzero(np.diff(np.concatenate([[0], s])) == 1)


def detect_signals(
    eef_pos: np.ndarray,
    object_pos: np.ndarray,
    gripper_action: np.ndarray,
    *,
    fingers: np.ndarray | None = None,
    goal: np.ndarray | None = None,
    place_distance: float = PLACE_DISTANCE,
) -> dict[str, np.ndarray]:
    """Detect ``grasp`` and ``place`` term signals of a gripper pick-and-place demo.

    Args:
        eef_pos, object_pos: ``(T, 3)`` positions (m).
        gripper_action: ``(T,)`` commanded gripper (< 0 closes).
        fingers: ``(T, F)`` finger openings (m), when recorded: contact is "closed but not shut".
        goal: ``(T, 3)`` or ``(3,)`` placement goal; without it ``place`` is the gripper re-opening after a grasp.
    """
    eef_pos, object_pos = np.asarray(eef_pos, float), np.asarray(object_pos, float)
    closed = np.asarray(gripper_action, float) < 0
    near = np.linalg.norm(object_pos - eef_pos, axis=-1) < GRASP_REACH
    grasp = closed & near
    if fingers is not None and len(fingers):
        f = np.asarray(fingers, float).reshape(len(fingers), -1)
        on_something = np.all((f > FINGER_SHUT) & (f < FINGER_OPEN), axis=1)
        grasp &= on_something
    if goal is not None:
        g = np.broadcast_to(np.asarray(goal, float), object_pos.shape)
        place = np.linalg.norm(object_pos - g, axis=-1) < place_distance
    else:
        place = np.zeros_like(grasp)
        edges = rising_edges(grasp)
        if len(edges):
            opened = np.flatnonzero(~closed[edges[-1]:])
            if len(opened):
                place[edges[-1] + opened[0]:] = True
    return {"grasp": grasp, "place": place}


def segment_ends(
    signals: Mapping[str, np.ndarray],
    term_signals: Sequence[str | None],
    length: int,
    offsets: Sequence[int] | None = None,
    *,
    where: str = "",
) -> list[int]:
    """Exclusive end frame of each subtask.

    A subtask ends one frame after the *last* rising edge of its signal that comes before the next subtask's
    boundary (robust to a grasp that slipped and was retried), plus its offset; the last subtask (signal None)
    ends at ``length``. Raises :class:`MimicGenError` naming ``where`` when a signal is missing or never turns on
    in order.
    """
    n = len(term_signals)
    offsets = list(offsets) if offsets is not None else [0] * n
    ends = [length] * n
    for k in range(n - 2, -1, -1):  # backwards: each boundary must come before the next one
        name = term_signals[k]
        if name is None:
            raise MimicGenError(f"{where}: only the last subtask may have no term signal")
        if name not in signals:
            raise MimicGenError(f"{where}: no subtask term signal {name!r} (have {sorted(signals)})")
        nxt = ends[k + 1]
        edges = rising_edges(signals[name])
        edges = edges[edges + 1 < nxt]
        if not len(edges):
            raise MimicGenError(f"{where}: subtask signal {name!r} never turns on before the next subtask")
        ends[k] = min(int(edges[-1]) + 1 + int(offsets[k]), nxt - 1)
    prev = 0
    for k, e in enumerate(ends):
        if e <= prev:
            raise MimicGenError(f"{where}: subtask {k} ({term_signals[k]!r}) is empty (frames {prev}..{e})")
        prev = e
    return ends


def write_signals(path: str | os.PathLike[str], corrections: Mapping[str, Mapping[str, np.ndarray]],
                  out: str | os.PathLike[str] | None = None) -> Path:
    """Write corrected term signals ``{demo: {signal: (T,) bool}}`` into a store (atomically: a copy is edited,
    then renamed over ``out``, default ``path`` itself; see :mod:`robodata.atomic`)."""
    src = Path(path)
    dst = Path(out) if out is not None else src
    with atomic_path(dst, kind="file") as tmp:
        shutil.copyfile(src, tmp)
        with h5py.File(tmp, "r+") as f:
            for demo, sigs in corrections.items():
                if demo_path(demo) not in f:
                    raise MimicGenError(f"{src}: no demo {demo!r}")
                g = f[demo_path(demo)]
                n = int(g[ACTIONS].shape[0])
                grp = g.require_group(SIGNALS_PATH)
                for name, arr in sigs.items():
                    arr = np.asarray(arr, bool)
                    if arr.shape != (n,):
                        raise MimicGenError(f"{src} {demo}: signal {name!r} has {arr.shape} values for {n} frames")
                    if name in grp:
                        del grp[name]
                    grp.create_dataset(name, data=arr)
                log = json.loads(g.attrs.get("annotations", "[]"))
                log.append({"signals": sorted(sigs), "by": "robodata annotate"})
                g.attrs["annotations"] = json.dumps(log)
    return dst


def step_signal(length: int, frame: int) -> np.ndarray:
    """A term signal that turns on at ``frame`` and stays on (what a corrected boundary is stored as)."""
    return np.arange(length) >= frame
