"""Release history and roll back: every release kept, latest.json moved back (checked, atomic, pinned).

Real releases cut by ReleaseStage from real LeRobot shards in a store; the CLI's `robodata releases` and
`robodata rollback`; the policy tier's candidate records; the rollback recorded in Dagster.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from robodata import store_layout as layout
from robodata.config import LeRobotConfig
from robodata.lerobot import write_shard
from robodata.releases import (
    ReleaseError,
    list_policies,
    list_releases,
    read_latest,
    rollback,
    rollback_policy,
    unpin,
)
from robodata.stages.tiers import ReleaseStage
from robodata.storage import DataStore
from tests.test_lerobot import make_store

LR = LeRobotConfig(codec="libx264", crf=23)


def _shard(store: DataStore, key: str, episodes: int, tmp: Path) -> None:
    src = make_store(tmp / f"{key}.hdf5", episodes=episodes, frames=20, cameras=(("front", (32, 40, 3)),))
    write_shard(src, store.local_path(layout.shard_path(key)), video_codec="libx264", crf=23)


@pytest.fixture
def project(tmp_path):
    """A store with two shards and two releases cut from them: r1 = {a}, r2 = {a, b} (latest)."""
    home = tmp_path / "home"
    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({"home": str(home), "tiers": {"lerobot": {"codec": "libx264", "crf": 23}}}))
    store = DataStore(home / "store")
    _shard(store, "rec-a", 2, tmp_path)
    _shard(store, "rec-b", 1, tmp_path)
    stage = ReleaseStage(LR)
    r1 = stage.cut(store, ["rec-a"], {})
    r2 = stage.cut(store, ["rec-a", "rec-b"], {})
    assert r1.published and r2.published and r1.release != r2.release
    return {"store": store, "cfg": str(cfg_file), "r1": r1, "r2": r2, "stage": stage, "tmp": tmp_path}


def test_list_releases_reads_what_each_release_records(project):
    store, r1, r2 = project["store"], project["r1"], project["r2"]
    entries = list_releases(store)
    assert [e.release for e in entries] == [r2.release, r1.release]  # newest first
    new, old = entries
    assert new.latest and not new.pinned and not old.latest
    assert new.recordings == ["rec-a", "rec-b"] and old.recordings == ["rec-a"]
    assert set(new.upstream_versions) == {"rec-a", "rec-b"} and new.upstream_versions == r2.versions
    assert (new.episodes, new.frames) == (3, 60) and (old.episodes, old.frames) == (2, 40)
    assert all(e.checks_passed and e.format == "v3.0" and e.created.endswith("Z") for e in entries)
    assert new.created > old.created
    assert new.path == store.url(layout.release_path(r2.release))


def test_rollback_moves_latest_and_pins_it(project):
    store, r1, r2, stage = project["store"], project["r1"], project["r2"], project["stage"]
    res = rollback(store, r1.release[:6])  # an unambiguous prefix will do
    assert res.previous == r2.release and res.release.release == r1.release
    latest = read_latest(store)
    assert latest["release"] == r1.release and latest["pinned"] is True and latest["rolled_back_from"] == r2.release
    assert latest["path"] == store.url(layout.release_path(r1.release)) and latest["recordings"] == ["rec-a"]
    # The pointer was replaced in one step: nothing half-written beside it.
    assert sorted(store.listdir(layout.RELEASES)) == sorted([r1.release, r2.release, "latest.json"])
    by = {e.release: e for e in list_releases(store)}
    assert by[r1.release].latest and by[r1.release].pinned and not by[r2.release].latest
    # The nightly cut of the same inputs re-checks r2 but leaves latest where the rollback pinned it.
    again = stage.cut(store, ["rec-a", "rec-b"], {})
    assert again.release == r2.release and again.reused and not again.published and again.pinned_to == r1.release
    assert read_latest(store)["release"] == r1.release
    # Unpinned, the next cut moves latest on again.
    assert unpin(store)["pinned"] is False and read_latest(store)["release"] == r1.release
    again = stage.cut(store, ["rec-a", "rec-b"], {})
    assert again.published and again.pinned_to is None and read_latest(store)["release"] == r2.release


def test_rollback_refuses_unknown_quarantined_and_broken_releases(project):
    store, r1, r2 = project["store"], project["r1"], project["r2"]
    with pytest.raises(ReleaseError, match=rf"no release 'nope'.*{r2.release}"):
        rollback(store, "nope")
    # A release that failed its blocking checks is kept in quarantine (as a failed cut leaves it).
    bad_id = "0badc0ffee00"
    staged = project["tmp"] / "staged"
    shutil.copytree(store.local_path(layout.release_path(r1.release)), staged)
    store.quarantine(staged, layout.release_path(bad_id),
                     [{"check": "release_frames_contiguous_and_in_sync", "message": "NaN", "severity": "error"}])
    listed = {e.release: e for e in list_releases(store)}
    assert not listed[bad_id].checks_passed and not listed[bad_id].latest
    assert listed[bad_id].failed_checks == ["release_frames_contiguous_and_in_sync"]
    assert bad_id not in {e.release for e in list_releases(store, include_quarantined=False)}
    with pytest.raises(ReleaseError, match=rf"release {bad_id} failed release_frames_contiguous_and_in_sync"):
        rollback(store, bad_id)
    # A published release damaged since: its checks are run again, and fail; latest stays.
    info_file = store.local_path(f"{layout.release_path(r1.release)}/meta/info.json")
    info = json.loads(info_file.read_text())
    info["total_frames"] += 7
    info_file.write_text(json.dumps(info))
    with pytest.raises(ReleaseError, match=rf"release {r1.release} no longer passes its blocking checks"):
        rollback(store, r1.release)
    assert read_latest(store)["release"] == r2.release


def test_cli_releases_and_rollback(project, capsys):
    from robodata.cli import main

    r1, r2 = project["r1"], project["r2"]
    assert main(["--config", project["cfg"], "releases"]) == 0
    out = capsys.readouterr().out
    assert r1.release in out and r2.release in out and "rec-a, rec-b" in out
    assert main(["--config", project["cfg"], "releases", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["release"] for r in rows] == [r2.release, r1.release] and rows[0]["latest"] is True
    assert main(["--config", project["cfg"], "rollback", r1.release]) == 0
    out = capsys.readouterr().out
    assert f"{r2.release} -> {r1.release}" in out and "pinned" in out
    assert read_latest(project["store"])["release"] == r1.release
    assert main(["--config", project["cfg"], "rollback", "nope"]) == 2
    assert "no release 'nope'" in capsys.readouterr().err
    assert main(["--config", project["cfg"], "rollback", "--unpin"]) == 0
    assert read_latest(project["store"])["pinned"] is False


def _candidate(store: DataStore, run: str, checkpoint: Path | None, *, published: bool = True, loss: float = 0.5):
    rec = {"run": run, "engine": "lerobot", "checkpoint": str(checkpoint or ""), "release": "abc123",
           "recordings": ["rec-a"], "metrics": {"eval_action_mse": loss}, "eval": {"signature": "s"}}
    if published:
        with store.write_path(layout.policy_candidate_path(run)) as p:
            p.write_text(json.dumps(rec))
    else:
        staged = store.local_path("staged.json")
        staged.write_text(json.dumps(rec))
        store.quarantine(staged, layout.policy_candidate_path(run), [])
    return rec


def test_policy_rollback(tmp_path):
    store = DataStore(tmp_path / "store")
    ck_a, ck_b = tmp_path / "ck_a", tmp_path / "ck_b"
    ck_a.mkdir()
    ck_b.mkdir()
    _candidate(store, "run_a", ck_a, loss=0.4)
    b = _candidate(store, "run_b", ck_b, loss=0.3)
    _candidate(store, "run_worse", ck_b, published=False, loss=0.9)
    _candidate(store, "run_gone", tmp_path / "deleted")
    with store.write_path(layout.POLICY_LATEST) as p:
        p.write_text(json.dumps({**b, "mlflow_run_id": "m1", "model_version": "2"}))
    listed = {e.run: e for e in list_policies(store)}
    assert set(listed) == {"run_a", "run_b", "run_worse", "run_gone"}
    assert listed["run_b"].latest and not listed["run_a"].latest and not listed["run_worse"].checks_passed
    assert not listed["run_gone"].checkpoint_exists
    entry, previous = rollback_policy(store, "run_a")
    assert previous == "run_b" and entry.run == "run_a"
    promoted = json.loads(store.local_path(layout.POLICY_LATEST).read_text())
    assert promoted["run"] == "run_a" and promoted["checkpoint"] == str(ck_a) and promoted["rolled_back_from"] == "run_b"
    with pytest.raises(ReleaseError, match="run_worse failed its not-worse"):
        rollback_policy(store, "run_worse")
    with pytest.raises(ReleaseError, match="run_gone: its checkpoint .* is gone"):
        rollback_policy(store, "run_gone")
    with pytest.raises(ReleaseError, match="no policy run 'zzz'"):
        rollback_policy(store, "zzz")


@pytest.mark.slow
def test_rollback_is_recorded_on_the_asset_in_dagster(project, monkeypatch, capsys):
    """With the platform, `robodata rollback` reports an AssetObservation on lerobot_dataset."""
    import dagster as dg

    import robodata.cli as cli
    from robodata_dagster.release_events import record_release_event_for
    from tests.conftest import project_home

    real = cli.load_platform()

    class Platform:  # the platform object, with the hook the CLI calls after a rollback
        def __getattr__(self, name):
            return getattr(real, name)

        def record_release_event(self, cfg, event):
            record_release_event_for(cfg, event)

    monkeypatch.setattr(cli, "load_platform", lambda: Platform())
    r1, r2 = project["r1"], project["r2"]
    with project_home(Path(project["cfg"])) as (_cfg, instance, _defs):
        assert cli.main(["rollback", r1.release]) == 0
        recs = instance.fetch_observations(dg.AssetKey("lerobot_dataset"), limit=5).records
        assert len(recs) == 1
        obs = recs[0].asset_observation
        meta = {k: getattr(v, "value", v) for k, v in obs.metadata.items()}
        assert meta["action"] == "rollback" and meta["release"] == r1.release
        assert meta["previous_release"] == r2.release and meta["pinned"] is True
        assert meta["recordings"] == ["rec-a"] and obs.tags["robodata/action"] == "rollback"
    capsys.readouterr()


def test_a_shard_rewritten_while_a_release_is_cut_cannot_change_what_the_release_holds(tmp_path):
    """The race of a release cut during a shard rewrite: the release has read the shard's version (from the
    registry, in the platform), then the shard is rewritten with other content, then the release reads the
    files. Shard versions are content-addressed paths (``<key>@<digest>``), written once: the release reads
    the version it recorded, so version and content cannot disagree."""
    from robodata.lerobot.metadata import read_info
    from robodata.stages.tiers import LeRobotShardStage

    store = DataStore(tmp_path / "store")
    parts = {}
    for name, episodes in (("old", 1), ("new", 2)):
        src = make_store(tmp_path / f"{name}.hdf5", episodes=episodes, frames=20, cameras=(("front", (32, 40, 3)),))
        parts[name] = tmp_path / f"part-{name}"
        write_shard(src, parts[name], video_codec="libx264", crf=23)
    shard = LeRobotShardStage(LR)
    first, v1 = shard.run_versioned(store, "rec-a", parts=[parts["old"]])
    assert first.published and first.output == layout.shard_version_path("rec-a", v1)
    again, same = shard.run_versioned(store, "rec-a", parts=[parts["old"]])  # the same content: the same path
    assert same == v1 and again.url == first.url
    # versions read ... the shard rewritten (a new version, a new path; the old one untouched) ... files read
    second, v2 = shard.run_versioned(store, "rec-a", parts=[parts["new"]])
    assert v2 != v1 and second.output != first.output
    assert read_info(store.local_path(first.output))["total_episodes"] == 1
    rel = ReleaseStage(LR).cut(store, ["rec-a"], {"rec-a": v1}, {"rec-a": first.output})
    assert rel.published and rel.versions == {"rec-a": v1}
    assert rel.info["total_episodes"] == 1  # the content of the version it names, not the newer shard's
    later = ReleaseStage(LR).cut(store, ["rec-a"], {"rec-a": v2}, {"rec-a": second.output})
    assert later.release != rel.release and later.info["total_episodes"] == 2


def test_duplicate_episodes_are_excluded_by_policy_and_reported_with_their_twin(project):
    from robodata.config import QualityConfig

    store, tmp = project["store"], project["tmp"]
    _shard(store, "rec-a-again", 2, tmp)  # the same two demonstrations, exported again under another name
    stage = ReleaseStage(LR)
    stage.quality = QualityConfig(dedup={"policy": "exclude_exact"})
    rel = stage.cut(store, ["rec-a", "rec-a-again"], {})
    assert rel.published and rel.info["total_episodes"] == 2  # rec-a's two; their copies left out
    dups = stage.dedup_report.duplicates
    assert [(d.source, d.twin_source, d.kind, d.excluded) for d in dups] == [
        ("rec-a-again", "rec-a", "exact", True), ("rec-a-again", "rec-a", "exact", True)]
    assert "rec-a-again/episode_000000 | rec-a/episode_000000 | exact" in stage.dedup_report.to_markdown()


@pytest.mark.parametrize("on_drift", ["warn", "block"])
def test_drift_against_the_previous_release_warns_or_blocks(project, on_drift):
    import h5py

    from robodata.config import QualityConfig

    store, tmp, r2 = project["store"], project["tmp"], project["r2"]
    # The reference's recordings (2 + 1 episodes: the same mix of episodes, images and lengths) recorded again,
    # except that the first joint reads 3 rad higher (a calibration offset).
    keys = []
    for name, episodes in (("a", 2), ("b", 1)):
        src = make_store(tmp / f"drifted-{on_drift}-{name}.hdf5", episodes=episodes, frames=20,
                         cameras=(("front", (32, 40, 3)),))
        with h5py.File(src, "r+") as f:
            for demo in range(episodes):
                f[f"data/demo_{demo}/obs/joint_pos"][:, 0] += 3.0
        keys.append(f"drifted-{on_drift}-{name}")
        write_shard(src, store.local_path(layout.shard_path(keys[-1])), video_codec="libx264", crf=23)
    stage = ReleaseStage(LR)
    stage.quality = QualityConfig(drift={"on_drift": on_drift})
    rel = stage.cut(store, keys, {})
    drift = next(c for c in rel.checks if c.name == "release_drift")
    assert not drift.passed and drift.metadata["reference_release"] == r2.release
    assert drift.metadata["drifted_features"] == ["observation.state[joint_pos_0]"]  # that joint, nothing else
    assert drift.blocking == (on_drift == "block")
    assert rel.published == (on_drift == "warn")  # a blocking drift keeps the previous release latest
    assert (read_latest(store)["release"] == r2.release) == (on_drift == "block")


def test_release_dedup_signs_each_shard_version_once_and_keeps_finding_twins(tmp_path, monkeypatch):
    """Cuts 1..4, each with a new recording: every episode is signed (its video decoded) once, when a cut first
    takes its shard version; the copies are still found and excluded with their twin; a twin dropped from the
    release counts as long as an earlier published release held it; a recording's rewritten shard is not a
    copy of its old version."""
    from collections import Counter

    import h5py

    import robodata.dedup as dd
    from robodata.config import QualityConfig

    signed: Counter[tuple[str, str]] = Counter()
    compute = dd.EpisodeSignature.compute.__func__

    def counting(cls, episode_id, source, *args, **kwargs):
        signed[(source, episode_id)] += 1
        return compute(cls, episode_id, source, *args, **kwargs)

    monkeypatch.setattr(dd.EpisodeSignature, "compute", classmethod(counting))
    store = DataStore(tmp_path / "store")

    def recording(key: str, offset: float, episodes: int = 2) -> None:
        src = make_store(tmp_path / f"{key}.hdf5", episodes=episodes, frames=20, cameras=(("front", (32, 40, 3)),))
        with h5py.File(src, "r+") as f:  # another demonstration: the joints elsewhere
            for demo in range(episodes):
                f[f"data/demo_{demo}/obs/joint_pos"][:] += offset
        write_shard(src, store.local_path(layout.shard_path(key)), video_codec="libx264", crf=23)

    def cut(keys: list[str]):
        stage = ReleaseStage(LR)
        stage.quality = QualityConfig(dedup={"policy": "exclude_exact"})
        signed.clear()
        return stage, stage.cut(store, keys, {})

    recording("rec-0", 0.0)
    _stage, r1 = cut(["rec-0"])
    assert r1.published and sum(signed.values()) == 2
    recording("rec-1", 5.0)
    _stage, r2 = cut(["rec-0", "rec-1"])
    assert r2.published and set(signed) == {(f"rec-1@{r2.versions['rec-1']}", f"episode_{i:06d}") for i in (0, 1)}
    recording("rec-0-again", 0.0)  # rec-0's demonstrations exported again under another name
    stage, r3 = cut(["rec-0", "rec-0-again", "rec-1"])
    assert set(signed.values()) == {1} and {s.split("@")[0] for s, _ in signed} == {"rec-0-again"}
    assert r3.published and r3.info["total_episodes"] == 4  # rec-0's and rec-1's; the copies left out
    assert [(d.source, d.episode_id, d.twin_source, d.twin_id, d.kind, d.excluded)
            for d in stage.dedup_report.duplicates] == [
        ("rec-0-again", f"episode_{i:06d}", "rec-0", f"episode_{i:06d}", "exact", True) for i in (0, 1)]
    assert stage.dedup_report.checked == 6
    assert [p.name for p in store.local_path("lerobot").glob("dedup-*.sqlite")]  # the index persists in the store
    # rec-0 left out of the next release: its copies still duplicate what an earlier release published
    stage, r4 = cut(["rec-0-again", "rec-1"])
    assert not signed and r4.info["total_episodes"] == 2
    assert [(d.source, d.twin_source, d.excluded) for d in stage.dedup_report.duplicates] == [
        ("rec-0-again", f"rec-0@{r1.versions['rec-0']}", True)] * 2
    # rec-1 rewritten (a third episode): the new version is signed once; its old version is not its twin
    recording("rec-1", 5.0, episodes=3)
    stage, r5 = cut(["rec-0", "rec-1"])
    assert sum(signed.values()) == 3 and r5.versions["rec-1"] != r2.versions["rec-1"]
    assert stage.dedup_report.duplicates == [] and r5.info["total_episodes"] == 5


def test_a_release_carries_action_normalisation_fitted_once_over_its_published_episodes(tmp_path):
    """``tiers.lerobot.action_normalization``: the statistics are fitted over the release's episodes after dedup
    left the copies out (what a policy trains on), stored with the release, named as info.json names them."""
    import numpy as np
    import pyarrow.parquet as pq

    from robodata.config import QualityConfig
    from robodata.robot.actions import ActionNormalizer

    store = DataStore(tmp_path / "store")
    _shard(store, "rec-a", 2, tmp_path)
    _shard(store, "rec-a-again", 2, tmp_path)  # copies: left out, so not in the statistics
    stage = ReleaseStage(LR.model_copy(update={"action_normalization": "min_max"}))
    stage.quality = QualityConfig(dedup={"policy": "exclude_exact"})
    rel = stage.cut(store, ["rec-a", "rec-a-again"], {})
    assert rel.published and rel.info["total_episodes"] == 2
    root = store.local_path(layout.release_path(rel.release))
    norm = ActionNormalizer.load(root)
    assert norm.mode == "min_max" and norm.names == rel.info["features"]["action"]["names"]
    assert int(norm.stats["count"][0]) == rel.info["total_frames"] == 40
    actions = np.concatenate([np.stack(pq.read_table(f, columns=["action"]).column("action").to_pylist())
                              for f in sorted((root / "data").rglob("*.parquet"))])
    assert np.allclose(norm.stats["min"], actions.min(0)) and np.allclose(norm.stats["max"], actions.max(0))
    assert np.abs(norm.apply(actions)).max() <= 1.0 + 1e-6
    recorded = json.loads((root / "meta/robodata_release.json").read_text())["action_normalization"]
    assert recorded["mode"] == "min_max" and recorded["frames"] == 40
    plain = ReleaseStage(LR).cut(store, ["rec-a", "rec-a-again"], {})  # not asked for: another release, no file
    assert plain.release != rel.release
    assert not (store.local_path(layout.release_path(plain.release)) / "meta/robodata_action_norm.json").exists()
