"""``inspect_path`` / ``format_inspection`` on real bags, a real LeRobot dataset and an Isaac Lab HDF5 store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robodata.errors import RobodataError
from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec
from robodata.inspect import format_inspection, inspect_path

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
R2 = REALDATA / "rosbag2"


def test_ros1_bag():
    d = inspect_path(REALDATA / "rosbag_js" / "example-lz4.bag")
    assert d["kind"] == "recording" and d["storage"] == "rosbag1" and d["message_count"] == 8647
    assert d["duration_s"] == pytest.approx(21.700, abs=1e-3)
    topics = {t["name"]: t for t in d["topics"]}
    pose = topics["/turtle1/pose"]
    assert pose["type"] == "turtlesim/msg/Pose" and pose["count"] == 1344
    assert pose["rate_hz"] == pytest.approx(62.5, abs=0.1)
    assert pose["period_mean_ms"] == pytest.approx(16.0, abs=0.1) and 0 < pose["jitter_ms"] < 1
    assert topics["/tf_static"]["jitter_ms"] is None  # one message: no gaps
    text = format_inspection(d)
    assert "rosbag1" in text and "8647" in text and "turtlesim/msg/Pose" in text and "jitter ms" in text
    assert "2014-03-31T19:24:47.844Z" in text


def test_empty_bag():
    d = inspect_path(REALDATA / "rosbag_js" / "no-messages.bag")
    assert d["message_count"] == 0 and d["topics"] == []
    assert "(no topics)" in format_inspection(d)


def test_split_ros2_bag_and_mcap_file():
    d = inspect_path(R2 / "rosbag2_py/test/resources/mcap/wbag")
    assert d["storage"] == "rosbag2/mcap" and d["message_count"] == 6074 and len(d["topics"]) == 8
    m = inspect_path(R2 / "rosbag2_py/test/resources/mcap/talker/talker.mcap")
    topics = {t["name"]: t for t in m["topics"]}
    assert m["storage"] == "mcap" and m["has_summary"] and m["truncated"] is None
    assert topics["/parameter_events"]["count"] == 0 and topics["/parameter_events"]["rate_hz"] is None
    assert topics["/topic"]["period_mean_ms"] == pytest.approx(503.4, abs=1)  # 10 messages over 4.53 s
    assert "rcl_interfaces/msg/Log" in format_inspection(m)


def test_truncated_mcap_is_inspected_and_flagged(tmp_path):
    src = R2 / "rosbag2_py/test/resources/mcap/talker/talker.mcap"
    cut = tmp_path / "talker.mcap"
    cut.write_bytes(src.read_bytes()[:2000])
    d = inspect_path(cut)
    assert d["truncated"].startswith("truncated MCAP (no footer; the file ends mid-record at byte 2000")
    assert "TRUNCATED" in format_inspection(d)


def test_lerobot_v3_dataset():
    d = inspect_path(REALDATA / "lerobot_v3_so101")
    assert d["kind"] == "lerobot" and d["codebase_version"] == "v3.0"
    assert (d["fps"], d["robot_type"], d["episodes"], d["frames"]) == (30, "so101_follower", 6, 1782)
    assert d["tasks"] == ["pick and place"] and d["video_keys"] == ["observation.images.wrist"]
    feats = {f["name"]: f for f in d["features"]}
    assert feats["observation.state"] == {"name": "observation.state", "dtype": "float32", "shape": [6]}
    assert feats["observation.images.wrist"]["shape"] == [360, 640, 3]
    assert d["episode_length"] == {"min": 90, "max": 386, "mean": 297.0}
    text = format_inspection(d)
    assert "LeRobot v3.0" in text and "so101_follower" in text and "pick and place" in text


def test_isaaclab_hdf5(tmp_path):
    schema = EpisodeSchema(
        [
            FeatureSpec("joints", "state", (2,)),
            FeatureSpec("cam", "image", (4, 5, 3), "uint8"),
            FeatureSpec("cmd", "action", (2,)),
        ],
        fps=15.0,
        task="wave",
    )
    path = tmp_path / "demos.hdf5"
    with EpisodeStoreWriter(path, schema, env_name="Test-Wave-v0") as store:
        for i, (n, ok) in enumerate([(10, True), (7, False), (4, None)]):
            demo = store.begin_episode()
            demo.extend(
                np.arange(n) / 15.0,
                {"joints": np.zeros((n, 2)), "cam": np.zeros((n, 4, 5, 3), np.uint8), "cmd": np.ones((n, 2)) * i},
            )
            demo.close(success=ok)
    d = inspect_path(path)
    assert d["kind"] == "isaaclab_hdf5" and d["env_name"] == "Test-Wave-v0" and d["fps"] == 15.0
    assert (d["demos"], d["frames"]) == (3, 21)
    assert d["success"] == {"true": 1, "false": 1, "unknown": 1}
    assert {f["name"]: f["shape"] for f in d["features"]} == {"joints": [2], "cam": [4, 5, 3], "cmd": [2]}
    text = format_inspection(d)
    assert "demos      3  (success: 1, failed: 1, unknown: 1)" in text and "4x5x3" in text


def test_unknown_and_missing_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    for p, pattern in [(tmp_path / "notes.txt", "not something robodata can inspect"), (tmp_path / "nope", "no such file")]:
        with pytest.raises(RobodataError, match=pattern) as e:
            inspect_path(p)
        assert str(p) in str(e.value)
    (tmp_path / "broken.hdf5").write_text("not hdf5")
    with pytest.raises(RobodataError, match="broken.hdf5"):
        inspect_path(tmp_path / "broken.hdf5")


def test_a_folder_of_no_known_kind_says_which_marker_file_it_lacks(tmp_path):
    (tmp_path / "run_3").mkdir()
    (tmp_path / "run_3" / "images").mkdir()
    with pytest.raises(RobodataError) as e:
        inspect_path(tmp_path / "run_3")
    assert str(e.value) == (
        f"{tmp_path / 'run_3'}: a folder, but not a ROS 2 bag folder (it has no metadata.yaml) "
        "nor a LeRobot dataset folder (it has no meta/info.json)"
    )
