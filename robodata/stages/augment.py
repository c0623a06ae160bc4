"""augmented_videos as a stage: K visual variants of every demo, merged back as new demos, checked before publish.

The clips of a recording's demos are exported as MP4 (+ depth/seg/edge control videos) into
``augmented_videos/<key>/``; the engine (:mod:`robodata.augment.engines`: local torch or Cosmos Transfer) makes
the variants; they are merged back beside the originals into the staged ``augmented_videos/<key>.hdf5``. The four
blocking checks read that staged store (frame counts, low-dim data unchanged, images sane, scene kept), and only
a store that passes them is published; one that fails goes to quarantine with its findings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robodata import store_layout as layout
from robodata.augment.checks import CHECK_FRAMES, CHECK_IMAGES, CHECK_LOWDIM, CHECK_SCENE, CheckOutcome
from robodata.augment.config import AugmentedVideosConfig
from robodata.augment.engines import ClipAugmenter
from robodata.augment.errors import AugmentError
from robodata.stages.base import Finding, OutputValidator, SharedVerdicts, Stage, StageOutcome
from robodata.stages.engines import require_engine
from robodata.stages.tiers import GxStoreFrames, Reference, WithinReferenceBounds
from robodata.storage import DataStore

if TYPE_CHECKING:
    from robodata.augment.pipeline import Clip, ClipRun

# The tiers augmented_videos may follow (the project config chooses one: synthetic_demos unless it is disabled).
SOURCE_TIERS = (layout.SYNTHETIC_DEMOS, layout.RAW_TELEOP)


class _Verdicts(SharedVerdicts[dict[str, CheckOutcome]]):
    """The four checks of one staged store, shared by the validators; the scene check compares against the
    robot/object masks the clip tasks of this run wrote (the stage's work sets them)."""

    def __init__(self, config: AugmentedVideosConfig):
        super().__init__()
        self.config = config
        self.masks: dict[tuple[str, str], np.ndarray] = {}

    def compute(self, path: Path) -> dict[str, CheckOutcome]:
        from robodata.augment.checks import check_store

        c = self.config
        return check_store(path, self.masks, min_distance=c.min_distance, max_masked_residual=c.max_masked_residual)


class _AugmentedStoreCheck(OutputValidator):
    def __init__(self, verdicts: _Verdicts):
        self.verdicts = verdicts
        self.last_metadata: dict[str, Any] = {}

    def validate(self, path: Path) -> list[Finding]:
        c = self.verdicts.on(path)[self.name]
        self.last_metadata = {"failures": c.failures[:20], **{k: v for k, v in c.measures.items() if v is not None}}
        return [Finding(self.name, msg, "error") for msg in c.failures] or (
            [] if c.passed else [Finding(self.name, "failed", "error")])


class FrameCountsMatch(_AugmentedStoreCheck):
    name = CHECK_FRAMES
    description = "every augmented clip has the same number of frames as its source demo"


class LowDimUnchanged(_AugmentedStoreCheck):
    name = CHECK_LOWDIM
    description = "actions, states, timestamps and non-image observations are copied unchanged"


class ImagesNotBlank(_AugmentedStoreCheck):
    name = CHECK_IMAGES
    description = "augmented images are neither blank nor saturated"


class SceneKept(_AugmentedStoreCheck):
    name = CHECK_SCENE
    description = "variants differ from the source, robot and object stay where they were (masked residual)"


@dataclass
class AugmentReport:
    """What one run of the stage did: the clips, their results, the variants merged and those that failed."""

    clips: list[Clip]
    run: ClipRun
    written: int
    originals: int
    frames: int
    failed: dict[str, str] = field(default_factory=dict)  # "<demo> v<k>" -> why the variant was not written
    sheet: bytes = b""  # before/after contact sheet (PNG)

    @property
    def variant_frames(self) -> int:
        return sum(r["frames"] * len(c.variants) for c in self.clips if (r := self.run.reports.get(c.name)))


class AugmentedVideosStage(Stage[AugmentedVideosConfig]):
    """A recording's episodes (synthetic_demos, or raw_teleop without it) -> the same plus K visual variants per
    demo."""

    name = layout.AUGMENTED_VIDEOS
    inputs = SOURCE_TIERS
    checks = (FrameCountsMatch, LowDimUnchanged, ImagesNotBlank, SceneKept, GxStoreFrames, WithinReferenceBounds)
    reference: Reference | None = None  # the latest release's learned bounds (None: read from the store in run)

    def __init__(self, config: AugmentedVideosConfig, engine: ClipAugmenter):
        super().__init__(config)
        require_engine("tiers.augmented_videos.engine", config.engine, engine.engine)
        self.engine = engine
        self._verdicts = _Verdicts(config)

    def output_path(self, key: str) -> str:
        return layout.episodes_path(layout.AUGMENTED_VIDEOS, key)

    def work(self, staged: Path, key: str, *, source: Path, videos: Path) -> AugmentReport:
        from robodata.augment.merge import merge_variants
        from robodata.augment.pipeline import masks_of, plan, variants_from
        from robodata.augment.sheet import sheet_from_store

        clips = plan(source, self.config)
        run, outputs = self.engine.augment(source, videos, clips, self.config)
        variants, failed = variants_from(clips, run, self.engine.engine, outputs)
        if not variants:
            raise AugmentError("no variant could be made: " + "; ".join({**run.failed, **failed}.values()))
        rep = merge_variants(source, staged, variants)
        failed.update({f"{v.demo} v{v.variant}": e for v, e in rep.failed})
        self._verdicts.masks = masks_of(run)
        return AugmentReport(clips, run, len(rep.written), rep.originals, rep.frames, failed, sheet_from_store(staged))

    def validators(self) -> list[OutputValidator]:
        v = self._verdicts
        return [FrameCountsMatch(v), LowDimUnchanged(v), ImagesNotBlank(v), SceneKept(v), GxStoreFrames(),
                WithinReferenceBounds(self.reference)]

    def run(self, store: DataStore, key: str, *, raise_on_failure: bool = False, **inputs: Any) -> StageOutcome:
        """As :meth:`Stage.run`, with the latest release's learned bounds as the reference (a warning)."""
        if self.reference is None:
            from robodata.quality import latest_release_bounds

            self.reference = latest_release_bounds(store)
        return super().run(store, key, raise_on_failure=raise_on_failure, **inputs)


def augment_source(store: DataStore, key: str, source_tier: str) -> str:
    """The store path of ``key``'s episodes in ``source_tier`` (the tier ``augmented_videos`` follows)."""
    if source_tier not in SOURCE_TIERS:
        raise AugmentError(f"augmented_videos reads {' or '.join(SOURCE_TIERS)}, not {source_tier!r}")
    rel = layout.episodes_path(source_tier, key)
    if not store.exists(rel):
        raise AugmentError(f"no {source_tier} episodes at {store.url(rel)} (materialize {source_tier} first)")
    return rel


def augment_recording(store: DataStore, key: str, config: AugmentedVideosConfig, engine: ClipAugmenter, *,
                      source_tier: str) -> tuple[StageOutcome, dict[str, Any]]:
    """Augment recording ``key``'s clips read from ``source_tier`` (the upstream tier the config chooses: stage,
    check, publish or quarantine the merged store; the MP4s are kept in ``augmented_videos/<key>/`` either way);
    returns the outcome and the summary a runner shows."""
    src_rel = augment_source(store, key, source_tier)
    stage = AugmentedVideosStage(config, engine)
    t0 = time.perf_counter()
    with store.read_path(src_rel) as src, store.write_path(layout.videos_path(key)) as videos:
        videos.mkdir(parents=True, exist_ok=True)
        outcome = stage.run(store, key, source=src, videos=videos)
        elapsed = time.perf_counter() - t0
        mp4_bytes = sum(p.stat().st_size for p in videos.rglob("*.mp4"))
    rep: AugmentReport = outcome.report
    scene = next((c.metadata for c in outcome.checks if c.name == CHECK_SCENE), {})
    out = outcome.url or outcome.quarantined
    summary = {
        "source": store.url(src_rel),
        "source_tier": source_tier,
        "engine": engine.engine,
        "clips": len(rep.clips),
        "clips_failed": len(rep.run.failed),
        "variants": rep.written,
        "variants_failed": dict(rep.failed),
        "failed_clips": dict(rep.run.failed),
        "demos_out": rep.originals + rep.written,
        "frames_out": rep.frames,
        "frames_per_s": round(rep.variant_frames / elapsed, 1) if elapsed else 0.0,
        "control_sources": sorted({r["control_source"] for r in rep.run.reports.values()}),
        # the frame batches the local engine used (chosen from free GPU memory on CUDA; halved on an OOM)
        "augment_batch": sorted({a["batch_size"] for r in rep.run.reports.values()
                                 for a in r.get("augment", {}).values()}),
        "mp4_bytes": mp4_bytes,
        "hdf5_bytes": store.size(store.rel(out)),
        "seconds": round(elapsed, 2),
        "published": outcome.published,
        "path": out,
        "videos": store.url(layout.videos_path(key)),
        **{f"check_{k}": v for k, v in scene.items() if k != "failures" and v is not None},
        "before_after": rep.sheet,
    }
    return outcome, summary
