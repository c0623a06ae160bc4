"""A user's pipeline stage as a tier of the platform: one recording's canonical store in, a new one out.

The pipeline YAML that ``robodata run`` executes on Ray Data names stages and validators; the Dagster code
location makes each stage one partitioned asset between the recording tiers and ``lerobot_episodes``. Both
runners apply the stage through the same functions (:mod:`robodata.api.episodes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from robodata import store_layout as layout
from robodata.api.episodes import EpisodeEvent, episode_rows, run_stage_on_rows, validate_episode, write_store
from robodata.api.errors import PipelineError
from robodata.api.extensions import PipelineStage, Validator
from robodata.stages.base import Finding, OutputValidator, Stage
from robodata.stages.tiers import GxStoreFrames


class CustomStageConfig(BaseModel):
    batch_size: int = 64
    seed: int = 0


@dataclass
class CustomStageReport:
    episodes_in: int
    episodes_out: int
    frames_out: int
    events: list[EpisodeEvent] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.events if e.kind == kind]


class KeptEpisodes(OutputValidator):
    """A stage's output holds at least one episode (all of them dropped, failed or quarantined blocks)."""

    name = "episodes_kept"
    description = "the stage kept at least one episode (drops, failures, quarantines listed)"

    def __init__(self) -> None:
        self.last_metadata: dict[str, Any] = {}
        self.report: CustomStageReport | None = None

    def validate(self, path: Path) -> list[Finding]:
        rep = self.report
        if rep is None:
            return [Finding(self.name, "the stage did not report", "error", str(path))]
        self.last_metadata = {"episodes_in": rep.episodes_in, "episodes_out": rep.episodes_out,
                              "dropped": rep.of_kind("dropped"), "failed": rep.of_kind("failed"),
                              "quarantined": rep.of_kind("quarantined")}
        if rep.episodes_out == 0:
            return [Finding(self.name, f"no episode left of {rep.episodes_in}", "error", str(path))]
        return [Finding(self.name, e.message, "warning", e.episode_id) for e in rep.events if e.kind == "failed"]


class CustomStage(Stage[CustomStageConfig]):
    """Wraps one :class:`~robodata.api.PipelineStage` (and the pipeline's episode validators) as a tier."""

    name = "custom_stage"
    inputs = ("episodes",)
    checks: ClassVar[tuple[type[OutputValidator], ...]] = (KeptEpisodes, GxStoreFrames)

    def __init__(self, stage: PipelineStage, validators: Sequence[Validator] = (),
                 config: CustomStageConfig | None = None, tier: str | None = None):
        super().__init__(config or CustomStageConfig())
        if getattr(stage, "fits_published", False):
            # A tier runs per recording partition: statistics fitted here would differ from partition to partition
            # (each recording mapped onto [-1, 1] by its own range), and no single file would describe them.
            raise PipelineError(
                f"stage {stage.label!r} would fit its statistics per recording partition; set "
                "tiers.lerobot.action_normalization: mean_std|min_max|quantile (fitted once per release, written as "
                "meta/robodata_action_norm.json) or give it stats: <a dataset or statistics file>")
        self.stage = stage
        self._tier = tier or stage.label
        self.episode_validators = list(validators)
        self.stage.seed = self.config.seed
        self._kept = KeptEpisodes()

    @property
    def tier(self) -> str:
        """The stage's name in the store and the asset graph (its registered name in the pipeline YAML)."""
        return self._tier

    def output_path(self, key: str) -> str:
        return layout.custom_stage_path(self.tier, key)

    def work(self, staged: Path, key: str, *, source: Path, source_rel: str = "", **_: Any) -> CustomStageReport:
        rows = episode_rows(source, key=key, source=source_rel or str(source), rel=source_rel or str(source))
        out, events = run_stage_on_rows(self.stage, rows, self.config.batch_size)
        kept, findings = [], []
        for r in out:
            ok, found = validate_episode(self.episode_validators, r)
            findings += found
            if ok:
                kept.append(r)
            else:
                events.append(EpisodeEvent("quarantined", r["episode_id"], self.tier, "failed a blocking validator",
                                           [f.to_json() for f in found if f.severity == "error"]))
        if not kept:
            staged.write_bytes(b"")  # published nowhere: the check below fails and the file is quarantined
            frames = 0
        else:
            frames = write_store(source, staged, kept)
        self._kept.report = CustomStageReport(len(rows), len(kept), frames, events, findings)
        return self._kept.report

    def validators(self) -> list[OutputValidator]:
        return [self._kept, GxStoreFrames()]


def custom_stage_from(name: str, options: dict[str, Any]) -> PipelineStage:
    """A registered stage by name (a plugin's or robodata's), built with its options."""
    from robodata import plugins

    cls = plugins.get("stages", name)
    try:
        stage = cls(**options)
    except TypeError as err:
        raise PipelineError(f"stage {name!r}: bad options {options} ({err})") from err
    if not isinstance(stage, PipelineStage):
        raise PipelineError(f"stage {name!r} ({cls}) is not a robodata.PipelineStage")
    return stage
