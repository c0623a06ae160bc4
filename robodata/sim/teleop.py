"""A scripted, noisy, human-like teleoperator for Fetch pick-and-place (the demo's stand-in for a person).

Each episode draws an operator "personality" (:class:`OperatorParams`: speed, hand tremor, hesitation rate,
aiming error, overshoot, approach height...) from a seeded :class:`numpy.random.Generator`, then drives the
phases approach-above-object, descend, close gripper, lift, carry to goal, settle. Like a person, it pauses now
and then, aims a little off and corrects as it gets close, overshoots the goal and comes back, and retries a
grasp that missed or an object that slipped. Same seed, same episode; different seeds, different episodes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any, Protocol

import numpy as np

from robodata.sim.fetch import ACTION_SCALE


class Phase(IntEnum):
    APPROACH = 0
    DESCEND = 1
    CLOSE = 2
    LIFT = 3
    CARRY = 4
    SETTLE = 5
    DONE = 6


class PickPlaceSim(Protocol):
    """What the operator observes (satisfied by :class:`robodata.sim.fetch.FetchPickPlace`)."""

    def eef_pose(self) -> np.ndarray: ...
    def object_pose(self) -> np.ndarray: ...
    def is_grasping(self) -> bool: ...
    def is_success(self) -> bool: ...
    @property
    def goal(self) -> np.ndarray: ...


@dataclass
class OperatorParams:
    """One episode's operator: how fast, how shaky, how hesitant, how precise."""

    gain: float  # fraction of the remaining distance commanded per step
    max_speed: float  # largest |action| component for motion (1 = 5 cm per step)
    noise_std: float  # white action noise
    tremor_std: float  # slow, correlated hand drift
    hesitation_prob: float  # chance per step of starting a pause
    hesitation_len: tuple[int, int]  # pause length range, steps
    aim_error: float  # std of the initial error in where the operator thinks the cube is (m)
    overshoot: float  # how far past the goal the first carry aims (m)
    goal_error: float  # std of the error in where the operator thinks the goal is (m); large ones miss it
    approach_height: float  # hover height above the cube before descending (m)
    grasp_depth: float  # gripper height relative to the cube centre at grasp (m)
    close_steps: int  # steps holding "close" before lifting
    lift_height: float  # lift above the table before carrying (m)
    settle_steps: int  # steps holding at the goal before calling it done

    @classmethod
    def sample(cls, rng: np.random.Generator) -> OperatorParams:
        speed = rng.uniform(0.7, 1.3)  # the per-episode speed gain
        return cls(
            gain=float(0.22 * speed),
            max_speed=float(np.clip(0.28 * speed, 0.18, 0.4)),
            noise_std=float(rng.uniform(0.01, 0.04)),
            tremor_std=float(rng.uniform(0.005, 0.02)),
            hesitation_prob=float(rng.uniform(0.01, 0.04)),
            hesitation_len=(2, int(rng.integers(5, 12))),
            aim_error=float(rng.uniform(0.003, 0.012)),
            overshoot=float(rng.uniform(0.0, 0.03)),
            goal_error=float(rng.uniform(0.005, 0.03)),
            approach_height=float(rng.uniform(0.05, 0.1)),
            grasp_depth=float(rng.uniform(-0.005, 0.008)),
            close_steps=int(rng.integers(6, 11)),
            lift_height=float(rng.uniform(0.06, 0.12)),
            settle_steps=int(rng.integers(8, 20)),
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["hesitation_len"] = list(self.hesitation_len)
        return d


@dataclass
class TeleopCommand:
    """What the operator does at one control step, and the subtask signals it knows of at that step."""

    action: np.ndarray  # (4,) dx, dy, dz, gripper in [-1, 1]
    phase: Phase
    target_pos: np.ndarray  # (3,) where the operator is steering the gripper to
    grasp: bool  # the cube is held (both fingers on it)
    place: bool  # the cube is at the goal (Fetch's 5 cm criterion)


class ScriptedTeleop:
    """A seeded, noisy pick-and-place operator; call :meth:`begin_episode` after each reset, then :meth:`act`.

    Args:
        rng: the operator's randomness (a Generator or a seed).
        params: a fixed operator; by default one is drawn per episode.
        max_steps: give up after this many steps (the episode then ends unsuccessful).
        max_retries: grasp attempts after the first before giving up.
    """

    def __init__(
        self,
        rng: np.random.Generator | int | None = None,
        params: OperatorParams | None = None,
        *,
        max_steps: int = 450,
        max_retries: int = 2,
    ):
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self._fixed = params
        self.max_steps = max_steps
        self.max_retries = max_retries
        self.params: OperatorParams = params or OperatorParams.sample(self.rng)
        self.phase = Phase.DONE
        self.steps = 0
        self.retries = 0

    @property
    def done(self) -> bool:
        return self.phase == Phase.DONE

    def begin_episode(self, sim: PickPlaceSim) -> OperatorParams:
        self.params = self._fixed or OperatorParams.sample(self.rng)
        self.phase = Phase.APPROACH
        self.steps = 0
        self.retries = 0
        self._phase_steps = 0
        self._pause = 0
        self._tremor: np.ndarray = np.zeros(3)
        self._aim_err = self._new_aim_error()
        self._overshoot_left = True
        self._goal_err = self.rng.normal(0.0, self.params.goal_error, 3)
        self._goal_err[2] = 0.5 * abs(self._goal_err[2])  # nobody aims into the table
        self._grasp_offset: np.ndarray = np.zeros(3)
        self._lift_z = 0.0
        self._gripper = 1.0
        return self.params

    def _new_aim_error(self) -> np.ndarray:
        e = self.rng.normal(0.0, self.params.aim_error, 3)
        e[2] *= 0.3
        return e

    def _goto(self, phase: Phase) -> None:
        self.phase = phase
        self._phase_steps = 0

    def act(self, sim: PickPlaceSim) -> TeleopCommand:
        """Observe the simulator and decide this step's action."""
        p = self.params
        eef = np.asarray(sim.eef_pose()[:3], dtype=np.float64)
        obj = np.asarray(sim.object_pose()[:3], dtype=np.float64)
        true_goal = np.asarray(sim.goal, dtype=np.float64)
        goal = true_goal + self._goal_err  # where the operator believes the goal is
        grasping = bool(sim.is_grasping())
        placed = bool(sim.is_success())
        self.steps += 1
        self._phase_steps += 1
        if self.steps >= self.max_steps and self.phase != Phase.DONE:
            self._goto(Phase.DONE)

        gain, max_speed = p.gain, p.max_speed
        target = eef.copy()
        ph = self.phase
        held_lost = ph in (Phase.LIFT, Phase.CARRY, Phase.SETTLE) and np.linalg.norm(obj - eef) > 0.05
        if held_lost:  # the cube slipped: open, and try again if there is patience left
            self._retry()
            ph = self.phase

        if ph == Phase.APPROACH:
            self._gripper = 1.0
            aim = obj + self._aim_err
            target = aim + np.array([0.0, 0.0, p.approach_height])
            self._shrink_aim_error(eef, aim)
            if np.linalg.norm((target - eef)[:2]) < 0.01 and abs(target[2] - eef[2]) < 0.02:
                self._goto(Phase.DESCEND)
        elif ph == Phase.DESCEND:
            self._gripper = 1.0
            aim = obj + self._aim_err
            target = aim + np.array([0.0, 0.0, p.grasp_depth])
            self._shrink_aim_error(eef, aim)
            gain = p.gain * 0.8
            xy_err = np.linalg.norm((obj - eef)[:2])
            if xy_err > 0.03:  # drifted off the cube on the way down: back up and re-aim
                self._goto(Phase.APPROACH)
            elif (abs(target[2] - eef[2]) < 0.008 or self._phase_steps > 45) and xy_err < 0.012:
                self._goto(Phase.CLOSE)
        elif ph == Phase.CLOSE:
            self._gripper = -1.0
            target = eef
            if self._phase_steps >= p.close_steps:
                if grasping:
                    self._grasp_offset = eef - obj
                    self._lift_z = max(obj[2] + p.lift_height, goal[2] - 0.03) + self._grasp_offset[2]
                    self._goto(Phase.LIFT)
                elif self._phase_steps >= p.close_steps + 8:
                    self._retry()
        elif ph == Phase.LIFT:
            self._gripper = -1.0
            target = np.array([eef[0], eef[1], self._lift_z])
            if eef[2] > self._lift_z - 0.02:
                self._goto(Phase.CARRY)
        elif ph == Phase.CARRY:
            self._gripper = -1.0
            aim = goal + self._grasp_offset
            travel = aim - eef
            dist = np.linalg.norm(travel)
            if self._overshoot_left and p.overshoot > 0 and dist > 1e-6:
                target = aim + travel / dist * p.overshoot
                if np.linalg.norm(target - eef) < 0.012 or dist < 0.005:
                    self._overshoot_left = False  # got there (past the goal): now correct back
            else:
                target = aim
            if (np.linalg.norm(obj - goal) < 0.012 and not self._overshoot_left) or self._phase_steps > 150:
                self._goto(Phase.SETTLE)
        elif ph == Phase.SETTLE:
            self._gripper = -1.0
            target = goal + self._grasp_offset
            gain = p.gain * 0.6
            if self._phase_steps >= p.settle_steps:
                self._goto(Phase.DONE)
        else:  # DONE: hold still
            target = eef

        move = np.clip(gain * (target - eef) / ACTION_SCALE, -max_speed, max_speed)
        self._tremor = 0.85 * self._tremor + self.rng.normal(0.0, p.tremor_std, 3)
        if self._pause > 0:
            self._pause -= 1
            move = np.zeros(3)
        elif ph in (Phase.APPROACH, Phase.LIFT, Phase.CARRY) and self.rng.random() < p.hesitation_prob:
            self._pause = int(self.rng.integers(p.hesitation_len[0], p.hesitation_len[1] + 1))
        noise_scale = 0.3 if ph in (Phase.DESCEND, Phase.CLOSE, Phase.SETTLE) else 1.0
        move = move + noise_scale * (self._tremor + self.rng.normal(0.0, p.noise_std, 3))
        grip = float(np.clip(self._gripper + self.rng.normal(0.0, 0.05), -1.0, 1.0))
        action = np.concatenate([np.clip(move, -1.0, 1.0), [grip]]).astype(np.float32)
        return TeleopCommand(action, ph, target, grasping, placed)

    def _shrink_aim_error(self, eef: np.ndarray, aim: np.ndarray) -> None:
        """Seen from closer, the cube's position is judged better: the aiming error decays near it."""
        if np.linalg.norm((aim - eef)[:2]) < 0.04:
            self._aim_err *= 0.8

    def _retry(self) -> None:
        if self.retries >= self.max_retries:
            self._goto(Phase.DONE)
            return
        self.retries += 1
        self._aim_err = self._new_aim_error()
        self._overshoot_left = True
        self._goto(Phase.APPROACH)
