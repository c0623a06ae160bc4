"""Observation-only episodes from shots: clips encoded here with PyAV -> a LeRobot dataset without state/action that
lerobot 0.6.1 loads (frames, timestamps, task right), marked in its metadata; GR00T's v2.1 flavour with a
modality.json that has no action; Cosmos outputs (the augmented_videos tier's folder and a plain folder with
sidecar JSON) listed as generated shots with their provenance."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from robodata.lerobot import validate_dataset
from robodata.lerobot.video import probe
from robodata.video.episodes import (
    ObservationEpisodesConfig,
    VideoEpisodeError,
    fit_frame,
    read_episode_columns,
    resample_offsets,
    write_observation_episodes,
)
from robodata.video.generated import list_generated
from robodata.video.shots import Shot

STEP = 5  # source frame i is grey level STEP * i (luma survives YUV 4:2:0): a decoded frame says which one it is


def encode_clip(path: Path, frames: int, fps: int, width: int, height: int) -> Path:
    """An H.264 clip whose frame i is uniformly grey STEP * i, so frame picking can be checked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"crf": "10"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.full((height, width, 3), STEP * i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def shot(clip: Path, index: int, start_frame: int, end_frame: int, fps: float, w: int, h: int, **kw) -> Shot:
    return Shot(str(clip), index, start_frame / fps, end_frame / fps, start_frame, end_frame, fps, w, h, "h264", **kw)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("clips")
    return {"wave": encode_clip(tmp / "wave.mp4", 50, 25, 160, 120),  # 4:3 landscape at 25 fps
            "pour": encode_clip(tmp / "pour.mp4", 48, 60, 96, 128)}  # 3:4 portrait at 60 fps


def source_index(img: np.ndarray) -> int:
    """Which source frame a decoded (H, W, 3) image shows (its grey level / STEP)."""
    return int(round(float(img.mean()) / STEP))


def test_resampling_picks_the_frame_showing_at_each_timestamp():
    np.testing.assert_array_equal(resample_offsets(6, 60, 30), [0, 2, 4])
    np.testing.assert_array_equal(resample_offsets(5, 30, 30), np.arange(5))
    got = resample_offsets(10, 25, 30)  # 0.4 s -> 12 frames; every fifth output frame repeats a source frame
    assert len(got) == 12 and got[0] == 0 and got[-1] == 9
    assert np.all(np.diff(got) >= 0) and int((np.diff(got) == 0).sum()) == 2
    assert len(resample_offsets(1, 60, 30)) == 1  # a one-frame shot keeps its frame
    assert len(resample_offsets(0, 30, 30)) == 0


def test_letterbox_keeps_the_whole_frame_and_crop_fills_it():
    img = np.full((40, 80, 3), 200, np.uint8)  # 2:1 into a square
    box = fit_frame(img, 32, 32, "letterbox")
    assert box.shape == (32, 32, 3)
    assert box[:7].max() == 0 and box[-7:].max() == 0  # black bars above and below
    assert abs(int(box[16, 16, 0]) - 200) <= 2 and abs(int(box[16, 0, 0]) - 200) <= 2  # full width kept
    img[:, :20] = 0  # a dark left quarter: cropped away by centre-crop
    crop = fit_frame(img, 32, 32, "crop")
    assert crop.shape == (32, 32, 3) and crop.min() >= 190


def test_observation_only_dataset_loads_in_lerobot_with_frames_timestamps_and_task(clips, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    shots = [
        shot(clips["wave"], 0, 0, 20, 25, 160, 120, caption="wave hello", provenance={"url": "https://example.org/1"},
             phash=2**63 + 7),
        shot(clips["wave"], 1, 20, 50, 25, 160, 120),  # no caption: the task is the default
        shot(clips["pour"], 0, 0, 48, 60, 96, 128, caption="pour the water", layer="generated",
             provenance={"source_demo": "demo_3", "seed": 11}),
    ]
    cfg = ObservationEpisodesConfig(fps=30, width=64, height=48, default_task="a person on video")
    rep = write_observation_episodes(shots, tmp_path / "ds", cfg)
    assert rep.episode_frames == [24, 36, 24] and rep.frames == 84 and not rep.skipped
    assert rep.layers == {"internet": 2, "generated": 1}
    root = tmp_path / "ds"
    assert not validate_dataset(root)

    info = json.loads((root / "meta/info.json").read_text())
    assert info["observation_only"] is True and info["fps"] == 30
    assert "observation.state" not in info["features"] and "action" not in info["features"]
    assert info["features"]["observation.images.main"]["shape"] == [48, 64, 3]
    eps = pq.read_table(sorted((root / "meta/episodes").rglob("*.parquet"))[0]).to_pylist()
    assert [e["layer"] for e in eps] == ["internet", "internet", "generated"]
    assert [e["source_clip"] for e in eps] == [str(clips["wave"])] * 2 + [str(clips["pour"])]
    assert [e["shot_start_s"] for e in eps] == pytest.approx([0.0, 0.8, 0.0])
    assert json.loads(eps[2]["provenance"]) == {"source_demo": "demo_3", "seed": 11}
    assert eps[0]["phash"] == "8000000000000007"

    ds = LeRobotDataset(repo_id="local/video", root=root, video_backend="pyav")
    assert (len(ds), ds.num_episodes) == (84, 3)
    starts = {0: 0, 1: 24, 2: 60}
    expect = {0: (0, resample_offsets(20, 25, 30)), 1: (20, resample_offsets(30, 25, 30)),
              2: (0, resample_offsets(48, 60, 30))}
    tasks = {0: "wave hello", 1: "a person on video", 2: "pour the water"}
    for ep in (0, 1, 2):
        n = rep.episode_frames[ep]
        for fi in sorted({0, 5, n // 2, n - 1}):
            item = ds[starts[ep] + fi]
            assert (int(item["episode_index"]), int(item["frame_index"])) == (ep, fi)
            assert abs(float(item["timestamp"]) - fi / 30) < 1e-6
            assert item["task"] == tasks[ep]
            assert "action" not in item and "observation.state" not in item
            img = item["observation.images.main"].permute(1, 2, 0).numpy() * 255
            assert img.shape == (48, 64, 3)
            first, offsets = expect[ep]
            centre = img[:, 24:40] if ep == 2 else img
            assert source_index(centre) == first + int(offsets[fi]), (ep, fi)
    portrait = ds[starts[2] + 20]["observation.images.main"].permute(1, 2, 0).numpy() * 255  # source frame 40
    assert portrait[:, :10].max() < 20 and portrait[:, -10:].max() < 20  # letterboxed: black side bars
    assert abs(float(portrait[:, 24:40].mean()) - STEP * 40) < 4


def test_groot_v21_flavour_is_an_embodiment_without_action(clips, tmp_path):
    shots = [shot(clips["wave"], 0, 0, 25, 25, 160, 120, caption="wave"),
             shot(clips["pour"], 0, 6, 30, 60, 96, 128, caption="pour", layer="generated", provenance={"seed": 2})]
    cfg = ObservationEpisodesConfig(fps=10, width=32, height=32, camera="ego_view", resize="crop")
    rep = write_observation_episodes(shots, tmp_path / "groot", cfg, version="v2.1")
    root = tmp_path / "groot"
    assert rep.version == "v2.1" and rep.episode_frames == [10, 4]
    modality = json.loads((root / "meta/modality.json").read_text())
    assert set(modality) == {"video", "annotation"}  # no state, no action
    assert modality["video"] == {"ego_view": {"original_key": "observation.images.ego_view"}}
    assert "human.action.task_description" in modality["annotation"]
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["observation_only"] is True
    assert not {"observation.state", "action"} & set(info["features"])
    rows = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
    assert [(r["layer"], r["length"]) for r in rows] == [("internet", 10), ("generated", 4)]
    assert json.loads(rows[1]["provenance"]) == {"seed": 2} and rows[1]["shot_start_s"] == pytest.approx(0.1)
    for i, n in enumerate(rep.episode_frames):
        mp4 = root / f"videos/chunk-000/observation.images.ego_view/episode_{i:06d}.mp4"
        assert probe(mp4).frames == n
    table = pq.read_table(root / "data/chunk-000/episode_000001.parquet")
    assert table.column("annotation.human.action.task_description").to_pylist() == [1] * 4
    assert read_episode_columns(root)[1]["layer"] == "generated"
    assert not validate_dataset(root)


def test_a_shot_past_the_end_of_its_clip_is_named_and_the_rest_is_written(clips, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    shots = [shot(clips["wave"], 0, 0, 10, 25, 160, 120, caption="ok"),
             shot(clips["wave"], 1, 40, 90, 25, 160, 120, caption="too long"),  # the clip has 50 frames
             shot(bad, 0, 0, 10, 25, 160, 120)]
    rep = write_observation_episodes(shots, tmp_path / "ds", ObservationEpisodesConfig(width=32, height=32))
    assert rep.episodes == 1 and rep.tasks == ["ok"]
    why = dict(rep.skipped)
    assert "the clip has 50" in why[f"{clips['wave']}#1"]
    assert str(bad) in why[f"{bad}#0"]
    with pytest.raises(VideoEpisodeError, match="no shots"):
        write_observation_episodes([], tmp_path / "none")
    with pytest.raises(VideoEpisodeError, match="none of the 1 shots"):
        write_observation_episodes(shots[1:2], tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_cosmos_outputs_are_listed_as_generated_shots_with_provenance(tmp_path):
    from robodata.augment.config import CosmosConfig
    from robodata.augment.cosmos import build_spec, write_spec

    # the augmented_videos tier's clip folder: source clip, control videos, two variants, a Cosmos spec for v0
    tier = tmp_path / "augmented_videos" / "rec-1a2b"
    demo = tier / "demo_0"
    encode_clip(demo / "front.mp4", 12, 30, 64, 48)
    for kind in ("depth", "edge", "seg"):
        encode_clip(demo / f"front.{kind}.mp4", 12, 30, 64, 48)
    encode_clip(demo / "front.v0.mp4", 12, 30, 64, 48)
    encode_clip(demo / "front.v1.mp4", 12, 30, 64, 48)
    cc = CosmosConfig(prompt="a robot arm stacks cubes in a sunny kitchen", controls={"edge": 1.0, "depth": 0.5})
    write_spec(tier / "cosmos" / "specs", build_spec(tier, "demo_0", "front", 0, 1234, cc))
    listing = list_generated(str(tier))
    assert not listing.findings
    by_name = {Path(s.clip).name: s for s in listing.shots}
    assert set(by_name) == {"front.v0.mp4", "front.v1.mp4"}  # the source clip and controls are not outputs
    v0, v1 = by_name["front.v0.mp4"], by_name["front.v1.mp4"]
    assert (v0.layer, v0.frames, v0.fps, v0.width, v0.height) == ("generated", 12, 30.0, 64, 48)
    assert v0.caption == "a robot arm stacks cubes in a sunny kitchen"
    p = v0.provenance
    assert (p["source_demo"], p["camera"], p["seed"], p["engine"], p["recording"]) == ("demo_0", "front", 1234,
                                                                                        "cosmos", "rec-1a2b")
    assert p["control_video"] == str((demo / "front.edge.mp4").resolve())
    assert p["controls"]["depth"] == str((demo / "front.depth.mp4").resolve())
    assert p["source_video"] == str(demo / "front.mp4")
    assert (v1.provenance["engine"], v1.provenance["seed"], v1.provenance["variant"]) == ("local", None, 1)

    # a plain folder of MP4s with sidecar JSON / text, and one that does not decode
    dreams = tmp_path / "dreams"
    encode_clip(dreams / "a.mp4", 9, 24, 48, 32)
    (dreams / "a.json").write_text(json.dumps({"source_demo": "demo_7", "camera": "wrist", "seed": 5,
                                               "control_video": "s3://b/demo_7/wrist.edge.mp4", "engine": "cosmos",
                                               "caption": "open the drawer", "guidance": 3}))
    encode_clip(dreams / "b.mp4", 6, 24, 48, 32)
    (dreams / "b.txt").write_text("fold the towel\n")
    (dreams / "c.mp4").write_bytes(b"not a video at all")
    listing = list_generated(str(dreams))
    got = {Path(s.clip).name: s for s in listing.shots}
    assert set(got) == {"a.mp4", "b.mp4"}
    assert got["a.mp4"].provenance == {"source_demo": "demo_7", "camera": "wrist", "seed": 5, "engine": "cosmos",
                                       "control_video": "s3://b/demo_7/wrist.edge.mp4", "guidance": 3}
    assert (got["a.mp4"].caption, got["b.mp4"].caption) == ("open the drawer", "fold the towel")
    assert got["b.mp4"].provenance["engine"] == "cosmos" and got["b.mp4"].provenance["source_demo"] is None
    assert [Path(f.path).name for f in listing.findings] == ["c.mp4"]

    # they land like any clip: observation-only episodes that keep the provenance
    rep = write_observation_episodes(listing.shots, tmp_path / "ds", ObservationEpisodesConfig(width=32, height=32))
    cols = read_episode_columns(tmp_path / "ds")
    assert [c["layer"] for c in cols] == ["generated", "generated"] and rep.tasks == ["open the drawer",
                                                                                      "fold the towel"]
    assert json.loads(cols[0]["provenance"])["source_demo"] == "demo_7"
