"""synthetic_demos as a stage: MimicGen-style demos from a recording's source demos, checked before they publish.

The engine (:mod:`robodata.mimicgen.engines`: local simulator or Isaac Lab Mimic) writes the generated store at
the staging path; the four blocking checks read it back from there (success replayed in the simulator, the
object-centric invariant against the source, finiteness, lengths), and only a store that passes them all is
published at ``synthetic_demos/<key>.hdf5``; one that fails goes to quarantine with its findings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robodata import store_layout as layout
from robodata.mimicgen.config import SyntheticDemosConfig
from robodata.mimicgen.engines import DemoGenerator
from robodata.mimicgen.errors import MimicGenError
from robodata.mimicgen.validate import (
    CHECK_FINITE,
    CHECK_INVARIANT,
    CHECK_LENGTHS,
    CHECK_SUCCESS,
    Check,
)
from robodata.stages.base import Finding, OutputValidator, SharedVerdicts, Stage, StageOutcome
from robodata.stages.engines import require_engine
from robodata.stages.tiers import GxStoreFrames, Reference, WithinReferenceBounds
from robodata.storage import DataStore


class _Verdicts(SharedVerdicts[dict[str, Check]]):
    """The four checks of one staged store (the engine says how), shared by the validators.

    They compare the output with the source demos it was generated from: the stage's work names that source."""

    def __init__(self, engine: DemoGenerator, config: SyntheticDemosConfig):
        super().__init__()
        self.engine, self.config = engine, config
        self.source: Path | None = None

    def compute(self, path: Path) -> dict[str, Check]:
        if self.source is None:
            raise MimicGenError(f"{path}: checked before the stage generated it (no source demos known)")
        return self.engine.verify(path, self.source, self.config)


class _GeneratedDemosCheck(OutputValidator):
    def __init__(self, verdicts: _Verdicts):
        self.verdicts = verdicts
        self.last_metadata: dict[str, Any] = {}

    def validate(self, path: Path) -> list[Finding]:
        check = self.verdicts.on(path)[self.name]
        self.last_metadata = {k: v for k, v in check.details.items() if v is not None}
        if not check.evaluated:  # a warning: it blocks nothing (SyntheticDemosStage.run marks it not passed)
            self.last_metadata["evaluated"] = False
            return [Finding(self.name, check.message, "warning")]
        return [] if check.passed else [Finding(self.name, check.message or "failed", "error")]


class KeptDemosSucceed(_GeneratedDemosCheck):
    name = CHECK_SUCCESS
    description = "every kept demo succeeds when its actions are replayed in the simulator"


class ObjectCentricInvariant(_GeneratedDemosCheck):
    name = CHECK_INVARIANT
    description = ("in each transformed segment, the target end-effector pose in the reference object's frame "
                   "equals the source's (within invariant_tolerance)")


class NoNonFinite(_GeneratedDemosCheck):
    name = CHECK_FINITE
    description = "no NaN or inf in any float dataset"


class DemoLengthsInBounds(_GeneratedDemosCheck):
    name = CHECK_LENGTHS
    description = "demo lengths within [min_demo_frames, max_demo_frames]"


class SyntheticDemosStage(Stage[SyntheticDemosConfig]):
    """A recording's source demos (raw_teleop) -> generated demos that succeed in simulation (one engine)."""

    name = layout.SYNTHETIC_DEMOS
    inputs = (layout.RAW_TELEOP,)
    checks = (KeptDemosSucceed, ObjectCentricInvariant, NoNonFinite, DemoLengthsInBounds, GxStoreFrames,
              WithinReferenceBounds)
    reference: Reference | None = None  # the latest release's learned bounds (None: read from the store in run)

    def __init__(self, config: SyntheticDemosConfig, engine: DemoGenerator):
        super().__init__(config)
        require_engine("tiers.synthetic_demos.engine", config.engine, engine.engine)
        self.engine = engine
        self._verdicts = _Verdicts(engine, config)

    def output_path(self, key: str) -> str:
        return layout.episodes_path(layout.SYNTHETIC_DEMOS, key)

    def work(self, staged: Path, key: str, *, source: Path, source_name: str = "",
             failed: Path | None = None) -> dict[str, Any]:
        self._verdicts.source = source
        return self.engine.generate(source, staged, self.config, key=key, source_name=source_name or str(source),
                                    failed=failed)

    def validators(self) -> list[OutputValidator]:
        v = self._verdicts
        return [KeptDemosSucceed(v), ObjectCentricInvariant(v), NoNonFinite(v), DemoLengthsInBounds(v), GxStoreFrames(),
                WithinReferenceBounds(self.reference)]

    def run(self, store: DataStore, key: str, *, raise_on_failure: bool = False, **inputs: Any) -> StageOutcome:
        """As :meth:`Stage.run`; then a check the engine could not evaluate (``evaluated: false`` in its
        metadata: e.g. the invariant on Isaac Lab Mimic's output) is reported as not passed and not blocking:
        it neither vouches for the output nor kept it from being published. Generated demos are checked against
        the latest release's learned bounds, as raw_teleop's are (a warning)."""
        if self.reference is None:
            from robodata.quality import latest_release_bounds

            self.reference = latest_release_bounds(store)
        outcome = super().run(store, key, raise_on_failure=raise_on_failure, **inputs)
        for c in outcome.checks:
            if c.metadata.get("evaluated") is False:
                c.passed, c.blocking = False, False
        return outcome


@contextlib.contextmanager
def _side_output(store: DataStore, rel: str, wanted: bool) -> Iterator[Path | None]:
    """A staging path for an output kept beside the stage's (published when something was written there)."""
    if not wanted:
        yield None
        return
    with store.staged(rel) as tmp:
        yield tmp
        if tmp.exists():
            store.publish(tmp, rel)


def generate_recording(store: DataStore, key: str, config: SyntheticDemosConfig,
                       engine: DemoGenerator) -> tuple[StageOutcome, dict[str, Any]]:
    """Generate the synthetic demos of recording ``key`` from its raw_teleop demos (stage, check, publish or
    quarantine); returns the outcome and the summary a runner shows (the engine's report, path, data version)."""
    src_rel = layout.episodes_path(layout.RAW_TELEOP, key)
    if not store.exists(src_rel):
        raise MimicGenError(f"no source demos at {store.url(src_rel)} (materialize raw_teleop first)")
    if engine.needs_local_store and not store.local:
        raise MimicGenError(f"engine {engine.engine} needs a store the container shares (a local path); "
                            f"got {store.root}")
    stage = SyntheticDemosStage(config, engine)
    failed_rel = layout.failed_demos_path(key)
    t0 = time.perf_counter()
    with store.read_path(src_rel) as src, _side_output(store, failed_rel, config.datagen.keep_failed) as failed:
        outcome = stage.run(store, key, source=src, source_name=store.url(src_rel), failed=failed)
    summary = dict(outcome.report)
    if summary.pop("kept_failed", False):
        summary["failed_path"] = store.url(failed_rel)
    out = outcome.url or outcome.quarantined
    summary.update(path=out, published=outcome.published, elapsed_s=round(time.perf_counter() - t0, 2))
    summary["data_version"] = hashlib.sha1(json.dumps({
        "config": config.model_dump(mode="json"), "source_bytes": store.size(src_rel),
        "out_bytes": store.size(store.rel(out)),
    }, sort_keys=True).encode()).hexdigest()[:16]
    return outcome, summary
