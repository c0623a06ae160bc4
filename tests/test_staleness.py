"""The asset graph as a platform: code versions from the config mark exactly the affected partitions stale,
the graph's shape follows the config (disabled tiers are not in it), and automation is on by default."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from robodata.config import ProjectConfig
from tests.conftest import project_home, registered_partition
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

NO_MIMICGEN_NO_AUGMENT = {"synthetic_demos": {"enabled": False}, "augmented_videos": {"enabled": False}}


def _config(tiers: dict | None = None, **top) -> ProjectConfig:
    return ProjectConfig.model_validate({"tiers": tiers or {}, **top})


def _graph(cfg: ProjectConfig):
    from robodata_dagster.definitions import build_definitions

    defs = build_definitions(cfg)
    return defs, defs.resolve_asset_graph()


def _parents(graph, asset: str) -> list[str]:
    return sorted(k.to_user_string() for k in graph.get(dg.AssetKey(asset)).parent_keys)


def _code_versions(cfg: ProjectConfig) -> dict[str, str | None]:
    _, graph = _graph(cfg)
    return {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}


# ---- the graph's shape follows the config (no materialization) ------------------------------------------------


def test_disabled_tiers_are_not_in_the_graph_and_downstream_follows_the_last_enabled_one():
    defs, graph = _graph(_config(NO_MIMICGEN_NO_AUGMENT))
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert "synthetic_demos" not in keys and "augmented_videos" not in keys
    assert _parents(graph, "lerobot_episodes") == ["raw_teleop"]
    jobs = {j.name for j in defs.jobs}
    assert "generate_synthetic_demos" not in jobs and "augment_videos" not in jobs
    assert {"ingest_recordings", "write_lerobot_episodes", "process_recordings", "cut_release"} <= jobs

    _, graph = _graph(_config({"synthetic_demos": {"enabled": False}}))
    assert _parents(graph, "augmented_videos") == ["raw_teleop"]
    assert _parents(graph, "lerobot_episodes") == ["augmented_videos"]

    _, graph = _graph(_config({"augmented_videos": {"enabled": False}}))
    assert "augmented_videos" not in {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert _parents(graph, "lerobot_episodes") == ["synthetic_demos"]

    _, graph = _graph(_config())
    assert _parents(graph, "synthetic_demos") == ["raw_teleop"]
    assert _parents(graph, "augmented_videos") == ["synthetic_demos"]
    assert _parents(graph, "lerobot_episodes") == ["augmented_videos"]


def test_every_asset_has_a_code_version_that_follows_only_the_settings_shaping_it(tmp_path):
    base = _code_versions(_config())
    assert all(base.values()), base

    def changed(cfg: ProjectConfig) -> set[str]:
        now = _code_versions(cfg)
        return {k for k in base if now[k] != base[k]}

    assert changed(_config({"lerobot": {"crf": 20}})) == {"lerobot_episodes"}
    assert changed(_config({"lerobot": {"version": "v2.1"}})) == {"lerobot_dataset"}
    assert changed(_config({"lerobot": {"repo_id": "lab/pouring"}})) == {"lerobot_dataset"}
    assert changed(_config({"raw_teleop": {"rate_tolerance": 0.2}})) == {"raw_teleop"}
    assert changed(_config({"synthetic_demos": {"demos_per_source": 3}})) == {"synthetic_demos"}
    assert changed(_config({"synthetic_demos": {"engine": "isaaclab"}})) == {"synthetic_demos"}
    assert changed(_config({"augmented_videos": {"variants": 2}})) == {"augmented_videos"}
    assert changed(_config({"policy": {"max_steps": 300}})) == {"policy_checkpoint"}
    (tmp_path / "map.yaml").write_text(json.dumps(SMALL_TOPIC_MAP))
    assert changed(_config(sources=[{"pattern": "*.mcap", "topic_map": str(tmp_path / "map.yaml")}])) == {"raw_teleop"}
    # where or how a tier runs, and the settings of an engine that is not chosen, change nothing
    assert changed(_config({
        "synthetic_demos": {"max_partitions_per_run": 3, "isaaclab": {"num_envs": 64, "launcher": "k8s"}},
        "augmented_videos": {"local": {"device": "cpu", "batch_frames": 8}, "cosmos": {"guidance": 7.0}},
        "policy": {"launcher": "k8s", "tracking": {"experiment": "other"}, "num_workers": 2},
    }, num_gpus=1, ray={"num_cpus": 3})) == set()
    # with Isaac Lab Mimic chosen, its settings count, its launcher still does not
    isaac = _code_versions(_config({"synthetic_demos": {"engine": "isaaclab"}}))["synthetic_demos"]
    assert _code_versions(_config({"synthetic_demos": {"engine": "isaaclab", "isaaclab": {"launcher": "k8s"}}}))[
        "synthetic_demos"] == isaac
    assert _code_versions(_config({"synthetic_demos": {"engine": "isaaclab", "isaaclab": {"num_envs": 64}}}))[
        "synthetic_demos"] != isaac


def test_the_automation_sensor_is_there_and_running_by_default():
    from robodata_dagster.assets.automation import AUTOMATION_SENSOR

    defs, graph = _graph(_config())
    sensor = defs.resolve_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.asset_selection.resolve(graph) == graph.get_all_asset_keys()
    # every tier after raw_teleop is automated (raw_teleop follows the landing zone's sensor)
    automated = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert automated == {"synthetic_demos", "augmented_videos", "lerobot_episodes", "lerobot_dataset",
                         "policy_checkpoint"}


# ---- through a real Dagster instance ------------------------------------------------------------------------


def _write_project(home: Path, *, crf: int = 23, task_b: str = "wave") -> Path:
    """Two sources with their own topic maps (a_*.mcap, b_*.mcap); MimicGen and augmentation off."""
    for name, task in (("a", "wave"), ("b", task_b)):
        (home / f"map_{name}.yaml").write_text(json.dumps({**SMALL_TOPIC_MAP, "task": task}))
    cfg_file = home / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(home / "proj"),
        "sources": [{"pattern": "a_*.mcap", "topic_map": "map_a.yaml"},
                    {"pattern": "b_*.mcap", "topic_map": "map_b.yaml"}],
        "ray": {"num_cpus": 2},
        "tiers": {"lerobot": {"codec": "libx264", "crf": crf}, **NO_MIMICGEN_NO_AUGMENT},
    }))
    return cfg_file


def _ingest_new(tmp: Path, names: list[str]) -> dict[str, str]:
    """Land ``names`` (small MCAPs), each as the only recording of its robot (robot-<name>) today, register
    them and ingest them (``robodata ingest``'s path); their robot x day partitions."""
    from robodata_dagster.runs import register_and_ingest

    keys = {}
    for i, name in enumerate(names):  # different bytes: the same bytes under another name are one recording
        out = register_and_ingest(make_mcap(tmp / f"{name}.mcap", 40 + 5 * i), under=f"robot-{name}")
        assert out.success, out.error
        keys[name] = out.partition
    return keys


def _run(instance, defs, job: str, keys: list[str]):
    from robodata_dagster.runs import run_partitions

    outcomes = run_partitions(instance, defs, job, keys)
    assert all(o.success for o in outcomes), [(o.partition, o.error) for o in outcomes]
    return outcomes


def _staleness(instance, defs):
    """(status, causes) of an asset partition, as the UI computes them."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.loader import LoadingContextForTest

    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))

    def of(asset: str, key: str):
        ak = dg.AssetKey(asset)
        return resolver.get_status(ak, key), {c.category for c in resolver.get_stale_causes(ak, key)}

    return of


def _rebuild():
    from robodata.config import load_config
    from robodata_dagster.definitions import build_definitions

    return build_definitions(load_config())


@pytest.mark.slow
def test_a_topic_map_or_tier_change_marks_exactly_the_affected_partitions_stale(tmp_path):
    from dagster._core.definitions.data_version import StaleCauseCategory as Cause
    from dagster._core.definitions.data_version import StaleStatus as S

    cfg_file = _write_project(tmp_path)
    with project_home(cfg_file) as (cfg, instance, defs):
        keys = _ingest_new(tmp_path, ["a_rec", "b_rec"])
        a, b = keys["a_rec"], keys["b_rec"]
        shards = _run(instance, defs, "write_lerobot_episodes", [a, b])
        assert {o.metadata["source_tier"] for o in shards} == {"raw_teleop"}
        of = _staleness(instance, defs)
        for asset in ("raw_teleop", "lerobot_episodes"):
            for k in (a, b):
                assert of(asset, k) == (S.FRESH, set()), (asset, k)
        tick = dg.evaluate_automation_conditions(defs, instance)

        # b's topic map changes: raw_teleop's code version changes, its partitions are stale (CODE); the
        # shards are fresh until raw_teleop has new data.
        _write_project(tmp_path, task_b="wave twice")
        defs = _rebuild()
        of = _staleness(instance, defs)
        for k in (a, b):
            assert of("raw_teleop", k) == (S.STALE, {Cause.CODE})
            assert of("lerobot_episodes", k) == (S.FRESH, set())

        # materialize the stale partitions: only b's data changed, so only b's shard is stale (DATA) and only
        # b's shard is what automation asks for
        _run(instance, defs, "ingest_recordings", [a, b])
        of = _staleness(instance, defs)
        assert of("raw_teleop", a) == of("raw_teleop", b) == (S.FRESH, set())
        assert of("lerobot_episodes", a) == (S.FRESH, set())
        assert of("lerobot_episodes", b) == (S.STALE, {Cause.DATA})
        tick = dg.evaluate_automation_conditions(defs, instance, cursor=tick.cursor)
        assert tick.get_requested_partitions(dg.AssetKey("lerobot_episodes")) == {b}
        shard = _run(instance, defs, "write_lerobot_episodes", [b])[0]
        assert shard.metadata["tasks"] == ["wave twice"]
        of = _staleness(instance, defs)
        assert of("lerobot_episodes", b) == (S.FRESH, set())

        # a shard setting changes: the shards are stale (CODE), raw_teleop is not; materializing them makes
        # them fresh again
        _write_project(tmp_path, task_b="wave twice", crf=28)
        defs = _rebuild()
        of = _staleness(instance, defs)
        for k in (a, b):
            assert of("raw_teleop", k) == (S.FRESH, set())
            assert of("lerobot_episodes", k) == (S.STALE, {Cause.CODE})
        _run(instance, defs, "write_lerobot_episodes", [a, b])
        of = _staleness(instance, defs)
        for k in (a, b):
            assert of("lerobot_episodes", k) == (S.FRESH, set())


@pytest.mark.slow
def test_without_mimicgen_and_augmentation_the_shards_follow_raw_teleop(tmp_path):
    cfg_file = _write_project(tmp_path)
    with project_home(cfg_file) as (cfg, instance, defs):
        graph = defs.resolve_asset_graph()
        assert {"synthetic_demos", "augmented_videos"}.isdisjoint(k.to_user_string() for k in graph.get_all_asset_keys())
        assert _parents(graph, "lerobot_episodes") == ["raw_teleop"]
        # the one upstream tier is read, and its absence is a clear error naming the path
        from robodata_dagster.runs import run_partitions

        # a partition with no recording: nothing to start from, said so
        instance.add_dynamic_partitions("robots", ["nobody"])
        empty = run_partitions(instance, defs, "write_lerobot_episodes", ["2026-12-01|nobody"])[0]
        assert not empty.success and "no recording here has a published upstream output" in empty.error
        # the registry says raw_teleop published it, the file is not there
        part = registered_partition(instance, cfg.registry_url, "never-ingested-0badf00d")
        missing = run_partitions(instance, defs, "write_lerobot_episodes", [part])[0]
        assert not missing.success
        assert "raw_teleop/never-ingested-0badf00d.hdf5" in missing.error, missing.error
        assert "materialize raw_teleop first" in missing.error

        part = _ingest_new(tmp_path, ["a_rec"])["a_rec"]
        shard = _run(instance, defs, "write_lerobot_episodes", [part])[0]
        assert shard.metadata["source_tier"] == "raw_teleop" and shard.metadata["episodes"] >= 1
        from robodata.registry import Registry

        (key,) = [r.key for r in Registry(cfg.registry_url).in_partition(part)]
        shard = Registry(cfg.registry_url).outputs("lerobot_episodes", [key])[key]
        assert shard.path.endswith(f"lerobot/episodes/{key}@{shard.version}")  # content-addressed
        assert (Path(shard.path) / "meta/info.json").exists()
