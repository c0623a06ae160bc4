"""Users' pipeline stages (a plugin's or robodata's) as assets: one per stage, per recording, with lineage.

The project config's ``pipeline:`` names a pipeline YAML (the one ``robodata run`` executes); each of its
``stages`` becomes an asset between the recording tiers and ``lerobot_episodes``, in order, and its
``validators`` run on every stage's episodes (blocking errors keep an episode out, reported in the checks).
"""


from collections.abc import Sequence
from typing import Any

import dagster as dg

from robodata import store_layout as layout
from robodata.stages.custom import CustomStage, CustomStageConfig, KeptEpisodes, custom_stage_from
from robodata_dagster.assets.checks import check_result
from robodata_dagster.assets.partitions import recordings_partitions
from robodata_dagster.resources.project import ProjectResource

# The recording tiers the first custom stage reads, most processed first.
RECORDING_TIERS = (layout.AUGMENTED_VIDEOS, layout.SYNTHETIC_DEMOS, layout.RAW_TELEOP)
RESERVED = {"raw_teleop", "synthetic_demos", "augmented_videos", "lerobot_episodes", "lerobot_dataset",
            "policy_checkpoint"}


def _build(name: str, options: dict[str, Any], upstream: str, source_tiers: Sequence[str],
           validators: Sequence[Any], batch_size: int, seed: int) -> dg.AssetsDefinition:
    custom_stage_from(name, options)  # fail at load time, naming the stage, if it cannot be built

    @dg.asset(
        name=name,
        partitions_def=recordings_partitions,
        deps=[dg.AssetDep(upstream)],
        group_name="pipeline_stages",
        kinds={"python", "hdf5"},
        code_version=f"{name}:{sorted(options.items())}",
        automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
        check_specs=[dg.AssetCheckSpec(KeptEpisodes.name, asset=name, blocking=True,
                                       description=KeptEpisodes.description)],
        description=f"The pipeline stage {name!r} ({options or 'no options'}) over one recording's episodes.",
    )
    def custom_stage(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
        store = project.store()
        key = context.partition_key
        try:
            tier, src_rel = layout.latest_episodes(store.exists, key, source_tiers)
        except LookupError as err:
            raise dg.Failure(str(err), allow_retries=False) from err
        stage = CustomStage(custom_stage_from(name, options), validators,
                            CustomStageConfig(batch_size=batch_size, seed=seed), tier=name)
        with store.read_path(src_rel) as src:
            outcome = stage.run(store, key, source=src, source_rel=src_rel)
        rep = outcome.report
        return dg.MaterializeResult(
            metadata={
                "source_tier": tier,
                "episodes_in": rep.episodes_in,
                "episodes_out": rep.episodes_out,
                "frames": rep.frames_out,
                "dropped": dg.MetadataValue.json(rep.of_kind("dropped")),
                "failed": dg.MetadataValue.json(rep.of_kind("failed")),
                "quarantined": dg.MetadataValue.json(rep.of_kind("quarantined")),
                "published": outcome.published,
                "path": dg.MetadataValue.path(outcome.url or outcome.quarantined),
            },
            check_results=[check_result(c) for c in outcome.checks],
        )

    return custom_stage


def build_custom_stage_assets(spec: Any, upstream: str = layout.AUGMENTED_VIDEOS) -> list[dg.AssetsDefinition]:
    """One asset per stage of the pipeline spec, chained after ``upstream``; [] without a spec."""
    if spec is None:
        return []
    from robodata import plugins

    validators = [plugins.get("validators", v.type)(**v.options) for v in spec.validators]
    out: list[dg.AssetsDefinition] = []
    prev, tiers = upstream, RECORDING_TIERS
    for comp in spec.stages:
        if comp.type in RESERVED or comp.type in {a.key.path[-1] for a in out}:
            from robodata.api.errors import PipelineError

            raise PipelineError(f"pipeline stage {comp.type!r}: the asset graph already has an asset of that name")
        out.append(_build(comp.type, comp.options, prev, tiers, validators, spec.batch_size, spec.seed))
        prev, tiers = comp.type, (f"{layout.CUSTOM_STAGES}/{comp.type}",)
    return out


def source_tiers_after(spec: Any) -> tuple[str, ...]:
    """Where lerobot_episodes reads: the last custom stage's output, or the most processed recording tier."""
    if spec is not None and spec.stages:
        return (f"{layout.CUSTOM_STAGES}/{spec.stages[-1].type}",)
    return RECORDING_TIERS
