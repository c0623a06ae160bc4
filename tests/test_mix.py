"""One release from all layers: teleop- and sim-like LeRobot datasets written by robodata's writer from episode
stores, plus observation-only shots of clips encoded here -> mixture.json (per layer counts, frames, hours,
weights; per episode layer and provenance), both datasets load in lerobot 0.6.1, the profile shows the mix; bad
weights are one clear error; the Python API's mixed form end to end on Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import robodata
from robodata.lerobot import validate_dataset, write_shard
from robodata.mix import (
    LayerDataset,
    MixedPipeline,
    MixError,
    cut_mixed_release,
    episode_sampling_weights,
    mix_config,
    mixture_weights,
    normalise_weights,
)
from robodata.video.episodes import ObservationEpisodesConfig
from robodata.video.shots import Shot
from tests.test_lerobot import make_store
from tests.test_video_corpus import encode


def scene(seed: int, n: int = 60, hw: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A sharp blocky texture with a square moving steadily across it: a clip the quality filters accept."""
    rng = np.random.default_rng(seed)
    h, w = hw
    base = np.asarray(Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3), np.uint8)).resize(
        (w, h), Image.Resampling.NEAREST))
    out = np.repeat(base[None], n, axis=0).copy()
    color, size = rng.integers(0, 256, 3), h // 4
    for i in range(n):
        x = 5 + i
        out[i, 40:40 + size, x:x + size] = color
    return out


def clip_shot(path: Path, n: int, fps: int, layer: str, caption: str, provenance: dict) -> Shot:
    return Shot(str(path), 0, 0.0, n / fps, 0, n, float(fps), 160, 120, "h264", caption=caption, layer=layer,
                provenance=provenance)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("layers")
    teleop = write_shard(make_store(tmp / "teleop.hdf5", episodes=3, frames=40), tmp / "teleop").path
    sim = write_shard(make_store(tmp / "sim.hdf5", episodes=2, frames=30, task="pick in sim"), tmp / "sim").path
    web = [encode(tmp / f"web/clip{i}.mp4", scene(i, 45)) for i in range(2)]
    dream = encode(tmp / "dreams/d0.mp4", scene(9, 30))
    return {
        "teleop": teleop, "sim": sim,
        "internet": [clip_shot(web[0], 45, 30, "internet", "wave at the camera", {"url": "https://example.org/a"}),
                     clip_shot(web[1], 45, 30, "internet", "open a door", {"url": "https://example.org/b"})],
        "generated": [clip_shot(dream, 30, 30, "generated", "a robot stacks cubes",
                                {"source_demo": "demo_1", "camera": "front", "seed": 7, "engine": "cosmos",
                                 "control_video": "demo_1/front.edge.mp4"})],
    }


@pytest.fixture(scope="module")
def release(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "mix-1"
    cut_mixed_release(
        {"teleop": [LayerDataset(sources["teleop"], {"kind": "teleop", "operator": "anna"})], "sim": [sources["sim"]],
         "internet": sources["internet"], "generated": sources["generated"]},
        out, weights={"teleop": 4, "sim": 2, "internet": 3, "generated": 1},
        episodes=ObservationEpisodesConfig(fps=30, width=64, height=48))
    return out


def test_mixture_records_layers_datasets_and_episodes(release, sources):
    mix = json.loads((release / "mixture.json").read_text())
    assert mix["weights"] == {"teleop": 0.4, "sim": 0.2, "internet": 0.3, "generated": 0.1}
    lay = mix["layers"]
    assert {k: (v["datasets"], v["episodes"], v["frames"]) for k, v in lay.items()} == {
        "teleop": (["robot"], 3, 120), "sim": (["robot"], 2, 60), "internet": (["video"], 2, 90),
        "generated": (["video"], 1, 30)}
    assert lay["teleop"]["hours"] == pytest.approx(120 / 30 / 3600, abs=1e-6)
    assert lay["internet"]["hours"] == pytest.approx(90 / 30 / 3600, abs=1e-6)
    assert (lay["teleop"]["kind"], lay["internet"]["kind"]) == ("robot", "observation_only")
    ds = mix["datasets"]
    assert ds["robot"]["layers"] == ["teleop", "sim"] and ds["video"]["layers"] == ["internet", "generated"]
    assert ds["robot"]["weight"] == pytest.approx(0.6) and ds["video"]["weight"] == pytest.approx(0.4)
    assert (ds["robot"]["observation_only"], ds["video"]["observation_only"]) == (False, True)
    assert mixture_weights(release) == pytest.approx({"robot": 0.6, "video": 0.4})
    eps = mix["episodes"]
    assert [(e["dataset"], e["layer"]) for e in eps] == [("robot", "teleop")] * 3 + [("robot", "sim")] * 2 + [
        ("video", "internet")] * 2 + [("video", "generated")]
    assert eps[0]["provenance"]["operator"] == "anna" and eps[0]["provenance"]["kind"] == "teleop"
    assert eps[3]["provenance"]["dataset"] == str(sources["sim"])
    assert eps[3]["provenance"]["episode_index"] == 0
    gen = eps[-1]["provenance"]
    assert (gen["source_demo"], gen["seed"], gen["engine"], gen["control_video"]) == ("demo_1", 7, "cosmos",
                                                                                      "demo_1/front.edge.mp4")
    assert gen["clip"].endswith("dreams/d0.mp4")
    assert not [p for p in release.parent.iterdir() if ".partial-" in p.name]  # published atomically


def test_each_dataset_loads_in_lerobot_with_its_layer_columns(release):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    robot = LeRobotDataset(repo_id="local/robot", root=release / "robot", video_backend="pyav")
    video = LeRobotDataset(repo_id="local/video", root=release / "video", video_backend="pyav")
    assert (robot.num_episodes, len(robot), video.num_episodes, len(video)) == (5, 180, 3, 120)
    item = robot[130]
    assert item["observation.state"].shape == (7,) and item["action"].shape == (7,) and item["task"] == "pick in sim"
    v = video[100]
    assert "action" not in v and v["observation.images.main"].shape == (3, 48, 64)
    assert v["task"] == "a robot stacks cubes" and abs(float(v["timestamp"]) - 10 / 30) < 1e-6
    for name, layers in (("robot", ["teleop"] * 3 + ["sim"] * 2), ("video", ["internet", "internet", "generated"])):
        rows = pq.read_table(next((release / name / "meta/episodes").rglob("*.parquet"))).to_pylist()
        assert [r["layer"] for r in rows] == layers
        assert all(isinstance(json.loads(r["provenance"]), dict) for r in rows)
        assert not validate_dataset(release / name)
    info = json.loads((release / "video/meta/info.json").read_text())
    assert info["observation_only"] is True and "action" not in info["features"]


def test_sampling_weights_give_each_layer_its_share(release):
    w = episode_sampling_weights(release, "robot")
    assert w.sum() == pytest.approx(1.0)
    assert w[:3].sum() / w[3:].sum() == pytest.approx(0.4 / 0.2)  # teleop : sim as weighted
    per_frame = episode_sampling_weights(release, "robot", per_frame=True)
    assert per_frame.shape == (180,) and per_frame.sum() == pytest.approx(1.0)
    assert per_frame[:120].sum() == pytest.approx(2 / 3)
    v = episode_sampling_weights(release, "video")
    assert v[:2].sum() == pytest.approx(0.75) and v[2] == pytest.approx(0.25)
    with pytest.raises(MixError, match="no dataset 'nope'"):
        episode_sampling_weights(release, "nope")


def test_the_release_profile_shows_the_mix(release):
    page = (release / "profile.html").read_text()
    assert '<section id="mix">' in page and 'href="#mix"' in page
    for layer in ("teleop", "sim", "internet", "generated"):
        assert f"<td class=\"l\">{layer}</td>" in page
    data = json.loads((release / "profile.json").read_text())
    assert data["kind"] == "mixed release"
    assert data["summary"]["mix"]["internet"] == {"weight": 0.3, "episodes": 2, "frames": 90,
                                                  "hours": pytest.approx(90 / 30 / 3600, abs=1e-6)}
    assert data["summary"]["episodes"] == 8
    assert not any("idle" in w for w in data["summary"]["warnings"] if "video/" in w)


def test_bad_weights_are_one_clear_error(sources, tmp_path):
    with pytest.raises(MixError, match="weight for layer 'teleoop', which has no sources"):
        normalise_weights({"teleoop": 1, "sim": 1}, ["teleop", "sim"])
    with pytest.raises(MixError, match=r"weights.sim is -0.5: a weight is a non-negative number"):
        normalise_weights({"teleop": 1, "sim": -0.5}, ["teleop", "sim"])
    with pytest.raises(MixError, match="sum to 0"):
        normalise_weights({"teleop": 0, "sim": 0}, ["teleop", "sim"])
    with pytest.raises(MixError, match="layer 'sim' has sources but no weight"):
        normalise_weights({"teleop": 1}, ["teleop", "sim"])
    assert normalise_weights(None, ["a", "b"]) == {"a": 0.5, "b": 0.5}
    with pytest.raises(MixError, match="weight for layer 'web'"):
        mix_config({"sources": {"internet": ["s3://b/v/"]}, "weights": {"web": 1.0}})
    assert mix_config({"sources": {"a": ["x"], "b": ["y"]}, "weights": {"a": 3, "b": 1}}).normalised_weights() == {
        "a": 0.75, "b": 0.25}
    with pytest.raises(MixError, match="which has no sources"):
        cut_mixed_release({"teleop": [sources["teleop"]]}, tmp_path / "r", weights={"teleop": 1, "sim": 1})
    with pytest.raises(MixError, match="weight for layer 'simm'"):
        robodata.pipeline(sources={"sim": [str(sources["sim"])]}, weights={"simm": 1}, output=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_plain_strings_are_read_by_their_layer_in_a_release_config(tmp_path):
    cfg = mix_config({"sources": {"internet": ["clips/"], "generated": ["dreams/"], "teleop": ["bags/"],
                                  "sim": [robodata.sources.isaac_lab("sim/")]},
                      "weights": {"internet": 1, "generated": 1, "teleop": 4, "sim": 2}, "format": "lerobot-v2.1"})
    p = MixedPipeline.from_config(cfg, str(tmp_path / "r"))
    assert p.weights == {"internet": 0.125, "generated": 0.125, "teleop": 0.5, "sim": 0.25}
    assert {k: [s.kind for s in v] for k, v in p.layers.items()} == {
        "internet": ["video"], "generated": ["cosmos"], "teleop": ["recordings"], "sim": ["isaac_lab"]}
    assert p.version == "v2.1"
    assert p.layers["sim"][0].pipeline_source() == {"type": "hdf5", "path": "sim/"}
    with pytest.raises(robodata.sources.SourceError, match="layer 'teleop': 42 is not a source"):
        MixedPipeline({"teleop": [42]}, str(tmp_path / "r"))


def test_robots_with_different_features_get_their_own_dataset_in_v21(sources, tmp_path):
    other = write_shard(make_store(tmp_path / "arm2.hdf5", episodes=1, frames=20, cameras=(("top", (32, 48, 3)),)),
                        tmp_path / "arm2").path
    rel = cut_mixed_release({"teleop": [sources["teleop"]], "sim": [other], "internet": sources["internet"][:1]},
                            tmp_path / "rel", version="v2.1",
                            episodes=ObservationEpisodesConfig(width=32, height=32))
    assert set(rel.datasets) == {"robot", "robot_2", "video"}
    mix = rel.mixture
    assert mix["layers"]["sim"]["datasets"] == ["robot_2"] and mix["datasets"]["robot"]["weight"] == pytest.approx(1 / 3)
    for name in ("robot", "robot_2"):
        modality = json.loads((rel.path / name / "meta/modality.json").read_text())
        assert modality["action"] and modality["state"]
    modality = json.loads((rel.path / "video/meta/modality.json").read_text())
    assert "action" not in modality and "state" not in modality
    rows = [json.loads(line) for line in (rel.path / "robot_2/meta/episodes.jsonl").read_text().splitlines()]
    assert [r["layer"] for r in rows] == ["sim"]
    assert (rel.path / "video/videos/chunk-000/observation.images.main/episode_000000.mp4").exists()


@pytest.mark.slow
def test_python_api_mixed_form_builds_every_layer_and_cuts_the_release(tmp_path):
    make_store(tmp_path / "teleop_data" / "session1.hdf5", episodes=2, frames=40)
    make_store(tmp_path / "sim" / "run.hdf5", episodes=1, frames=36, task="sim pick")
    web = tmp_path / "internet_videos"
    encode(web / "walk.mp4", scene(1, 45))
    (web / "walk.txt").write_text("a person walks to the table\n")
    encode(web / "walk_reupload.mp4", scene(1, 45))  # the same scene again: a duplicate the scan drops
    encode(web / "tiny.mp4", scene(2, 45, (48, 64)))  # too low a resolution
    (web / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom truncated")
    dreams = tmp_path / "dreams"
    encode(dreams / "d0.mp4", scene(5, 40))
    (dreams / "d0.json").write_text(json.dumps({"source_demo": "demo_0", "camera": "front", "seed": 3,
                                                "control_video": "demo_0/front.edge.mp4", "caption": "dream"}))
    result = robodata.pipeline(
        sources={"internet": [str(web)],
                 "synthetic": [robodata.sources.isaac_lab(str(tmp_path / "sim")), robodata.sources.cosmos(str(dreams))],
                 "teleop": [str(tmp_path / "teleop_data")]},
        weights={"internet": 0.2, "synthetic": 0.4, "teleop": 0.4}, output=str(tmp_path / "release"),
        episodes={"width": 64, "height": 48}).run()
    assert result.published and result.ok, result.summary()
    out = Path(result.output)
    mix = json.loads((out / "mixture.json").read_text())
    assert mix["release"] == "release"  # the published folder's name, not its temporary one's
    lay = mix["layers"]
    assert (lay["teleop"]["episodes"], lay["teleop"]["frames"]) == (2, 80)
    assert lay["synthetic"]["datasets"] == ["robot", "video"] and lay["synthetic"]["episodes"] == 2
    assert lay["internet"]["episodes"] == 1 and lay["internet"]["datasets"] == ["video"]
    reasons = {(Path(r.clip).name, r.reason) for r in result.rejections}
    assert ("tiny.mp4", "low_resolution") in reasons
    assert any(r.reason == "duplicate" for r in result.rejections)
    assert [Path(f.path).name for f in result.findings] == ["broken.mp4"]
    video = [e for e in mix["episodes"] if e["dataset"] == "video"]
    dream = next(e for e in video if e["layer"] == "synthetic")
    assert (dream["provenance"]["source_demo"], dream["provenance"]["seed"], dream["provenance"]["kind"]) == (
        "demo_0", 3, "generated")
    robot = [e for e in mix["episodes"] if e["dataset"] == "robot"]
    assert {e["provenance"]["kind"] for e in robot} == {"recordings", "isaac_lab"}
    assert all(e["provenance"].get("source", "").endswith(".hdf5") for e in robot)  # the pipeline's lineage
    assert mixture_weights(out)["robot"] == pytest.approx(0.4 + 0.4 * 36 / (36 + 40))
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    for name in ("robot", "video"):
        ds = LeRobotDataset(repo_id=f"local/{name}", root=out / name, video_backend="pyav")
        assert ds.num_episodes == mix["datasets"][name]["episodes"]
        assert ds[0]["task"]
