"""Users' pipeline stages (a plugin's or robodata's) as assets: one per stage, per recording, with lineage.

The project config's ``pipeline:`` names a pipeline YAML (the one ``robodata run`` executes); each of its
``stages`` becomes an asset between the recording tiers and ``lerobot_episodes``, in order, and its
``validators`` run on every stage's episodes (blocking errors keep an episode out, reported in the checks).
"""


from collections.abc import Sequence
from typing import Any

import dagster as dg

from robodata import store_layout as layout
from robodata.config import ProjectConfig
from robodata.errors import RobodataError
from robodata.registry import PUBLISHED, QUARANTINED
from robodata.stages.custom import CustomStage, CustomStageConfig, custom_stage_from
from robodata_dagster.assets.automation import FOLLOW_UPSTREAM
from robodata_dagster.assets.checks import check_specs
from robodata_dagster.assets.partitions import (
    Result,
    Todo,
    downstream_tier,
    every_recording_spec,
    failures_classified,
    fleet_partitions,
    retry_policy,
)
from robodata_dagster.assets.versions import custom_stage_version, digest
from robodata_dagster.resources.project import ProjectResource

RESERVED = {"raw_teleop", "synthetic_demos", "augmented_videos", "lerobot_episodes", "lerobot_dataset",
            "policy_checkpoint"}


def stage_tier(name: str) -> str:
    """Where a pipeline stage's asset keeps its episodes in the store (``stages/<name>``)."""
    return f"{layout.CUSTOM_STAGES}/{name}"


def _build(name: str, options: dict[str, Any], upstream: str, source_tier: str, validators: Sequence[Any],
           batch_size: int, seed: int, code_version: str, cfg: ProjectConfig) -> dg.AssetsDefinition:
    custom_stage_from(name, options)  # fail at load time, naming the stage, if it cannot be built

    specs = [*check_specs(name, CustomStage.checks), every_recording_spec(name)]

    @dg.asset(
        name=name,
        partitions_def=fleet_partitions(cfg),
        deps=[dg.AssetDep(upstream)],
        group_name="pipeline_stages",
        kinds={"python", "hdf5"},
        code_version=code_version,
        automation_condition=FOLLOW_UPSTREAM,
        check_specs=specs,
        retry_policy=retry_policy(cfg),
        description=f"The pipeline stage {name!r} ({options or 'no options'}) over each recording's episodes.",
    )
    def custom_stage(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
        with failures_classified(context, f"{name} partition {context.partition_key}"):
            store = project.store()
            stage = CustomStage(custom_stage_from(name, options), validators,
                                CustomStageConfig(batch_size=batch_size, seed=seed), tier=name)
        totals = {"episodes_in": 0, "episodes_out": 0, "frames": 0}
        lists: dict[str, list] = {"dropped": [], "failed": [], "quarantined": []}

        def make(t: Todo) -> Result:
            key = t.rec.key
            src_rel = layout.tier_episodes_path(source_tier, key)
            if not store.exists(src_rel):
                raise RobodataError(f"no {upstream} episodes at {store.url(src_rel)} (materialize {upstream} first)")
            with store.read_path(src_rel) as src:
                outcome = stage.run(store, key, source=src, source_rel=src_rel)
            rep = outcome.report
            totals["episodes_in"] += rep.episodes_in
            totals["episodes_out"] += rep.episodes_out
            totals["frames"] += rep.frames_out
            for kind, items in lists.items():
                items.extend(rep.of_kind(kind))
            return Result(key, PUBLISHED if outcome.published else QUARANTINED,
                          version=digest(t.input_version, rep.episodes_in, rep.episodes_out, rep.frames_out,
                                         outcome.published),
                          checks=outcome.checks, path=outcome.url or outcome.quarantined or "",
                          summary={"episodes_out": rep.episodes_out})

        return downstream_tier(
            context, project, name, upstream, code_version, specs, make,
            lambda made: {"source_tier": source_tier, **totals,
                          **{k: dg.MetadataValue.json(v) for k, v in lists.items()}})

    return custom_stage


def build_custom_stage_assets(spec: Any, upstream: str = layout.AUGMENTED_VIDEOS,
                              cfg: ProjectConfig | None = None) -> list[dg.AssetsDefinition]:
    """One asset per stage of the pipeline spec, chained after ``upstream`` (the last enabled recording tier,
    whose store tier has the same name); [] without a spec. Each stage reads exactly the one before it."""
    if spec is None:
        return []
    from robodata import plugins

    validators = [plugins.get("validators", v.type)(**v.options) for v in spec.validators]
    validator_specs = [v.model_dump(mode="json") for v in spec.validators]
    out: list[dg.AssetsDefinition] = []
    prev, tier = upstream, upstream
    for comp in spec.stages:
        if comp.type in RESERVED or comp.type in {a.key.path[-1] for a in out}:
            from robodata.api.errors import PipelineError

            raise PipelineError(f"pipeline stage {comp.type!r}: the asset graph already has an asset of that name")
        version = custom_stage_version(comp.type, comp.options, validator_specs, spec.batch_size, spec.seed)
        out.append(_build(comp.type, comp.options, prev, tier, validators, spec.batch_size, spec.seed, version,
                          cfg or ProjectConfig()))
        prev, tier = comp.type, stage_tier(comp.type)
    return out
