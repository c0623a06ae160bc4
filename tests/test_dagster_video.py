"""video_clips and mixed_release through a real Dagster instance and Ray: two video sources (web clips with a
caption and a bad file; generated clips with Cosmos sidecar provenance and a planted copy of a web clip), a robot
release cut by lerobot_dataset, the mixed release read back by lerobot; the graph without video sources.

One project home for the module; the scans and the mixed release are module fixtures (made once, by whichever
test asks first), so that each test runs alone and in any order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from robodata.config import DEFAULTS_FILE, ConfigError, load_config
from tests.conftest import project_home, registered_partition
from tests.test_mix import scene
from tests.test_video_corpus import encode

HW = (96, 128)  # the corpus's minimum resolution (min_width 128, min_height 96): accepted
WEIGHTS = {"teleop": 0.5, "internet": 0.3, "generated": 0.2}


def _clips(root: Path) -> dict[str, Path]:
    """internet/: two good clips (one captioned) and a file that is no video; dreams/: a Cosmos output with its
    sidecar provenance and a re-encode of the first web clip (a copy across sources); uploads/: empty for now."""
    web, dreams = root / "clips" / "internet", root / "dreams"
    wave = scene(1, 45, HW)
    encode(web / "wave.mp4", wave)
    (web / "wave.txt").write_text("wave at the camera\n")
    encode(web / "door.mp4", scene(2, 45, HW))
    (web / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom truncated download")
    encode(dreams / "d0.mp4", scene(3, 40, HW))
    (dreams / "d0.json").write_text(json.dumps({
        "source_demo": "demo_0", "camera": "front", "seed": 3, "engine": "cosmos-transfer-2.5",
        "control_video": "demo_0/front.edge.mp4", "caption": "a robot stacks cubes"}))
    encode(dreams / "wave_copy.mp4", wave, crf=32)  # the same scene, re-encoded at another quality
    (root / "uploads").mkdir()
    return {"internet": web, "dreams": dreams, "uploads": root / "uploads"}


def _config(root: Path, **extra) -> dict:
    return {
        "home": str(root / "proj"),
        "ray": {"num_cpus": 2},
        "tiers": {"lerobot": {"codec": "libx264", "crf": 23}, "synthetic_demos": {"enabled": False},
                  "augmented_videos": {"enabled": False}},
        "video": {
            "sources": [{"name": "internet", "url": "clips/internet"},  # relative: to the config file's folder
                        {"name": "dreams", "url": str(root / "dreams"), "layer": "generated"},
                        {"name": "uploads", "url": str(root / "uploads")}],
            "episodes": {"fps": 30, "width": 64, "height": 48, "codec": "libx264", "crf": 23},
        },
        "mix": {"weights": WEIGHTS},
        **extra,
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The project, its clips, and a robot release cut by lerobot_dataset (one recording's shard, 2 episodes)."""
    from robodata.storage import DataStore
    from robodata_dagster.runs import run_partitions
    from tests.test_releases import _shard

    root = tmp_path_factory.mktemp("videohome")
    clips = _clips(root)
    cfg_file = root / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump(_config(root)))
    with project_home(cfg_file) as (cfg, instance, defs):
        store = DataStore(cfg.storage_url)
        _shard(store, "rec-a", 2, root)
        registered_partition(instance, cfg.registry_url, "rec-a", tiers=("raw_teleop", "lerobot_episodes"))
        robot = run_partitions(instance, defs, "cut_release", [""])[0]
        assert robot.success, robot.error
        yield {"cfg": cfg, "instance": instance, "defs": defs, "root": root, "clips": clips, "store": store,
               "robot": robot}


def _scan(project, *sources: str):
    from robodata_dagster.runs import run_partitions

    return {o.partition: o for o in run_partitions(project["instance"], project["defs"], "scan_videos", list(sources))}


@pytest.fixture(scope="module")
def scanned(project) -> dict:
    """internet, then dreams (so the copy in dreams is the one dropped)."""
    return _scan(project, "internet", "dreams")


@pytest.fixture(scope="module")
def mixed(project, scanned) -> dict:
    """The mixed release cut, then cut again with nothing new (file times taken in between)."""
    from robodata_dagster.runs import run_partitions

    first = run_partitions(project["instance"], project["defs"], "cut_mixed_release", [""])[0]
    assert first.success, first.error
    root = Path(first.metadata["path"])
    times = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    second = run_partitions(project["instance"], project["defs"], "cut_mixed_release", [""])[0]
    return {"first": first, "second": second, "root": root, "times": times}


def _manifest(project, source: str) -> dict:
    return json.loads((Path(project["cfg"].storage_url) / "video" / source / "shots.json").read_text())


def _materialization(project, asset: str, partition: str | None = None):
    import dagster as dg

    flt = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
    (rec,) = project["instance"].fetch_materializations(flt, limit=1).records
    return rec.asset_materialization


def _check_evaluations(project, run_id: str) -> dict:
    import dagster as dg

    out = {}
    for ev in project["instance"].all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        e = ev.dagster_event.event_specific_data
        out[e.check_name] = e
    return out


def _clip_id(folder: Path, name: str, index: int = 0) -> str:
    return f"{(folder / name).resolve()}#{index}"


@pytest.mark.slow
def test_partitions_are_the_source_names_and_the_mix_follows_every_source(project):
    import dagster as dg

    defs = project["defs"]
    clips = defs.get_assets_def("video_clips")
    assert clips.partitions_def.get_partition_keys() == ["internet", "dreams", "uploads"]
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("mixed_release")).parent_keys}
    assert parents == {"lerobot_dataset", "video_clips"}
    assert {c.name: c.blocking for c in clips.check_specs} == {"clips_readable": False, "shots_accepted": True,
                                                               "gx_shots_valid": True}
    mix = defs.get_assets_def("mixed_release")
    assert {c.name: c.blocking for c in mix.check_specs} == {"mixture_has_every_layer": True,
                                                             "mixed_frames_contiguous_and_in_sync": True}
    assert defs.resolve_job_def("scan_videos") and defs.resolve_job_def("cut_mixed_release")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_scan_publishes_the_manifest_and_shows_it_in_the_ui(project, scanned):
    web = project["clips"]["internet"]
    out = scanned["internet"]
    assert out.success, out.error  # the unreadable file is a warning, not a failure
    assert out.checks == {"clips_readable": False, "shots_accepted": True, "gx_shots_valid": True}
    m = _manifest(project, "internet")
    assert m["url"] == str(web.resolve()) and m["layer"] == "internet" and m["source"] == "internet"
    assert sorted(s["clip"] + "#0" for s in m["shots"]) == sorted(
        [_clip_id(web, "door.mp4"), _clip_id(web, "wave.mp4")])
    wave = next(s for s in m["shots"] if s["clip"].endswith("wave.mp4"))
    assert wave["caption"] == "wave at the camera" and (wave["width"], wave["height"], wave["end_frame"]) == (128, 96, 45)
    assert wave["provenance"]["video_source"] == "internet" and wave["provenance"]["kind"] == "video"
    assert [(Path(f["path"]).name, f["problem"].split(":")[0]) for f in m["findings"]] == [("broken.mp4", "truncated")]
    assert m["counts"]["accepted"] == 2 and m["corpus_config_version"]

    mat = _materialization(project, "video_clips", "internet")
    meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    assert (meta["clips"], meta["accepted_shots"], meta["layer"], meta["unusable_files"]) == (2, 2, "internet", 1)
    assert meta["hours"] == pytest.approx(90 / 30 / 3600, abs=1e-6)
    assert meta["rejections"] == {} and meta["published"] is True
    assert "broken.mp4" in meta["report"] and "2 shots accepted" in meta["report"]
    assert meta["manifest"] == str(Path(project["cfg"].storage_url) / "video/internet/shots.json")
    assert mat.tags["dagster/data_version"]
    checks = _check_evaluations(project, out.run_id)
    readable = checks["clips_readable"]
    assert not readable.passed and readable.severity.value == "WARN"
    assert readable.metadata["unusable_files"].value == [str(web.resolve() / "broken.mp4")]
    assert any("broken.mp4" in f for f in readable.metadata["findings"].value)
    assert checks["shots_accepted"].passed
    gx = checks["gx_shots_valid"]  # GX's own results on the manifest's shots
    assert gx.passed and gx.metadata["suite"].value == "gx_shots_valid" and gx.metadata["failed"].value == 0
    ran = {(r["expectation"], r["column"]) for r in gx.metadata["gx_results"].value}
    assert {("expect_column_values_to_be_between", "duration_s"), ("expect_column_values_to_not_be_null", "phash"),
            ("expect_column_values_to_be_between", "width")} <= ran
    assert all(r["result"].get("element_count") == 2 for r in gx.metadata["gx_results"].value
               if r["column"] == "duration_s")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_generated_clips_keep_provenance_and_the_copy_across_sources_is_dropped(project, scanned):
    web, dreams = project["clips"]["internet"], project["clips"]["dreams"]
    out = scanned["dreams"]
    assert out.success, out.error
    assert out.checks == {"clips_readable": True, "shots_accepted": True, "gx_shots_valid": True}
    m = _manifest(project, "dreams")
    (d0,) = m["shots"]
    assert d0["clip"].endswith("d0.mp4") and d0["layer"] == "generated" and d0["caption"] == "a robot stacks cubes"
    p = d0["provenance"]
    assert (p["source_demo"], p["camera"], p["seed"], p["control_video"], p["engine"], p["kind"]) == (
        "demo_0", "front", 3, "demo_0/front.edge.mp4", "cosmos-transfer-2.5", "generated")
    (dup,) = m["rejections"]
    assert Path(dup["clip"]).name == "wave_copy.mp4" and dup["reason"] == "duplicate"
    assert dup["twin"] == _clip_id(web, "wave.mp4") and "in internet" in dup["detail"]
    meta = {k: getattr(v, "value", v) for k, v in _materialization(project, "video_clips", "dreams").metadata.items()}
    assert meta["rejections"] == {"duplicate": 1} and meta["accepted_shots"] == 1 and meta["layer"] == "generated"
    assert meta["duplicates"] == [{"shot": f"{(dreams / 'wave_copy.mp4').resolve()}#0", "twin": dup["twin"]}]
    assert "| duplicate |" in meta["rejected"] and "wave_copy.mp4" in meta["rejected"]
    # one persistent index in the store holds the kept shots of every source (the copy is not among them)
    import sqlalchemy as sa

    from robodata.video.hashing import SHOTS

    index = Path(project["cfg"].storage_url) / "video" / "shots.sqlite"
    with sa.create_engine(f"sqlite:///{index}").connect() as c:
        kept = {(r.source, Path(r.clip).name) for r in c.execute(sa.select(SHOTS).where(
            SHOTS.c.source.in_(["internet", "dreams"])))}
    assert kept == {("internet", "wave.mp4"), ("internet", "door.mp4"), ("dreams", "d0.mp4")}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_rescan_with_nothing_new_keeps_the_shots_and_the_data_version(project, scanned):
    before = _materialization(project, "video_clips", "internet").tags["dagster/data_version"]
    shots = _manifest(project, "internet")["shots"]
    again = _scan(project, "internet")["internet"]
    assert again.success and again.metadata["accepted_shots"] == 2  # its own shots in the index are no copies
    assert _manifest(project, "internet")["shots"] == shots
    assert _materialization(project, "video_clips", "internet").tags["dagster/data_version"] == before


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_mixed_release_records_the_mix_and_loads_in_lerobot(project, mixed):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    first, root = mixed["first"], mixed["root"]
    assert first.checks == {"mixture_has_every_layer": True, "mixed_frames_contiguous_and_in_sync": True}
    gx = _check_evaluations(project, first.run_id)["mixed_frames_contiguous_and_in_sync"]
    assert gx.passed and gx.metadata["failed"].value == 0 and gx.metadata["expectations"].value > 10
    per = gx.metadata["datasets"].value  # both datasets checked; the video one has no state or action, by design
    assert set(per) == {"robot", "video"} and per["video"]["observation_only"] and not per["robot"]["failed"]
    assert per["robot"]["expectations"] > per["video"]["expectations"] > 5 and not per["video"]["failed"]
    cols = {r["column"] for r in gx.metadata["gx_results"].value}
    assert "robot/feature" in cols and any(c.startswith("robot/observation.state[") for c in cols)
    robot_release = project["robot"].metadata["release"]
    mix = json.loads((root / "mixture.json").read_text())
    assert mix["release"] == root.name == first.metadata["release"] and mix["robot_release"] == robot_release
    assert mix["weights"] == WEIGHTS
    assert {k: (v["datasets"], v["episodes"], v["frames"]) for k, v in mix["layers"].items()} == {
        "teleop": (["robot"], 2, 40), "internet": (["video"], 2, 90), "generated": (["video"], 1, 40)}
    assert mix["layers"]["internet"]["hours"] == pytest.approx(90 / 30 / 3600, abs=1e-6)
    gen = next(e for e in mix["episodes"] if e["layer"] == "generated")["provenance"]
    assert (gen["source_demo"], gen["seed"], gen["video_source"]) == ("demo_0", 3, "dreams")
    robot_eps = [e for e in mix["episodes"] if e["layer"] == "teleop"]
    assert {e["provenance"]["release"] for e in robot_eps} == {robot_release}
    # the profile shows the mix
    assert "Mix" in (root / "profile.html").read_text()
    prof = json.loads((root / "profile.json").read_text())
    assert {k: v["episodes"] for k, v in prof["summary"]["mix"].items()} == {"teleop": 2, "internet": 2, "generated": 1}
    assert prof["mix"]["weights"] == WEIGHTS and prof["source"] == str(root)
    latest = json.loads((Path(project["cfg"].storage_url) / "mixed/latest.json").read_text())
    assert latest["release"] == mix["release"] and latest["path"] == str(root)
    # the UI: the mix table, per-layer numbers, dataset weights, the profile, a provenance sample of every layer
    meta = first.metadata
    assert "| internet | 0.300 |" in meta["mix"] and "| teleop | 0.500 |" in meta["mix"]
    assert meta["layers"]["generated"]["episodes"] == 1 and meta["episodes"] == 5 and meta["frames"] == 170
    assert meta["dataset_weights"] == {"robot": pytest.approx(0.5), "video": pytest.approx(0.5)}
    assert meta["profile_path"] == str(root / "profile.html") and meta["promoted_to_latest"] is True
    assert {e["layer"] for e in meta["provenance_sample"]} == {"teleop", "internet", "generated"}
    for name, episodes, frames in (("robot", 2, 40), ("video", 3, 130)):
        ds = LeRobotDataset(repo_id=f"local/{name}", root=root / name, video_backend="pyav")
        assert (ds.num_episodes, ds.num_frames) == (episodes, frames)
    video = LeRobotDataset(repo_id="local/video", root=root / "video", video_backend="pyav")
    item = video[0]
    assert "action" not in item and tuple(item["observation.images.main"].shape) == (3, 48, 64)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_second_cut_with_no_new_input_reuses_the_release(mixed):
    first, second, root = mixed["first"], mixed["second"], mixed["root"]
    assert second.success, second.error
    assert second.metadata["reused_existing"] is True and second.metadata["release"] == first.metadata["release"]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mixed["times"]
    assert second.checks == {"mixture_has_every_layer": True, "mixed_frames_contiguous_and_in_sync": True}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_new_manifest_cuts_a_new_mix_and_a_source_without_shots_keeps_its_manifest(project, mixed):
    import dagster as dg

    instance, defs, uploads = project["instance"], project["defs"], project["clips"]["uploads"]
    mix = dg.AssetKey("mixed_release")
    tick = dg.evaluate_automation_conditions(defs, instance)
    encode(uploads / "hello.mp4", scene(4, 45, HW))
    good = _scan(project, "uploads")["uploads"]
    assert good.success and good.metadata["accepted_shots"] == 1
    tick = dg.evaluate_automation_conditions(defs, instance, cursor=tick.cursor)
    assert tick.get_num_requested(mix) == 1  # a new video manifest: a new mixed release

    # the source now holds nothing usable: the check fails, the manifest is the previous one
    published = _manifest(project, "uploads")
    shutil.rmtree(uploads)
    encode(uploads / "tiny.mp4", np.asarray(scene(5, 45, (48, 64))))
    (uploads / "notes.mp4").write_text("not a video\n")
    bad = _scan(project, "uploads")["uploads"]
    assert not bad.success and "shots_accepted" in bad.error
    assert bad.checks == {"clips_readable": False, "shots_accepted": False, "gx_shots_valid": True}
    assert _manifest(project, "uploads") == published
    meta = {k: getattr(v, "value", v) for k, v in _materialization(project, "video_clips", "uploads").metadata.items()}
    assert meta["published"] is False and "quarantine" in meta["manifest"] and meta["rejections"] == {
        "low_resolution": 1}
    ev = _check_evaluations(project, bad.run_id)["shots_accepted"]
    assert not ev.passed and ev.severity.value == "ERROR"
    assert any("no shot accepted" in f for f in ev.metadata["findings"].value)
    tick = dg.evaluate_automation_conditions(defs, instance, cursor=tick.cursor)
    assert tick.get_num_requested(mix) == 0  # held back by the failed blocking check


# The config tests name the embedded defaults: the module's project (ROBODATA_CONFIG) must not leak in.


def test_without_video_sources_the_graph_has_no_video_assets(tmp_path):
    from robodata_dagster.definitions import build_definitions

    plain = build_definitions(load_config(DEFAULTS_FILE, {"home": str(tmp_path)}))
    keys = {k.to_user_string() for k in plain.resolve_all_asset_keys()}
    assert keys == {"raw_teleop", "synthetic_demos", "augmented_videos", "lerobot_episodes", "lerobot_dataset",
                    "policy_checkpoint"}
    jobs = {j.name for j in plain.resolve_all_job_defs()}
    assert not {"scan_videos", "cut_mixed_release"} & jobs
    only_scan = build_definitions(load_config(DEFAULTS_FILE, {"home": str(tmp_path), "mix": {"enabled": False},
                                                     "video": {"sources": [{"name": "web", "url": "clips"}]}}))
    keys = {k.to_user_string() for k in only_scan.resolve_all_asset_keys()}
    assert "video_clips" in keys and "mixed_release" not in keys


def test_bad_video_and_mix_config_is_one_clear_error(tmp_path):
    from robodata_dagster.definitions import build_definitions

    with pytest.raises(ConfigError, match=r"video\.sources\.0\.name: video source name 'Web Clips'"):
        load_config(DEFAULTS_FILE, {"video": {"sources": [{"name": "Web Clips", "url": "clips"}]}})
    with pytest.raises(ConfigError, match=r"video\.sources\.0\.bucket: Extra inputs"):
        load_config(DEFAULTS_FILE, {"video": {"sources": [{"name": "web", "url": "clips", "bucket": "x"}]}})
    with pytest.raises(ConfigError, match=r"mix\.kind: Extra inputs"):
        load_config(DEFAULTS_FILE, {"mix": {"kind": "x"}})
    with pytest.raises(ConfigError, match="used twice"):
        load_config(DEFAULTS_FILE, {"video": {"sources": [{"name": "web", "url": "a"}, {"name": "web", "url": "b"}]}})
    cfg = load_config(DEFAULTS_FILE, {"home": str(tmp_path), "video": {"sources": [{"name": "web", "url": "clips"}]},
                             "mix": {"weights": {"teleop": 1, "sim": 1}}})
    with pytest.raises(ConfigError, match=r"mix\.weights: weight for layer 'sim', which has no sources"):
        build_definitions(cfg)
