"""The LeRobot tier refuses or reports bad input with one clear sentence naming the file."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robodata.errors import RobodataError
from robodata.lerobot import LeRobotError, aggregate, convert, validate_dataset, write_shard
from robodata.lerobot.cli import add_subcommands
from robodata.lerobot.validate import exit_code
from robodata.lerobot.video import cut, probe

SMALL = (("cam", (32, 48, 3)),)


def _sibling(name: str):
    """The store maker from test_lerobot.py (tests are not a package; load the sibling file by path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_robodata_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


make_store = _sibling("test_lerobot").make_store


@pytest.fixture(scope="module")
def groot(tmp_path_factory) -> Path:
    """A small v2.1 (GR00T) dataset made from a two-episode store."""
    tmp = tmp_path_factory.mktemp("groot")
    store = make_store(tmp / "s.hdf5", episodes=2, frames=20, cameras=SMALL)
    return convert(store, tmp / "v21", to="v2.1", video_codec="libx264").path


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def messages(findings) -> str:
    return "\n".join(str(f) for f in findings if f.severity == "error")


def test_shards_with_different_features_are_refused_naming_the_shard(tmp_path):
    a = write_shard(make_store(tmp_path / "a.hdf5", 1, 10, cameras=SMALL), tmp_path / "a", video_codec="libx264")
    b = write_shard(make_store(tmp_path / "b.hdf5", 1, 10, cameras=(("cam", (32, 32, 3)),)), tmp_path / "b",
                    video_codec="libx264")  # fmt: skip
    with pytest.raises(LeRobotError, match=r"/b: features differ from .*different \['observation.images.cam'\]"):
        aggregate([a.path, b.path], tmp_path / "release")
    assert not (tmp_path / "release").exists()
    assert issubclass(LeRobotError, RobodataError)


def test_validate_finds_an_episode_with_a_dropped_video_frame(groot, tmp_path):
    ds = copy(groot, tmp_path / "ds")
    video = ds / "videos/chunk-000/observation.images.cam/episode_000001.mp4"
    short = tmp_path / "short.mp4"
    assert cut(video, short, 0.0, 19 / 30, 30) == 19
    shutil.move(short, video)
    findings = validate_dataset(ds)
    assert "episode_000001.mp4 (episode 1): 19 video frames for 20 rows" in messages(findings)
    assert exit_code(findings) == 1
    with pytest.raises(LeRobotError, match=r"episode_000001.mp4: 19 video frames"):
        convert(ds, tmp_path / "v30", to="v3.0")
    assert not (tmp_path / "v30").exists()


def test_corrupt_mp4_gives_a_clear_error(groot, tmp_path):
    ds = copy(groot, tmp_path / "ds")
    video = ds / "videos/chunk-000/observation.images.cam/episode_000000.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(LeRobotError, match=r"episode_000000.mp4: not a readable MP4 video"):
        probe(video)
    assert "episode_000000.mp4: not a readable MP4 video" in messages(validate_dataset(ds))
    with pytest.raises(LeRobotError, match=r"episode_000000.mp4"):
        convert(ds, tmp_path / "v30", to="v3.0")


def test_modality_slice_beyond_the_state_width(groot, tmp_path):
    ds = copy(groot, tmp_path / "ds")
    modality = json.loads((ds / "meta/modality.json").read_text())
    modality["state"]["gripper"] = {"start": 6, "end": 9}
    (ds / "meta/modality.json").write_text(json.dumps(modality))
    assert "state.gripper slice [6, 9) is outside observation.state of width 7" in messages(validate_dataset(ds))
    with pytest.raises(LeRobotError, match=r"modality.json: state.gripper slice \[6, 9\)"):
        aggregate([ds], tmp_path / "again", version="v2.1")


def test_v20_dataset_without_frame_index_converts_with_derived_indices(groot, tmp_path):
    ds = copy(groot, tmp_path / "v20")
    info = json.loads((ds / "meta/info.json").read_text())
    info["codebase_version"] = "v2.0"
    del info["features"]["frame_index"]
    (ds / "meta/info.json").write_text(json.dumps(info))
    (ds / "meta/episodes_stats.jsonl").unlink()  # v2.0 had no per-episode stats
    for f in sorted(ds.glob("data/chunk-000/*.parquet")):
        t = pq.read_table(f)
        t = t.drop_columns(["frame_index"])
        jitter = t.column("timestamp").to_numpy() + np.float32(0.003)  # recorded wall-clock jitter
        t = t.set_column(t.column_names.index("timestamp"), "timestamp", pa.array(jitter))
        pq.write_table(t, f)
    found = messages(validate_dataset(ds))
    assert "timestamps differ from frame_index/fps" in found
    out = convert(ds, tmp_path / "v30", to="v3.0").path
    assert not validate_dataset(out)
    t = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert t.column("frame_index").to_pylist() == list(range(20)) * 2
    np.testing.assert_allclose(t.column("timestamp").to_numpy(), np.tile(np.arange(20) / 30, 2), atol=1e-6)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    assert len(LeRobotDataset(repo_id="local/v20", root=out, video_backend="pyav")) == 40


def test_nan_in_the_state_fails_validate_and_is_never_converted(groot, tmp_path):
    """A dataset from the field with NaN in observation.state (a dropped joint reading) and inf in action:
    validate says which feature, how many values and the first frame; convert refuses it, writing nothing."""
    ds = copy(groot, tmp_path / "nan")
    f = sorted(ds.glob("data/chunk-000/*.parquet"))[1]  # episode 1
    t = pq.read_table(f)
    state = np.stack(t.column("observation.state").to_numpy(zero_copy_only=False)).astype(np.float32)
    state[7, 2] = np.nan
    state[9, 0] = np.nan
    action = np.stack(t.column("action").to_numpy(zero_copy_only=False)).astype(np.float32)
    action[3, 1] = np.inf
    for name, v in (("observation.state", state), ("action", action)):
        arr = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
        t = t.set_column(t.column_names.index(name), name, pa.array(arr.to_pylist(), type=t.schema.field(name).type))
    pq.write_table(t, f)
    found = messages(validate_dataset(ds))
    assert f"{f} (episode 1): observation.state: 2 non-finite values (NaN or inf), first at frame 7" in found
    assert "action: 1 non-finite values (NaN or inf), first at frame 3" in found
    assert exit_code(validate_dataset(ds)) != 0
    with pytest.raises(LeRobotError, match=r"episode 1\): observation.state: 2 non-finite .* not converted"):
        convert(ds, tmp_path / "v30", to="v3.0")
    assert not (tmp_path / "v30").exists()
    assert not messages(validate_dataset(groot))  # the clean original has none


def test_missing_store_and_non_dataset_are_named(tmp_path):
    with pytest.raises(LeRobotError, match=r"nope.hdf5: no such file"):
        write_shard(tmp_path / "nope.hdf5", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LeRobotError, match=r"empty: neither a LeRobot dataset"):
        convert(tmp_path / "empty", tmp_path / "out")
    assert "meta/info.json: file is missing" in messages(validate_dataset(tmp_path / "empty"))


def test_cli_subcommands(groot, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="robodata")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["validate", str(groot)])
    assert args.func(args) == 0
    args = parser.parse_args(["convert", str(groot), str(tmp_path / "v30"), "--to", "v3.0"])
    assert args.func(args) == 0
    assert "2 episodes, 40 frames" in capsys.readouterr().out
    broken = copy(groot, tmp_path / "broken")
    (broken / "meta/tasks.jsonl").write_text("")
    args = parser.parse_args(["validate", str(broken)])
    assert args.func(args) == 1
