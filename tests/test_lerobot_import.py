"""LeRobot -> episode store (import_lerobot), its round trip back to LeRobot, and ``robodata convert`` from an MCAP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robodata.formats.isaaclab import EpisodeStore
from robodata.lerobot import LeRobotError, convert, validate_dataset
from robodata.lerobot.importer import import_lerobot
from robodata.lerobot.metadata import read_meta
from robodata.lerobot.source import episode_rows, to_numpy
from robodata.lerobot.validate import ERROR

REPO = Path(__file__).resolve().parents[1]
SO101 = REPO.parent / "shared" / "realdata" / "lerobot_v3_so101"
EPISODES = [0, 1]


def _source_vectors(root: Path, episodes: list[int]) -> dict[int, dict[str, np.ndarray]]:
    meta = read_meta(root)
    eps = {e.index: e for e in meta.episodes}
    out = {}
    for i in episodes:
        rows = episode_rows(meta, eps[i])
        out[i] = {k: to_numpy(rows.column(k)).astype(np.float32) for k in ("observation.state", "action")}
    return out


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("import") / "so101.hdf5"
    seen: list[float] = []
    report = import_lerobot(SO101, out, episodes=EPISODES, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0)
    return out, report


def test_import_real_dataset_matches_the_source(imported):
    out, report = imported
    meta = read_meta(SO101)
    lengths = {e.index: e.length for e in meta.episodes}
    src = _source_vectors(SO101, EPISODES)
    assert report["episodes"] == 2 and report["frames"] == sum(lengths[i] for i in EPISODES)
    with EpisodeStore(out) as store:
        assert store.demo_names == ["demo_0", "demo_1"]
        assert store.schema.fps == 30 and store.schema.robot_type == "so101_follower"
        assert store.schema.task == "pick and place"
        assert [(f.name, f.role) for f in store.schema.features] == [("state", "state"), ("action", "action"), ("wrist", "image")]
        assert store.schema.features[0].names == ["j0", "j1", "j2", "j3", "j4", "j5"]
        for demo, i in zip(store.demo_names, EPISODES, strict=True):
            n = lengths[i]
            assert store.num_samples(demo) == n
            attrs = store.attrs(demo)
            assert attrs["task"] == "pick and place" and attrs["lerobot_episode_index"] == i
            g = store.group(demo)
            np.testing.assert_array_equal(g["obs/state"][()], src[i]["observation.state"])
            np.testing.assert_array_equal(g["states"][()], src[i]["observation.state"])
            np.testing.assert_array_equal(g["actions"][()], src[i]["action"])
            np.testing.assert_allclose(store.timestamps(demo), np.arange(n) / 30.0)
            img = g["obs/wrist"]
            assert img.shape == (n, 360, 640, 3) and img.dtype == np.uint8
            last = img[n - 1]
            assert last.std() > 1.0  # a real picture, not a blank frame


def test_imported_store_round_trips_to_lerobot_v30(imported, tmp_path):
    out, _ = imported
    dst = tmp_path / "v30"
    report = convert(out, dst, to="v3.0")
    assert report.episodes == 2
    back = read_meta(dst)
    assert back.features["observation.state"]["names"] == ["j0", "j1", "j2", "j3", "j4", "j5"]
    assert back.features["observation.images.wrist"]["shape"] == [360, 640, 3]
    assert back.tasks == ["pick and place"] and back.info["robot_type"] == "so101_follower"
    src = _source_vectors(SO101, EPISODES)
    got = _source_vectors(dst, [0, 1])
    for new, old in enumerate(EPISODES):
        for k in ("observation.state", "action"):
            assert got[new][k].dtype == np.float32
            np.testing.assert_array_equal(got[new][k], src[old][k])
    table = pq.read_table(dst / "data/chunk-000/file-000.parquet")
    assert table.column("timestamp").to_numpy()[:3].tolist() == pytest.approx([0, 1 / 30, 2 / 30])


def test_import_errors_name_the_path(tmp_path):
    with pytest.raises(LeRobotError, match="not a LeRobot dataset"):
        import_lerobot(tmp_path, tmp_path / "x.hdf5")
    # A copy without its video: --strict refuses naming the missing MP4 and leaves no store behind; without it
    # the camera is left out, said as a finding.
    ds = tmp_path / "ds"
    shutil.copytree(SO101 / "meta", ds / "meta")
    shutil.copytree(SO101 / "data", ds / "data")
    for p in (ds, *ds.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)  # the source is read-only
    with pytest.raises(LeRobotError, match=r"--strict.*\n.*file-000\.mp4 is not shipped; the feature is left out"):
        import_lerobot(ds, tmp_path / "y.hdf5", episodes=[0], strict=True)
    assert not (tmp_path / "y.hdf5").exists()
    summary = import_lerobot(ds, tmp_path / "y.hdf5", episodes=[0])
    assert summary["cameras"] == [] and "file-000.mp4 is not shipped" in str(summary["findings"][0])
    (tmp_path / "y.hdf5").unlink()
    # Metadata claiming more frames than the video holds: a frame count mismatch naming the video.
    (ds / "videos").symlink_to(SO101 / "videos")
    info = json.loads((ds / "meta/info.json").read_text())
    ep_file = ds / "meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(ep_file)
    to = t.column("videos/observation.images.wrist/to_timestamp").to_numpy().copy()
    to[5] -= 10 / info["fps"]  # the last episode's video span loses 10 frames
    t = t.set_column(t.column_names.index("videos/observation.images.wrist/to_timestamp"),
                     "videos/observation.images.wrist/to_timestamp", pa.array(to))  # fmt: skip
    pq.write_table(t, ep_file)
    with pytest.raises(LeRobotError, match=r"file-000\.mp4: episode 5 .*frame count mismatch"):
        import_lerobot(ds, tmp_path / "z.hdf5", episodes=[5])
    with pytest.raises(LeRobotError, match="no episodes"):
        import_lerobot(SO101, tmp_path / "z.hdf5", episodes=[99])


def test_cli_converts_an_mcap_with_a_topic_map(tmp_path, capsys):
    from robodata.cli import main
    from robodata.sim.recorder import record_session

    rec = record_session(tmp_path, "s", n_episodes=1, seed=0, image_hw=(48, 64), formats=("mcap",))
    out = tmp_path / "out"
    tm = str(REPO / "robodata/sim/demo_topic_map.yaml")
    assert main(["convert", str(rec["mcap"]), str(out), "--to", "v2.1"]) == 2
    assert "--topic-map" in capsys.readouterr().err
    code = main(["convert", str(rec["mcap"]), str(out), "--to", "v2.1", "--topic-map", tm, "--codec", "libx264"])
    assert code == 0, capsys.readouterr().err
    modality = json.loads((out / "meta/modality.json").read_text())
    assert set(modality["state"]) >= {"joint_pos", "gripper"} and "action" in modality["action"]
    assert set(modality["video"]) == {"front", "wrist"}
    assert [f for f in validate_dataset(out) if f.severity == ERROR] == []
    assert not [p for p in tmp_path.iterdir() if ".ingest-" in p.name]  # the temporary store is gone
