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
        from robodata.mimicgen.isaaclab import (
            annotate_demos_argv,
            generate_dataset_argv,
            is_annotated,
            isaaclab_quaternion_order,
            mimic_task,
            pipes_entry_argv,
            stamp_quaternion_order,
        )

        il = config.isaaclab
        require_engine("tiers.synthetic_demos.isaaclab.launcher", il.launcher, self.launch.kind)
        mimic_task(il.task)  # a renamed task: one sentence naming the new id
        order = isaaclab_quaternion_order(il.image)
        # Isaac Lab Mimic generates from annotated demos: annotate first unless the source is annotated already.
        # The annotated file sits beside the staged output (same volume, same cleanup), named .hdf5 for the recorder.
        annotated = out.with_name(out.name.removesuffix(".hdf5") + ".annotated.hdf5")
        steps: list[tuple[str, list[str], Path]] = []
        if not is_annotated(source):
            steps.append(("annotate", annotate_demos_argv(il, str(source), str(annotated)), annotated))
        gen_input = annotated if steps else source
        steps.append(("generate", generate_dataset_argv(il, str(gen_input), str(out)), out))
        result: dict[str, Any] = {}
        try:
            for step, argv, step_out in steps:
                command = pipes_entry_argv(str(step_out), config.min_demo_frames, config.max_demo_frames, argv,
                                           step=step, quaternion_order=order)
                request = PipesLaunch(command, label=f"Isaac Lab Mimic {step}: {' '.join(argv)}", image=il.image,
                                      namespace=il.namespace)
                self._for_pod(request, il, source, out)
                result = self.launch(request).metadata
        except Exception as err:
            raise MimicGenError(f"Isaac Lab Mimic (engine isaaclab) failed: {err} (its log is in the run's logs)"
                                ) from err
        finally:
            annotated.unlink(missing_ok=True)
        stamp_quaternion_order(out, order)
        return {**result, "command": " ".join(steps[-1][1]), "quaternion_order": order,
                "annotate_command": " ".join(steps[0][1]) if len(steps) > 1 else "", "annotated_here": len(steps) > 1}

    @staticmethod
    def _for_pod(request: PipesLaunch, il: Any, source: Path, out: Path) -> None:
        """On Kubernetes: the store's PVC, GPU limits and node selector from ``isaaclab.k8s``, paths on the volume."""
        import os

        from robodata.stages.engines import PodSettings, pod_launch_fields

        if il.launcher != "k8s":
            return
        settings = getattr(il, "k8s", None) or PodSettings()  # tiers.synthetic_demos.isaaclab.k8s
        root = os.path.commonpath([str(source.resolve()), str(out.resolve())])
        fields = pod_launch_fields(settings, root, request.command, request.env)
        request.pod_spec, request.pod_command, request.pod_env = fields["pod_spec"], fields["pod_command"], \
            fields["pod_env"]
        request.gpus = settings.gpus

    def verify(self, out: Path, source: Path, config: SyntheticDemosConfig) -> dict[str, Check]:
        from robodata.mimicgen.isaaclab import isaaclab_checks, isaaclab_quaternion_order


        return isaaclab_checks(out, config.min_demo_frames, config.max_demo_frames, config.subtasks,
                               quaternion_order=isaaclab_quaternion_order(config.isaaclab.image))
