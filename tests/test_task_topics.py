"""Task strings from the recording: a ``/task`` topic (``std_msgs/String``) names each episode's instruction.

A ROS 2 MCAP teleop log whose operator switches task between episodes is ingested with
``task: {topic: /task, field: data}``; each demo carries its task, the LeRobot v3.0 conversion gets one task
index per distinct task, and lerobot's own ``LeRobotDataset`` reads the right string on every frame. The same
holds for a ROS 1 bag written by the ``rosbags`` library's own writer (another tool's file, not robodata's).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from robodata.formats.isaaclab import EpisodeStore
from robodata.ingest import IngestError, ingest_recording
from robodata.lerobot.convert import convert
from robodata.ros2.mcap_writer import McapRos2Writer, header, image_message
from robodata.topicmap import TopicMapError, load_topic_map
from tests.recordings import SMALL_TOPIC_MAP

T0 = 1_700_000_000_000_000_000
H, W = 48, 64
FPS = 30
FRAMES = 24  # per episode
RED, BIN = "pick up the red cube", "put the cube in the bin"


def _topic_map(task: Any, **over: Any) -> dict[str, Any]:
    return {**SMALL_TOPIC_MAP, "task": task, "fps": FPS, **over}


def _record(path: Path, episode_starts: list[float], tasks: list[tuple[float, str]],
            markers: Sequence[tuple[float, str]] = ()) -> Path:
    """Camera + commands at 30 Hz and joints at 100 Hz during each episode (gaps between them), and the
    ``/task`` (and ``/episode``) String messages at the given times (seconds from the start)."""
    w = McapRos2Writer(path)
    events: list[tuple[float, str, Any]] = []
    for e, start in enumerate(episode_starts):
        for k in range(FRAMES):
            t = start + k / FPS
            img = np.full((H, W, 3), 40 * e, np.uint8)
            img[:, : 2 * k + 1, 1] = 220
            events.append((t, "img", img))
            events.append((t + 0.0005, "cmd", [float(e), float(k)]))
        for t in np.arange(start - 0.03, start + FRAMES / FPS + 0.03, 0.01):
            events.append((float(t), "joint", [np.sin(t), np.cos(t)]))
    events += [(t, "task", text) for t, text in tasks]
    events += [(t, "marker", text) for t, text in markers]
    events.sort(key=lambda ev: ev[0])
    for t, kind, val in events:
        ns = T0 + int(round(t * 1e9))
        if kind == "img":
            w.write("/cam/image_raw", "sensor_msgs/msg/Image", image_message(ns, "cam", val), log_time_ns=ns)
        elif kind == "cmd":
            w.write("/cmd", "std_msgs/msg/Float32MultiArray",
                    {"layout": {"dim": [], "data_offset": 0}, "data": val}, log_time_ns=ns)
        elif kind == "joint":
            w.write("/joint_states", "sensor_msgs/msg/JointState",
                    {"header": header(ns, "base"), "name": ["j1", "j2"], "position": val, "velocity": [], "effort": []},
                    log_time_ns=ns)
        else:
            topic = "/task" if kind == "task" else "/episode"
            w.write(topic, "std_msgs/msg/String", {"data": val}, log_time_ns=ns)
    w.close()
    return path


# Four episodes 2 s apart. Episode 0 has no task before it, only one inside; episode 1's task comes in the gap
# before it; episode 2 gets none of its own (the last one before it holds); episode 3 goes back to the first task.
STARTS = [0.0, 2.0, 4.0, 6.0]
TASKS = [(0.3, RED), (1.5, BIN), (5.9, RED)]
EXPECTED = [RED, BIN, BIN, RED]


@pytest.fixture(scope="module")
def teleop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _record(tmp_path_factory.mktemp("task") / "teleop.mcap", STARTS, TASKS)


@pytest.fixture(scope="module")
def ingested(teleop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "raw.hdf5"
    rep = ingest_recording(teleop, out, load_topic_map(_topic_map({"topic": "/task", "field": "data"})))
    assert [e.frames for e in rep.episodes] == [FRAMES] * 4
    return out


def test_each_demo_carries_the_task_of_its_episode(ingested: Path) -> None:
    with EpisodeStore(ingested) as es:
        assert [es.attrs(n)["task"] for n in es.demo_names] == EXPECTED
        assert es.schema.task == ""  # no fixed task: each demo says its own


def test_lerobot_v3_has_one_task_index_per_distinct_task(ingested: Path, tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    report = convert(ingested, tmp_path / "v30", video_codec="libx264")
    root = report.path
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert sorted(tasks.index) == sorted([RED, BIN]) and sorted(tasks["task_index"]) == [0, 1]
    index_of = dict(zip(tasks.index, tasks["task_index"], strict=True))
    data = pd.read_parquet(root / "data/chunk-000/file-000.parquet")
    per_episode = data.groupby("episode_index")["task_index"].unique()
    assert [list(v) for v in per_episode] == [[index_of[t]] for t in EXPECTED]
    ds = LeRobotDataset(repo_id="local/tasks", root=root, video_backend="pyav")
    assert (len(ds), ds.num_episodes) == (4 * FRAMES, 4)
    for e, task in enumerate(EXPECTED):
        for fi in (0, FRAMES - 1):
            item = ds[e * FRAMES + fi]
            assert (int(item["episode_index"]), int(item["frame_index"])) == (e, fi)
            assert item["task"] == task
    assert ds.meta.total_tasks == 2


def test_marker_episodes_without_a_task_fall_back_to_the_default(tmp_path: Path) -> None:
    # Markers start and stop each episode; only the second episode has a task (inside it); the first has none
    # before or inside it, so it gets the default; the third inherits the second's.
    src = _record(tmp_path / "markers.mcap", [0.0, 2.0, 4.0], [(2.4, BIN)],
                  markers=[(-0.01, "start"), (0.9, "stop"), (1.99, "start"), (2.9, "stop"), (3.99, "start")])
    tm = _topic_map({"topic": "/task", "default": "tidy up"}, episodes={"split": "marker", "topic": "/episode"})
    out = tmp_path / "raw.hdf5"
    ingest_recording(src, out, load_topic_map(tm))
    with EpisodeStore(out) as es:
        assert [es.attrs(n)["task"] for n in es.demo_names] == ["tidy up", BIN, BIN]
        assert es.schema.task == "tidy up"


def test_no_task_messages_fall_back_to_the_recording_name(tmp_path: Path) -> None:
    src = _record(tmp_path / "pour_nut.mcap", [0.0, 2.0], [(0.5, "   ")])  # an empty message is no task
    out = tmp_path / "raw.hdf5"
    ingest_recording(src, out, load_topic_map(_topic_map({"topic": "/task"})))
    with EpisodeStore(out) as es:
        assert [es.attrs(n)["task"] for n in es.demo_names] == ["pour_nut", "pour_nut"]


def test_plain_task_string_still_works_and_writes_no_demo_task(teleop: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.hdf5"
    ingest_recording(teleop, out, load_topic_map(_topic_map("stack blocks")))
    with EpisodeStore(out) as es:
        assert es.schema.task == "stack blocks"
        assert all("task" not in es.attrs(n) for n in es.demo_names)


def test_missing_task_topic_is_one_clear_error_unless_optional(tmp_path: Path) -> None:
    src = _record(tmp_path / "no_task.mcap", [0.0], [])
    with pytest.raises(IngestError, match=r"no_task.mcap: topic /instruction \(the task instruction\) is not in the "
                                          r"recording; topics: .*/cam/image_raw"):
        ingest_recording(src, tmp_path / "a.hdf5", load_topic_map(_topic_map({"topic": "/instruction"})))
    assert not (tmp_path / "a.hdf5").exists()
    out = tmp_path / "b.hdf5"
    ingest_recording(src, out, load_topic_map(_topic_map({"topic": "/instruction", "optional": True, "default": "wave"})))
    with EpisodeStore(out) as es:
        assert [es.attrs(n)["task"] for n in es.demo_names] == ["wave"]


def test_task_field_that_is_not_text_names_topic_and_field(teleop: Path, tmp_path: Path) -> None:
    tm = _topic_map({"topic": "/joint_states", "field": "position"})
    with pytest.raises(IngestError, match=r"teleop.mcap: topic /joint_states -> task: field 'position' of "
                                          r"sensor_msgs/msg/JointState is a .*, not a string"):
        ingest_recording(teleop, tmp_path / "x.hdf5", load_topic_map(tm))
    with pytest.raises(IngestError, match=r"topic /task -> task: .*no field 'text'"):
        ingest_recording(teleop, tmp_path / "y.hdf5", load_topic_map(_topic_map({"topic": "/task", "field": "text"})))


def test_bad_task_mapping_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("task: {topic: /task, feild: data}\nreference: {topic: /cam}\nfeatures:\n"
                    "  - {name: s, topic: /j, role: state}\n  - {name: a, topic: /c, role: action}\n")
    with pytest.raises(TopicMapError, match=r"map.yaml: task.*feild"):
        load_topic_map(path)


def _record_ros1_bag(path: Path, episode_starts: list[float], tasks: list[tuple[float, str]]) -> Path:
    """A ROS 1 bag written with rosbags' writer: camera (sensor_msgs/Image) and /cmd at 30 Hz, joint states at
    100 Hz in each episode, and a std_msgs/String on /task per episode."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    t = ts.types
    Image, Header, Time = t["sensor_msgs/msg/Image"], t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"]
    JointState, String = t["sensor_msgs/msg/JointState"], t["std_msgs/msg/String"]
    Floats, Layout = t["std_msgs/msg/Float32MultiArray"], t["std_msgs/msg/MultiArrayLayout"]
    events: list[tuple[float, str, Any]] = []
    for e, start in enumerate(episode_starts):
        for k in range(FRAMES):
            events += [(start + k / FPS, "img", e), (start + k / FPS + 0.0005, "cmd", [float(e), float(k)])]
        events += [(float(x), "joint", [np.sin(x), np.cos(x)])
                   for x in np.arange(start - 0.03, start + FRAMES / FPS + 0.03, 0.01)]  # fmt: skip
    events += [(x, "task", text) for x, text in tasks]
    events.sort(key=lambda ev: ev[0])
    with Writer(path) as w:
        conns = {topic: w.add_connection(topic, typ.__msgtype__, typestore=ts) for topic, typ in (
            ("/cam/image_raw", Image), ("/joint_states", JointState), ("/cmd", Floats), ("/task", String))}  # fmt: skip
        for seq, (x, kind, val) in enumerate(events):
            ns = T0 + int(round(x * 1e9))
            hdr = Header(seq=seq, stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="cam")
            if kind == "img":
                img = np.full((H, W, 3), 40 * val, np.uint8)
                topic, m = "/cam/image_raw", Image(header=hdr, height=H, width=W, encoding="rgb8", is_bigendian=0,
                                                   step=W * 3, data=img.reshape(-1))  # fmt: skip
            elif kind == "cmd":
                topic, m = "/cmd", Floats(layout=Layout(dim=[], data_offset=0), data=np.array(val, np.float32))
            elif kind == "joint":
                topic, m = "/joint_states", JointState(header=hdr, name=["j1", "j2"], position=np.array(val),
                                                       velocity=np.array([]), effort=np.array([]))  # fmt: skip
            else:
                topic, m = "/task", String(data=val)
            w.write(conns[topic], ns, ts.serialize_ros1(m, conns[topic].msgtype))
    return path


def test_a_ros1_bag_from_rosbags_gives_per_episode_tasks_and_task_indices(tmp_path: Path) -> None:
    src = _record_ros1_bag(tmp_path / "teleop.bag", [0.0, 2.0, 4.0], [(-0.5, RED), (1.8, BIN), (3.9, RED)])
    out = tmp_path / "raw.hdf5"
    rep = ingest_recording(src, out, load_topic_map(_topic_map({"topic": "/task", "field": "data"})))
    assert [e.frames for e in rep.episodes] == [FRAMES] * 3
    with EpisodeStore(out) as es:
        assert [es.attrs(n)["task"] for n in es.demo_names] == [RED, BIN, RED]
    root = convert(out, tmp_path / "v30", video_codec="libx264").path
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert sorted(tasks.index) == sorted([RED, BIN]) and sorted(tasks["task_index"]) == [0, 1]
    index_of = dict(zip(tasks.index, tasks["task_index"], strict=True))
    data = pd.read_parquet(root / "data/chunk-000/file-000.parquet")
    per_episode = data.groupby("episode_index")["task_index"].unique()
    assert [list(v) for v in per_episode] == [[index_of[RED]], [index_of[BIN]], [index_of[RED]]]
    episodes = pd.read_parquet(root / "meta/episodes/chunk-000/file-000.parquet")
    assert [list(t) for t in episodes["tasks"]] == [[RED], [BIN], [RED]]
