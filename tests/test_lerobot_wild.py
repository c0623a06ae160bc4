"""LeRobot datasets as they are published "in the wild": a declared camera whose MP4s are not shipped, GR00T
annotation keys in meta/modality.json, rows without frame_index or with timestamps not starting at 0, no
per-episode or dataset stats. ``robodata convert`` / ``import_lerobot`` / ``inspect`` convert what is there and
name each gap once; ``--strict`` refuses, writing nothing.

The v2.1 fixtures are written from lerobot's published layout (info.json, JSON-lines metadata, one parquet and
one MP4 per episode, written here with pyarrow and PyAV, not with robodata's writers); the v3.0 ones are the
real SO-101 dataset (../shared/realdata) copied and damaged.
"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robodata.formats.isaaclab import EpisodeStore
from robodata.inspect import format_inspection, inspect_path
from robodata.lerobot import LeRobotError, convert
from robodata.lerobot.importer import import_lerobot

SO101 = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "lerobot_v3_so101"
FPS = 10
FRAMES = 8
H, W = 32, 48
CAM = "observation.images.wrist"
TASKS = ["pick the cube", "place the cube"]


def _vec(name: str, n: int) -> dict:
    return {"dtype": "float32", "shape": [n], "names": [f"{name}_{i}" for i in range(n)]}


def _scalar(dtype: str = "int64") -> dict:
    return {"dtype": dtype, "shape": [1], "names": None}


def _stats(values: np.ndarray) -> dict:
    v = np.asarray(values, np.float64).reshape(len(values), -1)
    return {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
            "std": v.std(0).tolist(), "count": [len(v)]}  # fmt: skip


def _image_stats(frames: np.ndarray) -> dict:
    f = frames.astype(np.float64) / 255.0  # (n, h, w, 3) -> per channel, shape (3, 1, 1), as lerobot writes
    per = f.reshape(-1, 3)
    return {k: np.asarray(v).reshape(3, 1, 1).tolist() for k, v in
            (("min", per.min(0)), ("max", per.max(0)), ("mean", per.mean(0)), ("std", per.std(0)))} | {
        "count": [len(frames)]}  # fmt: skip


def _frames(episode: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([np.stack([(xx * 5 + i * 9 + episode * 40) % 256, (yy * 7 + i * 3) % 256,
                               np.full_like(xx, 60 + 20 * episode)], -1) for i in range(FRAMES)]).astype(np.uint8)  # fmt: skip


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS, options={"g": "2", "crf": "20"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.time_base = Fraction(1, FPS)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def groot_modality() -> dict:
    """A GR00T modality.json with the optional keys GR00T's loader accepts (Isaac-GR00T's examples)."""
    return {
        "state": {"arm": {"start": 0, "end": 3, "rotation_type": "axis_angle", "absolute": True, "dtype": "float32",
                          "range": [-3.14, 3.14]},
                  "gripper": {"start": 3, "end": 4}},
        "action": {"arm": {"start": 0, "end": 3, "absolute": False}, "gripper": {"start": 3, "end": 4}},
        "video": {"wrist": {"original_key": CAM}},
        "annotation": {"human.action.task_description": {}, "human.validity": {}},
    }  # fmt: skip


def write_published_v21(
    root: Path,
    *,
    episodes: int = 2,
    videos: bool = True,
    frame_index: bool = True,
    start_at: dict[int, float] | None = None,
    episodes_stats: bool = True,
    stats: bool = True,
    modality: dict | None = None,
) -> Path:
    """A LeRobot v2.1 dataset in the published layout (GR00T flavour when ``modality`` is given)."""
    features = {"observation.state": _vec("q", 4), "action": _vec("a", 4),
                CAM: {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channel"],
                      "info": {"video.height": H, "video.width": W, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                               "video.is_depth_map": False, "video.fps": FPS, "video.channels": 3, "has_audio": False}},
                "timestamp": _scalar("float32"), "frame_index": _scalar(), "episode_index": _scalar(),
                "index": _scalar(), "task_index": _scalar()}  # fmt: skip
    if modality is not None:
        features["annotation.human.action.task_description"] = _scalar()
        features["annotation.human.validity"] = _scalar()
    if not frame_index:
        del features["frame_index"]
    info = {"codebase_version": "v2.1", "robot_type": "so100", "total_episodes": episodes,
            "total_frames": episodes * FRAMES, "total_tasks": len(TASKS), "total_videos": episodes, "total_chunks": 1,
            "chunks_size": 1000, "fps": FPS, "splits": {"train": f"0:{episodes}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": features}  # fmt: skip
    meta = root / "meta"
    meta.mkdir(parents=True)
    (meta / "info.json").write_text(json.dumps(info, indent=4))
    (meta / "tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": t}) + "\n" for i, t in enumerate(TASKS)))
    ep_lines, stat_lines, all_rows, all_frames = [], [], [], []
    for e in range(episodes):
        t = np.arange(FRAMES)
        state = (np.sin(t[:, None] * 0.3 + np.arange(4)) + e).astype(np.float32)
        action = np.cos(t[:, None] * 0.3 + np.arange(4)).astype(np.float32)
        task = e % len(TASKS)
        ts = (t / FPS + (start_at or {}).get(e, 0.0)).astype(np.float32)
        cols = {"observation.state": pa.array(state.tolist(), pa.list_(pa.float32())),
                "action": pa.array(action.tolist(), pa.list_(pa.float32())),
                "timestamp": pa.array(ts), "frame_index": pa.array(t.astype(np.int64)),
                "episode_index": pa.array(np.full(FRAMES, e, np.int64)),
                "index": pa.array(np.arange(e * FRAMES, (e + 1) * FRAMES, dtype=np.int64)),
                "task_index": pa.array(np.full(FRAMES, task, np.int64))}  # fmt: skip
        if modality is not None:
            cols["annotation.human.action.task_description"] = pa.array(np.full(FRAMES, task, np.int64))
            cols["annotation.human.validity"] = pa.array((t % 3 != 0).astype(np.int64))
        if not frame_index:
            del cols["frame_index"]
        path = root / f"data/chunk-000/episode_{e:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), path)
        frames = _frames(e)
        if videos:
            _write_mp4(root / f"videos/chunk-000/{CAM}/episode_{e:06d}.mp4", frames)
        ep_lines.append({"episode_index": e, "tasks": [TASKS[task]], "length": FRAMES})
        ep_stats = {k: _stats(cols[k].to_numpy(zero_copy_only=False) if k not in ("observation.state", "action")
                              else (state if k == "observation.state" else action))
                    for k in cols}  # fmt: skip
        ep_stats[CAM] = _image_stats(frames)
        stat_lines.append({"episode_index": e, "stats": ep_stats})
        all_rows.append(np.concatenate([state, action], 1))
        all_frames.append(frames)
    (meta / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ep_lines))
    if episodes_stats:
        (meta / "episodes_stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stat_lines))
    if stats:
        rows = np.concatenate(all_rows)
        (meta / "stats.json").write_text(json.dumps({"observation.state": _stats(rows[:, :4]), "action": _stats(rows[:, 4:]),
                                                     CAM: _image_stats(np.concatenate(all_frames))}))  # fmt: skip
    if modality is not None:
        (meta / "modality.json").write_text(json.dumps(modality, indent=4))
    return root


def so101_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SO101, tmp_path / "so101"))


def load_v30(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id="local/wild", root=root, video_backend="pyav")


def lines(findings) -> list[str]:
    return [str(f) for f in findings]


def test_a_clean_published_v21_dataset_has_no_findings_and_loads_after_conversion(tmp_path):
    src = write_published_v21(tmp_path / "v21")
    report = convert(src, tmp_path / "v30", to="v3.0")
    assert report.findings == []
    ds = load_v30(report.path)
    assert (len(ds), ds.num_episodes, ds.meta.video_keys) == (2 * FRAMES, 2, [CAM])
    assert tuple(ds[FRAMES + 3][CAM].shape) == (3, H, W)


# (a) a declared video feature whose MP4s are not shipped


def test_v30_video_folder_not_shipped_converts_without_the_camera(tmp_path):
    src = so101_copy(tmp_path)
    shutil.rmtree(src / "videos")
    report = convert(src, tmp_path / "out", to="v3.0")
    assert lines(report.findings) == [
        f"warning: {CAM}: meta/info.json declares a video feature but "
        f"videos/{CAM}/chunk-000/file-000.mp4 is not shipped; the feature is left out"
    ]
    ds = load_v30(report.path)
    assert (len(ds), ds.num_episodes) == (1782, 6)
    assert CAM not in ds.meta.features and ds.meta.video_keys == []
    item = ds[500]
    assert CAM not in item and tuple(item["observation.state"].shape) == (6,)
    stats = json.loads((report.path / "meta/stats.json").read_text())
    assert CAM not in stats and "observation.state" in stats


def test_v21_videos_not_shipped_convert_to_both_versions_and_import(tmp_path):
    src = write_published_v21(tmp_path / "v21", videos=False, modality=groot_modality())
    expected = (f"warning: {CAM}: meta/info.json declares a video feature but none of its 2 files is shipped "
                f"(first: videos/chunk-000/{CAM}/episode_000000.mp4); the feature is left out")  # fmt: skip
    v30 = convert(src, tmp_path / "v30", to="v3.0")
    assert expected in lines(v30.findings)
    ds = load_v30(v30.path)
    assert len(ds) == 2 * FRAMES and ds.meta.video_keys == []
    v21 = convert(src, tmp_path / "again", to="v2.1")
    assert expected in lines(v21.findings)
    modality = json.loads((v21.path / "meta/modality.json").read_text())
    assert modality["video"] == {} and modality["annotation"] == groot_modality()["annotation"]
    assert not (v21.path / "videos").exists()
    summary = import_lerobot(src, tmp_path / "store.hdf5")
    assert expected in lines(summary["findings"]) and summary["cameras"] == []
    with EpisodeStore(tmp_path / "store.hdf5") as store:
        assert [f.name for f in store.schema.cameras] == []
        assert store.num_samples("demo_1") == FRAMES


# (b) GR00T's extra modality.json keys


def test_groot_documented_modality_keys_are_no_findings_and_pass_strict(tmp_path):
    src = write_published_v21(tmp_path / "groot", modality=groot_modality())
    v21 = convert(src, tmp_path / "v21", to="v2.1", strict=True)  # rotation_type, absolute, human.validity...
    assert v21.findings == []
    assert json.loads((v21.path / "meta/modality.json").read_text()) == groot_modality()
    t = pq.read_table(v21.path / "data/chunk-000/episode_000001.parquet")
    assert t.column("annotation.human.validity").to_pylist() == [int(i % 3 != 0) for i in range(FRAMES)]
    assert t.column("annotation.human.action.task_description").to_pylist() == [1] * FRAMES
    v30 = convert(src, tmp_path / "v30", to="v3.0", strict=True)
    assert v30.findings == []
    assert json.loads((v30.path / "meta/modality.json").read_text()) == groot_modality()
    ds = load_v30(v30.path)
    assert [int(ds[i]["annotation.human.validity"]) for i in (3, 4)] == [0, 1] and ds.meta.video_keys == [CAM]
    summary = import_lerobot(src, tmp_path / "store.hdf5", strict=True)
    assert summary["findings"] == []
    with EpisodeStore(tmp_path / "store.hdf5") as store:
        assert store.schema.extra["lerobot"]["modality"] == groot_modality()
        assert [f.name for f in store.schema.of_role("state")] == ["arm", "gripper"]
        assert "annotation.human.validity" in [f.name for f in store.schema.of_role("extra")]


def test_modality_keys_groot_does_not_know_are_named_and_kept(tmp_path):
    modality = groot_modality()
    modality["state"]["gripper"]["units"] = "m"
    modality["action"]["arm"]["rotation_type"] = "quat_xyzw"
    modality["cameras"] = {"wrist": "left"}
    src = write_published_v21(tmp_path / "groot", modality=modality)
    mpath = src / "meta/modality.json"
    v21 = convert(src, tmp_path / "v21", to="v2.1")
    assert lines(v21.findings) == [
        f"warning: {mpath}: extra key 'state.gripper.units'; kept",
        f"warning: {mpath}: action.arm.rotation_type 'quat_xyzw' is not one of GR00T's (axis_angle, quaternion, "
        "rotation_6d, matrix, euler_angles_rpy, euler_angles_ryp, euler_angles_pry, euler_angles_pyr, "
        "euler_angles_yrp, euler_angles_ypr); kept",
        f"warning: {mpath}: extra key 'cameras'; kept",
    ]
    assert json.loads((v21.path / "meta/modality.json").read_text()) == modality
    with pytest.raises(LeRobotError, match=r"3 finding\(s\), and --strict"):
        convert(src, tmp_path / "strict", to="v3.0", strict=True)
    assert not (tmp_path / "strict").exists()


def test_a_conforming_v20_dataset_has_no_findings_and_passes_strict(tmp_path):
    src = write_published_v21(tmp_path / "v20", episodes_stats=False)  # v2.0: no episodes_stats.jsonl, by design
    info = json.loads((src / "meta/info.json").read_text())
    (src / "meta/info.json").write_text(json.dumps(info | {"codebase_version": "v2.0"}))
    report = convert(src, tmp_path / "v30", to="v3.0", strict=True)
    assert report.findings == []
    assert len(load_v30(report.path)) == 2 * FRAMES
    episodes = pq.read_table(report.path / "meta/episodes/chunk-000/file-000.parquet")
    assert "stats/observation.state/mean" in episodes.column_names  # computed from the data all the same
    assert import_lerobot(src, tmp_path / "store.hdf5", strict=True)["findings"] == []
    # the same layout labelled v2.1 is a gap (v2.1 ships per-episode stats)
    (src / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotError, match=r"episodes_stats.jsonl: missing; per-episode stats recomputed"):
        convert(src, tmp_path / "strict", to="v3.0", strict=True)


def test_one_missing_episode_mp4_leaves_out_that_episode_only(tmp_path):
    src = write_published_v21(tmp_path / "src", episodes=3, modality=groot_modality())
    (src / f"videos/chunk-000/{CAM}/episode_000001.mp4").unlink()
    expected = [f"warning: {CAM}: episode 1: videos/chunk-000/{CAM}/episode_000001.mp4 is not shipped; "
                "the episode is left out"]  # fmt: skip
    v30 = convert(src, tmp_path / "v30", to="v3.0")
    assert lines(v30.findings) == expected
    ds = load_v30(v30.path)
    assert (len(ds), ds.num_episodes, ds.meta.video_keys) == (2 * FRAMES, 2, [CAM])  # the camera is kept
    last = ds[2 * FRAMES - 1]  # source episode 2, now episode 1: its own frames and rows
    assert int(last["episode_index"]) == 1 and int(last["index"]) == 2 * FRAMES - 1
    np.testing.assert_allclose(last["observation.state"].numpy(),
                               np.sin((FRAMES - 1) * 0.3 + np.arange(4)) + 2, rtol=1e-5)  # fmt: skip
    blue = last[CAM].numpy()[2].mean()  # channels first, 0..1
    assert abs(blue - (60 + 20 * 2) / 255) < 0.03
    v21 = convert(src, tmp_path / "v21", to="v2.1")
    assert lines(v21.findings) == expected
    assert sorted(p.name for p in (v21.path / f"videos/chunk-000/{CAM}").iterdir()) == [
        "episode_000000.mp4", "episode_000001.mp4"]  # fmt: skip
    summary = import_lerobot(src, tmp_path / "store.hdf5")
    assert lines(summary["findings"]) == expected and summary["skipped_episodes"] == [1]
    assert summary["cameras"] == ["wrist"]
    with EpisodeStore(tmp_path / "store.hdf5") as store:
        assert [store.attrs(n)["lerobot_episode_index"] for n in store.demo_names] == [0, 2]
        assert store.read("demo_1", images=True).obs["wrist"].shape == (FRAMES, H, W, 3)
    with pytest.raises(LeRobotError, match=r"1 finding\(s\), and --strict"):
        convert(src, tmp_path / "strict", to="v3.0", strict=True)
    # an episode chosen on its own whose video is there has no gap
    assert import_lerobot(src, tmp_path / "two.hdf5", episodes=[2], strict=True)["findings"] == []


def test_a_camera_missing_for_every_episode_is_one_finding(tmp_path):
    src = write_published_v21(tmp_path / "v21", episodes=3)
    shutil.rmtree(src / f"videos/chunk-000/{CAM}")
    report = convert(src, tmp_path / "v30", to="v3.0")
    assert lines(report.findings) == [
        f"warning: {CAM}: meta/info.json declares a video feature but none of its 3 files is shipped "
        f"(first: videos/chunk-000/{CAM}/episode_000000.mp4); the feature is left out"]  # fmt: skip
    assert len(load_v30(report.path)) == 3 * FRAMES


# (c) no frame_index column, timestamps that do not start at 0


def test_v30_rows_without_frame_index_and_an_offset_episode(tmp_path):
    src = so101_copy(tmp_path)
    path = src / "data/chunk-000/file-000.parquet"
    t = pq.read_table(path).drop_columns(["frame_index"])
    ts = t.column("timestamp").to_numpy().copy()
    ep = t.column("episode_index").to_numpy()
    ts[ep == 3] += np.float32(4.2)
    pq.write_table(t.set_column(t.column_names.index("timestamp"), "timestamp", pa.array(ts)), path)
    info = json.loads((src / "meta/info.json").read_text())
    del info["features"]["frame_index"]
    (src / "meta/info.json").write_text(json.dumps(info))
    report = convert(src, tmp_path / "out", to="v3.0")
    assert lines(report.findings) == [
        f"warning: {src / 'data'}: no frame_index column (all 6 episodes); made from row order",
        f"warning: {src / 'data'}: episode 3: timestamps start at 4.2 s; rebased to 0",
    ]
    ds = load_v30(report.path)
    assert (len(ds), ds.meta.video_keys) == (1782, [CAM])
    out = pq.read_table(report.path / "data/chunk-000/file-000.parquet")
    rows3 = out.filter(pa.compute.equal(out.column("episode_index"), 3))
    assert rows3.column("frame_index").to_pylist() == list(range(rows3.num_rows))
    assert rows3.column("timestamp").to_numpy()[0] == 0.0
    first = int(np.flatnonzero(out.column("episode_index").to_numpy() == 3)[0])
    item = ds[first + 10]
    assert int(item["frame_index"]) == 10 and abs(float(item["timestamp"]) - 10 / 30) < 1e-4


def test_v21_without_frame_index_imports_with_rebased_timestamps(tmp_path):
    src = write_published_v21(tmp_path / "v21", frame_index=False, start_at={1: 12.5})
    summary = import_lerobot(src, tmp_path / "store.hdf5")
    assert lines(summary["findings"]) == [
        f"warning: {src / 'data'}: no frame_index column (all 2 episodes); made from row order",
        f"warning: {src / 'data'}: episode 1: timestamps start at 12.5 s; rebased to 0",
    ]
    with EpisodeStore(tmp_path / "store.hdf5") as store:
        ep = store.read("demo_1", images=True)
        np.testing.assert_allclose(ep.timestamps, np.arange(FRAMES) / FPS, atol=1e-6)
        assert ep.obs["wrist"].shape == (FRAMES, H, W, 3)


# (d) no per-episode stats, no stats.json


def test_v21_without_any_stats_recomputes_them_from_the_data(tmp_path):
    src = write_published_v21(tmp_path / "v21", episodes_stats=False, stats=False)
    report = convert(src, tmp_path / "v30", to="v3.0")
    assert lines(report.findings) == [
        f"warning: {src / 'meta/episodes_stats.jsonl'}: missing; per-episode stats recomputed from the data",
        f"warning: {src / 'meta/stats.json'}: missing; aggregated from the per-episode stats",
    ]
    ds = load_v30(report.path)
    assert len(ds) == 2 * FRAMES
    stats = json.loads((report.path / "meta/stats.json").read_text())
    state = np.concatenate([np.sin(np.arange(FRAMES)[:, None] * 0.3 + np.arange(4)) + e for e in range(2)])
    np.testing.assert_allclose(stats["observation.state"]["min"], state.min(0), rtol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["max"], state.max(0), rtol=1e-6)
    cam = np.asarray(stats[CAM]["mean"])
    assert cam.shape == (3, 1, 1) and 0.0 < cam.min() and cam.max() < 1.0  # decoded from the MP4s
    blue = np.mean([(60 + 20 * e) / 255 for e in range(2)])
    assert abs(cam[2, 0, 0] - blue) < 0.03
    episodes = pq.read_table(report.path / "meta/episodes/chunk-000/file-000.parquet")
    assert f"stats/{CAM}/mean" in episodes.column_names


def test_v30_without_stats_json(tmp_path):
    src = so101_copy(tmp_path)
    shutil.rmtree(src / "videos")  # keeps the test fast: no video to copy
    (src / "meta/stats.json").unlink()
    report = convert(src, tmp_path / "out", to="v3.0")
    assert f"warning: {src / 'meta/stats.json'}: missing; aggregated from the per-episode stats" in lines(report.findings)
    assert len(load_v30(report.path)) == 1782
    assert "action" in json.loads((report.path / "meta/stats.json").read_text())


# --strict, inspect, bad input


def test_strict_refuses_every_finding_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from robodata.cli import main

    monkeypatch.setenv("ROBODATA_NO_REAPER", "1")
    src = write_published_v21(tmp_path / "v21", videos=False, episodes_stats=False)
    dst = tmp_path / "out"
    assert main(["convert", str(src), str(dst), "--to", "v3.0", "--strict"]) != 0
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}: 2 finding(s), and --strict makes each an error; nothing written:")
    assert f"{CAM}: meta/info.json declares a video feature" in err and "episodes_stats.jsonl: missing" in err
    assert not dst.exists() and [p.name for p in tmp_path.iterdir()] == ["v21"]
    with pytest.raises(LeRobotError, match="--strict"):
        import_lerobot(src, tmp_path / "store.hdf5", strict=True)
    assert not (tmp_path / "store.hdf5").exists()
    assert main(["convert", str(src), str(dst), "--to", "v3.0"]) == 0
    err = capsys.readouterr().err
    assert f"{src}: 2 finding(s), converted around" in err and "the feature is left out" in err
    assert len(load_v30(dst)) == 2 * FRAMES


def test_inspect_names_the_gaps(tmp_path):
    src = so101_copy(tmp_path)
    shutil.rmtree(src / "videos")
    d = inspect_path(src)
    assert d["findings"] == [f"warning: {CAM}: meta/info.json declares a video feature but "
                             f"videos/{CAM}/chunk-000/file-000.mp4 is not shipped; the feature is left out"]  # fmt: skip
    assert "gaps       1 (what robodata convert does about each)" in format_inspection(d)
    assert inspect_path(SO101)["findings"] == []


def test_bad_input_is_one_error_naming_the_file(tmp_path):
    src = write_published_v21(tmp_path / "v21")
    info = json.loads((src / "meta/info.json").read_text())
    (src / "meta/info.json").write_text(json.dumps({k: v for k, v in info.items() if k not in ("fps", "data_path")}))
    with pytest.raises(LeRobotError, match=r"v21/meta/info.json: lacks 'fps', 'data_path'$"):
        convert(src, tmp_path / "out")
    (src / "meta/info.json").write_text(json.dumps(info))
    (src / "data/chunk-000/episode_000001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(LeRobotError, match=r"episode_000001.parquet: not a readable parquet file"):
        convert(src, tmp_path / "out")
    with pytest.raises(LeRobotError, match=r"episode_000001.parquet: not a readable parquet file"):
        import_lerobot(src, tmp_path / "store.hdf5")
    assert not (tmp_path / "out").exists() and not (tmp_path / "store.hdf5").exists()
    (src / "meta/episodes.jsonl").write_text('{"episode_index": 0, "tasks": []}\n')
    with pytest.raises(LeRobotError, match=r"meta/episodes.jsonl: line 1 lacks 'length'"):
        convert(src, tmp_path / "out")
