"""Generation settings, shaped like Isaac Lab Mimic's ``SubTaskConfig`` and ``DataGenConfig`` (pydantic, strict)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from robodata.stages.engines import PodSettings

SELECTION_STRATEGIES = ("random", "nearest_neighbor_object")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubtaskConfig(_Strict):
    """One object-centric subtask (Isaac Lab Mimic's ``SubTaskConfig``).

    The subtask ends at the rising edge of ``term_signal`` (``obs/datagen_info/subtask_term_signals/<name>``)
    plus a random offset from ``term_offset_range``; the last subtask has ``term_signal: null`` and runs to the
    end of the demo. Its end-effector poses are replayed relative to ``object_ref``.
    """

    name: str
    object_ref: str
    term_signal: str | None = None
    term_offset_range: tuple[int, int] = (0, 0)
    selection_strategy: Literal["random", "nearest_neighbor_object"] = "nearest_neighbor_object"
    nn_k: int = Field(3, ge=1, description="nearest_neighbor_object: pick at random among the k nearest")
    nn_pos_weight: float = Field(1.0, ge=0)
    nn_rot_weight: float = Field(1.0, ge=0)
    action_noise: float = Field(0.05, ge=0, description="std of gaussian noise added to the xyz action (units of 5 cm)")
    num_interpolation_steps: int = Field(5, ge=0)
    num_fixed_steps: int = Field(0, ge=0)
    apply_noise_during_interpolation: bool = False

    @model_validator(mode="after")
    def _offsets(self) -> SubtaskConfig:
        lo, hi = self.term_offset_range
        if lo > hi:
            raise ValueError(f"term_offset_range {self.term_offset_range}: low > high")
        return self


class DataGenConfig(_Strict):
    """How many trials to run and what to keep (Isaac Lab Mimic's ``DataGenConfig``)."""

    num_trials: int | None = Field(None, ge=1, description="hard cap on trials; default 4 x the demos wanted")
    max_failures: int = Field(50, ge=0, description="stop after this many failed trials")
    seed: int = 0
    keep_failed: bool = Field(False, description="also write failed trials to a separate store for analysis")
    guarantee: bool = Field(True, description="stop as soon as the wanted number of successes is reached")
    batch_trials: int = Field(8, ge=1, description="trials started per round (Ray fan-out grain)")


def default_subtasks() -> list[SubtaskConfig]:
    """Fetch pick-and-place: grasp relative to the cube, then carry-and-place relative to the goal."""
    return [
        SubtaskConfig(name="grasp", object_ref="cube", term_signal="grasp", term_offset_range=(2, 5),
                      num_interpolation_steps=5),
        SubtaskConfig(name="place", object_ref="goal", term_signal=None, num_interpolation_steps=8),
    ]


class IsaacLabMimicConfig(_Strict):
    """The production engine: Isaac Lab Mimic's ``generate_dataset.py`` in its container, through Dagster Pipes."""

    task: str = "Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0"
    num_envs: int = Field(10, ge=1)
    generation_num_trials: int = Field(1000, ge=1)
    command: list[str] = Field(
        default_factory=lambda: ["/workspace/isaaclab/isaaclab.sh", "-p",
                                 "scripts/imitation_learning/isaaclab_mimic/generate_dataset.py"],
        description="argv prefix that runs generate_dataset.py (in the Isaac Lab container)",
    )
    enable_cameras: bool = True
    headless: bool = True
    device: str = "cuda"
    extra_args: list[str] = []
    launcher: Literal["subprocess", "k8s"] = "subprocess"
    image: str = Field("isaac-lab:2.2.0", description="Isaac Lab image, prefixed with your registry")
    namespace: str = "robodata"
    k8s: PodSettings = Field(default_factory=PodSettings, description="the pod: shared volume, GPUs, node selector")


class SyntheticDemosConfig(_Strict):
    """``tiers.synthetic_demos``: MimicGen-style generation from a recording's source demos."""

    enabled: bool = Field(True, description="false: no synthetic_demos tier (augmented_videos follows raw_teleop)")
    engine: Literal["local", "isaaclab"] = "local"
    demos_per_source: int = Field(2, ge=1, description="successful demos wanted per source demo (MimicGen: 100x)")
    image_hw: tuple[int, int] | None = Field(None, description="camera size; default the source's")
    subtasks: list[SubtaskConfig] = Field(default_factory=default_subtasks)
    datagen: DataGenConfig = DataGenConfig()
    min_demo_frames: int = Field(10, ge=1)
    max_demo_frames: int = Field(2000, ge=1)
    invariant_tolerance: float = Field(1e-4, gt=0, description="m / rad; target poses vs source, object frame")
    max_partitions_per_run: int = Field(1, ge=1)
    isaaclab: IsaacLabMimicConfig = IsaacLabMimicConfig()

    @model_validator(mode="after")
    def _subtasks(self) -> SyntheticDemosConfig:
        if not self.subtasks:
            raise ValueError("at least one subtask")
        names = [s.name for s in self.subtasks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate subtask names {names}")
        for s in self.subtasks[:-1]:
            if s.term_signal is None:
                raise ValueError(f"subtask {s.name!r}: only the last subtask may have term_signal null")
        if self.min_demo_frames > self.max_demo_frames:
            raise ValueError("min_demo_frames > max_demo_frames")
        return self
