"""The engines of ``augmented_videos``: each turns a recording's planned clips into K variant videos per clip.

- :class:`LocalClipAugmenter` (``engine: local``): domain randomisation in torch, inside the clip tasks that
  export the MP4s and control videos (Ray tasks where Ray is up).
- :class:`CosmosClipAugmenter` (``engine: cosmos``): the clip tasks export, then Cosmos Transfer 2.5 runs once
  per clip variant from its JSON spec, started through a :class:`~robodata.stages.engines.Launcher`; its
  outputs are checked (frame count) and moved beside the clip. With ``cosmos.launcher: k8s`` each launch is a pod
  (``cosmos.k8s``: the store's PVC, GPUs, node selector) that reads a spec with the videos on its mount.

Failures stay per clip (``ClipRun.failed``): the rest of the recording goes on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from robodata.augment.config import AugmentedVideosConfig, CosmosConfig
from robodata.errors import is_transient
from robodata.stages.engines import (
    Launcher,
    PipesLaunch,
    PodPathError,
    PodPaths,
    pod_launch_fields,
    pod_spec,
    require_engine,
    shared_root,
)

if TYPE_CHECKING:  # the clip machinery (PyAV, torch) loads where clips are made, not where engines are chosen
    from robodata.augment.pipeline import Clip, ClipRun

VariantVideos = dict[tuple[str, str, int], str]  # (demo, camera, k) -> the variant's MP4


def clip_gpus(config: AugmentedVideosConfig) -> int:
    """GPUs per clip task: one where a GPU is and the local engine may use it."""
    from robodata.parallel import gpus_available

    return 1 if gpus_available() >= 1 and config.local.device != "cpu" else 0


class ClipAugmenter(ABC):
    """An engine of ``augmented_videos`` (the value of ``tiers.augmented_videos.engine`` is :attr:`engine`)."""

    engine: ClassVar[str]

    @abstractmethod
    def augment(self, source: Path, out_dir: Path, clips: list[Clip],
                config: AugmentedVideosConfig) -> tuple[ClipRun, VariantVideos | None]:
        """Export ``clips`` of the store at ``source`` under ``out_dir`` and make their variants.

        Returns the clip results and, when the variants are not in the clip reports, where each one is."""


class LocalClipAugmenter(ClipAugmenter):
    """Domain randomisation in torch (``tiers.augmented_videos.local``), in the clip tasks themselves."""

    engine = "local"

    def augment(self, source: Path, out_dir: Path, clips: list[Clip],
                config: AugmentedVideosConfig) -> tuple[ClipRun, VariantVideos | None]:
        from robodata.augment.pipeline import run_clips

        local = config.model_copy(update={"engine": self.engine})
        return run_clips(source, out_dir, clips, local, num_gpus=clip_gpus(config)), None


class CosmosClipAugmenter(ClipAugmenter):
    """Cosmos Transfer 2.5 (``tiers.augmented_videos.cosmos``), one launch per clip variant."""

    engine = "cosmos"

    def __init__(self, launch: Launcher):
        self.launch = launch

    def augment(self, source: Path, out_dir: Path, clips: list[Clip],
                config: AugmentedVideosConfig) -> tuple[ClipRun, VariantVideos | None]:
        from robodata.augment.cosmos import build_spec, collect_output, command, spec_for_pod, write_spec
        from robodata.augment.pipeline import run_clips

        cc = config.cosmos
        require_engine("tiers.augmented_videos.cosmos.launcher", cc.launcher, self.launch.kind)
        paths = self._pod_paths(cc, source, out_dir)  # a pod that could not see the store: refused before any work
        export_only = config.model_copy(update={"engine": self.engine})
        run = run_clips(source, out_dir, clips, export_only, num_gpus=clip_gpus(config))
        videos: VariantVideos = {}
        spec_dir, raw_out = out_dir / "cosmos" / "specs", out_dir / "cosmos" / "outputs"
        for c in clips:
            if c.name in run.failed:
                continue
            frames = run.reports[c.name]["frames"]
            for k, seed in c.variants:
                try:
                    spec = build_spec(out_dir, c.demo, c.camera, k, seed, cc)
                    spec_path = write_spec(spec_dir, spec_for_pod(spec, paths) if paths else spec)
                    argv = command(cc, spec_path, raw_out)
                    request = PipesLaunch(argv, env=dict(cc.env), cwd=cc.cwd, extras={"clip": c.name, "variant": k},
                                          label=f"Cosmos Transfer: {' '.join(argv)}", image=cc.image,
                                          namespace=cc.namespace)
                    if paths is not None:
                        _for_pod(request, cc, paths)
                    self.launch(request)
                    videos[(c.demo, c.camera, k)] = str(collect_output(raw_out, out_dir, c.demo, c.camera, k, frames))
                except PodPathError:
                    raise  # the config, not this clip: every launch would be refused alike
                except Exception as err:  # a bad output or a failed launch fails this clip only (the rest goes on)
                    if is_transient(err):  # a pod evicted, a node lost: the step's retry policy runs it again
                        raise
                    run.failed[f"{c.name} v{k}"] = f"{c.name} v{k}: {err}"
        return run, videos

    @staticmethod
    def _pod_paths(cc: CosmosConfig, source: Path, out_dir: Path) -> PodPaths | None:
        """On Kubernetes: the store root (what the PVC holds) -> ``cosmos.k8s.mount_path``; None otherwise."""
        if cc.launcher != "k8s":
            return None
        pod_spec(cc.k8s)  # the shared volume is set
        return PodPaths(shared_root(source, out_dir), cc.k8s.mount_path)


def _for_pod(request: PipesLaunch, cc: CosmosConfig, paths: PodPaths) -> None:
    """The pod of one Cosmos launch: ``cosmos.k8s``'s spec, the command and environment on the store's mount."""
    fields = pod_launch_fields(cc.k8s, paths.local_root, request.command, request.env, cwd=request.cwd)
    request.pod_spec, request.pod_command, request.pod_env = fields["pod_spec"], fields["pod_command"], \
        fields["pod_env"]
    request.gpus = cc.k8s.gpus
