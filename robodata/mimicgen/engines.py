"""The engines of ``synthetic_demos``: each writes one recording's generated demos and says how to verify them.

- :class:`LocalDemoGenerator` (``engine: local``): the MimicGen algorithm in the MuJoCo Fetch simulator, trials
  fanned out as Ray tasks; its output records per-segment provenance and is verified by replaying every demo.
- :class:`IsaacLabDemoGenerator` (``engine: isaaclab``): Isaac Lab Mimic's ``generate_dataset.py`` in its
  container, started through a :class:`~robodata.stages.engines.Launcher`; verified from what Isaac Lab records.

The stage (:class:`robodata.stages.synthetic.SyntheticDemosStage`) calls one of them on its staging path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from robodata.mimicgen.config import SyntheticDemosConfig
from robodata.mimicgen.errors import MimicGenError
from robodata.mimicgen.validate import Check
from robodata.stages.engines import Launcher, PipesLaunch, require_engine


class DemoGenerator(ABC):
    """An engine of ``synthetic_demos`` (the value of ``tiers.synthetic_demos.engine`` is :attr:`engine`)."""

    engine: ClassVar[str]
    needs_local_store: ClassVar[bool] = False  # its process reads and writes the store's files by path

    @abstractmethod
    def generate(self, source: Path, out: Path, config: SyntheticDemosConfig, *, key: str, source_name: str,
                 failed: Path | None = None) -> dict[str, Any]:
        """Write the demos generated from ``source`` at ``out``; returns the report (plain values).

        ``failed`` is where failed trials go when ``datagen.keep_failed``; ``source_name`` is what messages call
        the source. Raises :class:`MimicGenError` when nothing usable came out."""

    @abstractmethod
    def verify(self, out: Path, source: Path, config: SyntheticDemosConfig) -> dict[str, Check]:
        """The four checks' verdicts on the store at ``out``, read back from disk."""


class LocalDemoGenerator(DemoGenerator):
    """MimicGen in the local simulator (no GPU, no download); Ray trials where Ray is up, else in process."""

    engine = "local"

    def generate(self, source: Path, out: Path, config: SyntheticDemosConfig, *, key: str, source_name: str,
                 failed: Path | None = None) -> dict[str, Any]:
        from robodata.mimicgen.generate import generate_demos
        from robodata.mimicgen.plots import generation_overview_png
        from robodata.mimicgen.source import load_sources

        rep = generate_demos(source, out, config, failed_path=failed)
        if rep.successes == 0:
            raise MimicGenError(f"{source_name}: 0 of {rep.trials} generation trials succeeded (failure reasons: "
                                f"{rep.failure_reasons}); nothing written")
        png = generation_overview_png(load_sources(source, config.subtasks), rep.scenes, title=key)
        return {
            "engine": self.engine,
            "sources": rep.sources,
            "trials": rep.trials,
            "successes": rep.successes,
            "failures": rep.failures,
            "success_rate": round(rep.success_rate, 3),
            "failure_reasons": rep.failure_reasons,
            "demos_per_min": round(rep.demos_per_min, 2),
            "source_usage_per_subtask": rep.source_usage,
            "frames": rep.kept_frames,
            "sim_steps": rep.steps,
            "workers": rep.workers,
            "wall_s": round(rep.wall_s, 2),
            "overview": png,
            "kept_failed": rep.failed_path is not None,
        }

    def verify(self, out: Path, source: Path, config: SyntheticDemosConfig) -> dict[str, Check]:
        from robodata.formats.isaaclab import EpisodeStore
        from robodata.mimicgen.generate import cached_sim
        from robodata.mimicgen.validate import validate_generated

        with EpisodeStore(out) as es:
            shape = es.schema.cameras[0].shape if es.schema.cameras else (48, 64)
        hw = (int(shape[0]), int(shape[1]))
        return validate_generated(out, source, config.subtasks, tolerance=config.invariant_tolerance,
                                  min_frames=config.min_demo_frames, max_frames=config.max_demo_frames,
                                  sim=cached_sim(hw))


class IsaacLabDemoGenerator(DemoGenerator):
    """Isaac Lab Mimic's ``generate_dataset.py`` (``tiers.synthetic_demos.isaaclab``), launched out of process."""

    engine = "isaaclab"
    needs_local_store = True  # the container mounts the store at the same path

    def __init__(self, launch: Launcher):
        self.launch = launch

    def generate(self, source: Path, out: Path, config: SyntheticDemosConfig, *, key: str, source_name: str,
                 failed: Path | None = None) -> dict[str, Any]:
        from robodata.mimicgen.isaaclab import generate_dataset_argv, pipes_entry_argv

        il = config.isaaclab
        require_engine("tiers.synthetic_demos.isaaclab.launcher", il.launcher, self.launch.kind)
        argv = generate_dataset_argv(il, str(source), str(out))
        request = PipesLaunch(pipes_entry_argv(str(out), config.min_demo_frames, config.max_demo_frames, argv),
                              label=f"Isaac Lab Mimic: {' '.join(argv)}", image=il.image, namespace=il.namespace)
        try:
            result = self.launch(request)
        except Exception as err:
            raise MimicGenError(f"Isaac Lab Mimic (engine isaaclab) failed: {err} (its log is in the run's logs)"
                                ) from err
        return {**result.metadata, "command": " ".join(argv)}

    def verify(self, out: Path, source: Path, config: SyntheticDemosConfig) -> dict[str, Check]:
        from robodata.mimicgen.isaaclab import isaaclab_checks

        return isaaclab_checks(out, config.min_demo_frames, config.max_demo_frames, config.subtasks)
