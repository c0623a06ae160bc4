"""The LeRobot tier on small real runs: episode store -> v3.0 shard -> lerobot 0.6.1 loads it; shards -> release
(v3.0 and GR00T's v2.1); the real SO-101 dataset converted to v2.1 and back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec
from robodata.lerobot import LeRobotError, aggregate, convert, validate_dataset, write_shard
from robodata.lerobot.layout import TASK_ANNOTATION_COLUMN
from robodata.lerobot.video import decode, probe

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
SO101 = REALDATA / "lerobot_v3_so101"
CAMERAS = (("front", (64, 80, 3)), ("wrist", (32, 32, 3)))


def gradient(i: int, h: int, w: int, episode: int) -> np.ndarray:
    """A smooth pattern that moves with the frame index (so decoded frames can be matched by PSNR)."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = 127.5 + 100 * np.sin(xx / 9.0 + i / 5.0 + episode)
    g = 127.5 + 100 * np.sin(yy / 7.0 - i / 7.0)
    b = 127.5 + 100 * np.cos((xx + yy) / 11.0 + i / 9.0)
    return np.stack([r, g, b], -1).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def make_store(path: Path, episodes: int = 3, frames: int = 40, task: str = "pick the cube", cameras=CAMERAS) -> Path:
    feats = [
        FeatureSpec("joint_pos", "state", (6,)),
        FeatureSpec("gripper", "state", (1,)),
        FeatureSpec("eef_delta", "action", (6,)),
        FeatureSpec("grip_cmd", "action", (1,)),
    ] + [FeatureSpec(c, "image", s, "uint8") for c, s in cameras]
    schema = EpisodeSchema(feats, 30.0, task=task, robot_type="franka")
    with EpisodeStoreWriter(path, schema) as store:
        for e in range(episodes):
            demo = store.begin_episode()
            t = np.arange(frames)
            obs = {
                "joint_pos": (np.sin(t[:, None] * 0.1 + np.arange(6)) + e).astype(np.float32),
                "gripper": (t[:, None] % 10 > 5).astype(np.float32),
                "eef_delta": np.cos(t[:, None] * 0.1 + np.arange(6)).astype(np.float32),
                "grip_cmd": np.full((frames, 1), e, np.float32),
            }
            for c, (h, w, _) in cameras:
                obs[c] = np.stack([gradient(i, h, w, e) for i in t])
            demo.extend(t / 30.0, obs)
            demo.close(success=True)
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("shards")
    a = write_shard(make_store(tmp / "a.hdf5"), tmp / "shard_a")  # AV1, lerobot's default
    b = write_shard(make_store(tmp / "b.hdf5", episodes=2, frames=33, task="place it"), tmp / "shard_b")
    assert (a.episodes, a.frames, b.episodes, b.frames) == (3, 120, 2, 66)
    return a.path, b.path


def test_lerobot_loads_our_v3_shard_frame_by_frame(shards):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = shards[0]
    assert not validate_dataset(root)
    ds = LeRobotDataset(repo_id="local/x", root=root, video_backend="pyav")
    assert (len(ds), ds.num_episodes) == (120, 3)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "av1"
    for i in range(0, 120, 7):
        item = ds[i]
        ep, fi = int(item["episode_index"]), int(item["frame_index"])
        assert (ep, fi) == divmod(i, 40)
        assert abs(float(item["timestamp"]) - fi / 30) < 1e-6
        assert item["observation.state"].shape == (7,) and str(item["observation.state"].dtype) == "torch.float32"
        assert item["action"].shape == (7,)
        assert item["task"] == "pick the cube"
        for cam, (h, w, _) in CAMERAS:
            img = item[f"observation.images.{cam}"]
            assert tuple(img.shape) == (3, h, w)
            decoded = (img.permute(1, 2, 0).numpy() * 255).round()
            assert psnr(decoded, gradient(fi, h, w, ep)) > 30, (i, cam)
    np.testing.assert_allclose(ds[45]["observation.state"][:6].numpy(), np.sin(5 * 0.1 + np.arange(6)) + 1, rtol=1e-6)
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert set(stats["action"]) >= {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}


def test_aggregate_two_shards_rebases_indices_and_merges_tasks(shards, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    report = aggregate(list(shards), tmp_path / "release", version="v3.0", repo_id="local/release")
    assert (report.episodes, report.frames, report.tasks) == (5, 186, ["pick the cube", "place it"])
    assert not validate_dataset(report.path)
    table = pq.read_table(report.path / "data/chunk-000/file-000.parquet")
    assert table.column("index").to_pylist() == list(range(186))
    assert table.column("episode_index").to_pylist() == [e for e in range(3) for _ in range(40)] + [3] * 33 + [4] * 33
    assert set(table.column("task_index").to_pylist()[120:]) == {1}
    # the video of each camera is one file; the shards' packets were copied, not re-encoded
    front = probe(report.path / "videos/observation.images.front/chunk-000/file-000.mp4")
    assert front.frames == 186 and np.allclose(front.pts, np.arange(186) / 30)
    ds = LeRobotDataset(repo_id="local/release", root=report.path, video_backend="pyav")
    item = ds[185]
    assert (int(item["episode_index"]), int(item["frame_index"]), item["task"]) == (4, 32, "place it")
    img = (item["observation.images.front"].permute(1, 2, 0).numpy() * 255).round()
    assert psnr(img, gradient(32, 64, 80, 1)) > 30
    stats = json.loads((report.path / "meta/stats.json").read_text())
    assert stats["index"]["max"] == [185] and stats["observation.state"]["count"] == [186]


def test_release_in_groot_v21_flavour(shards, tmp_path):
    out = aggregate(list(shards), tmp_path / "groot", version="v2.1").path
    assert not validate_dataset(out)
    for rel in ("meta/info.json", "meta/episodes.jsonl", "meta/tasks.jsonl", "meta/episodes_stats.jsonl",
                "meta/stats.json", "meta/modality.json", "data/chunk-000/episode_000000.parquet",
                "videos/chunk-000/observation.images.front/episode_000000.mp4"):  # fmt: skip
        assert (out / rel).is_file(), rel
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_episodes"] == 5 and info["total_videos"] == 10
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    modality = json.loads((out / "meta/modality.json").read_text())
    assert modality["state"] == {"joint_pos": {"start": 0, "end": 6}, "gripper": {"start": 6, "end": 7}}
    assert modality["action"]["grip_cmd"] == {"start": 6, "end": 7}
    assert modality["video"]["front"] == {"original_key": "observation.images.front"}
    assert "human.action.task_description" in modality["annotation"]
    for part in modality["state"].values():
        assert part["end"] <= info["features"]["observation.state"]["shape"][0]
    ep4 = pq.read_table(out / "data/chunk-000/episode_000004.parquet").to_pandas()
    assert (ep4[TASK_ANNOTATION_COLUMN] == 1).all() and (ep4["task_index"] == 1).all()
    assert ep4["index"].iloc[0] == 153 and ep4["frame_index"].tolist() == list(range(33))
    tasks = [json.loads(line) for line in (out / "meta/tasks.jsonl").read_text().splitlines()]
    assert tasks == [{"task_index": 0, "task": "pick the cube"}, {"task_index": 1, "task": "place it"}]
    frames = list(decode(out / "videos/chunk-000/observation.images.wrist/episode_000004.mp4"))
    assert len(frames) == 33 and abs(frames[0][0]) < 1e-9
    assert psnr(frames[10][1], gradient(10, 32, 32, 1)) > 30


def test_hdf5_straight_to_v21(tmp_path):
    store = make_store(tmp_path / "s.hdf5", episodes=1, frames=12, cameras=(("cam", (32, 48, 3)),))
    report = convert(store, tmp_path / "v21", to="v2.1", video_codec="libx264")
    assert report.version == "v2.1" and report.frames == 12
    assert not validate_dataset(report.path)
    assert not list(tmp_path.glob(".v21*"))  # the intermediate shard is gone


@pytest.fixture(scope="module")
def so101_round_trip(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("so101")
    v21 = convert(SO101, tmp / "v21", to="v2.1").path
    v30 = convert(v21, tmp / "v30", to="v3.0").path
    return v21, v30


def test_real_dataset_validates():
    assert [f for f in validate_dataset(SO101) if f.severity == "error"] == []


def test_real_dataset_to_v21_and_back_is_lossless(so101_round_trip):
    v21, v30 = so101_round_trip
    assert not validate_dataset(v21) and not validate_dataset(v30)
    original = pq.read_table(SO101 / "data/chunk-000/file-000.parquet").to_pandas()
    back = pq.read_table(v30 / "data/chunk-000/file-000.parquet").to_pandas()
    assert list(back.columns) == list(original.columns)
    for col in original.columns:
        a, b = np.stack(original[col].to_numpy()), np.stack(back[col].to_numpy())
        np.testing.assert_array_equal(a, b, err_msg=col)
    ep3 = pq.read_table(v21 / "data/chunk-000/episode_000003.parquet").to_pandas()
    first = original[original.episode_index == 3]
    np.testing.assert_array_equal(np.stack(ep3["action"]), np.stack(first["action"]))
    assert (ep3[TASK_ANNOTATION_COLUMN] == 0).all()
    modality = json.loads((v21 / "meta/modality.json").read_text())
    assert modality["state"] == {"j": {"start": 0, "end": 6}}
    assert modality["video"] == {"wrist": {"original_key": "observation.images.wrist"}}
    # video: packets copied both ways, so the frames are the original's exactly
    src = SO101 / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    ends = np.cumsum([0] + [json.loads(x)["length"] for x in (v21 / "meta/episodes.jsonl").read_text().splitlines()])
    t0, t1 = ends[2] / 30, ends[3] / 30
    orig_frames = [f for _, f in decode(src, t0, t1)]
    ep2 = [f for _, f in decode(v21 / "videos/chunk-000/observation.images.wrist/episode_000002.mp4")]
    back_frames = [f for _, f in decode(v30 / "videos/observation.images.wrist/chunk-000/file-000.mp4", t0, t1)]
    assert len(orig_frames) == len(ep2) == len(back_frames) == ends[3] - ends[2]
    for a, b, c in zip(orig_frames[::25], ep2[::25], back_frames[::25], strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_real_dataset_v21_round_trip_loads_in_lerobot(so101_round_trip):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    _, v30 = so101_round_trip
    ds = LeRobotDataset(repo_id="local/so101", root=v30, video_backend="pyav")
    assert (len(ds), ds.num_episodes) == (1782, 6)
    item = ds[1000]
    assert item["observation.images.wrist"].shape == (3, 360, 640)


def test_failed_write_leaves_previous_dataset_untouched(shards, tmp_path):
    dest = tmp_path / "release"
    shutil.copytree(shards[0], dest)
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
    with pytest.raises(LeRobotError):
        aggregate([shards[0], tmp_path / "missing"], dest)
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
