"""Recording readers on real bags (ROS 1, ROS 2 sqlite3/MCAP, split, compressed, empty) and damaged copies."""

from __future__ import annotations

import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from robodata.errors import RobodataError
from robodata.readers import (
    McapRecordingReader,
    RecordingError,
    RecordingWarning,
    RosbagsRecordingReader,
    open_recording,
)
from robodata.ros2.mcap_writer import McapRos2Writer, header, image_message

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
JS = REALDATA / "rosbag_js"
R2 = REALDATA / "rosbag2"
TALKER_MCAP = R2 / "rosbag2_py/test/resources/mcap/talker"
TALKER_SQLITE = R2 / "rosbag2_py/test/resources/sqlite3/talker"
WBAG = R2 / "rosbag2_py/test/resources/mcap/wbag"
CDR_MCAP = R2 / "rosbag2_tests/resources/mcap/cdr_test"
CDR_SQLITE = R2 / "rosbag2_tests/resources/sqlite3/cdr_test"
SERVICES_MCAP = R2 / "rosbag2_cpp/test/rosbag2_cpp/bags/only_services.mcap"
SERVICES_SQLITE = R2 / "rosbag2_tests/resources/sqlite3/bag_with_topics_and_service_events"
SEEK_BAG = R2 / "rosbag2_transport/test/resources/mcap/test_bag_for_seek"

# Message counts of the turtlesim bags (rosbag.js fixtures), the same in all three compressions.
TURTLE_COUNTS = {
    "/rosout": 10,
    "/turtle1/color_sensor": 1351,
    "/tf_static": 1,
    "/turtle2/color_sensor": 1344,
    "/turtle1/pose": 1344,
    "/turtle2/pose": 1344,
    "/tf": 2688,
    "/turtle2/cmd_vel": 208,
    "/turtle1/cmd_vel": 357,
}


def metadata_counts(folder: Path) -> dict[str, int]:
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}


def read_all(path: Path, **kw):
    with open_recording(path, **kw) as r:
        return list(r.messages())


def assert_time_ordered(msgs) -> None:
    times = [m.log_time_ns for m in msgs]
    assert times == sorted(times)


def counts_of(msgs) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in msgs:
        out[m.topic] = out.get(m.topic, 0) + 1
    return out


# ---- ROS 1 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["example.bag", "example-lz4.bag", "example-bz2.bag"])
def test_ros1_bags_uncompressed_lz4_bz2(name):
    with open_recording(JS / name) as r:
        assert isinstance(r, RosbagsRecordingReader) and r.storage == "rosbag1"
        assert {k: t.count for k, t in r.topics().items()} == TURTLE_COUNTS
        assert r.message_count == 8647
        assert r.topics()["/turtle1/pose"].msgtype == "turtlesim/msg/Pose"  # ROS 1 name, ROS 2 spelling
        assert 62 < r.topics()["/turtle1/pose"].rate_hz < 63
        msgs = list(r.messages())
    assert len(msgs) == 8647 and counts_of(msgs) == TURTLE_COUNTS
    assert_time_ordered(msgs)
    pose = next(m for m in msgs if m.topic == "/turtle1/pose")
    assert (pose.data.x, pose.data.y, pose.data.theta) == pytest.approx((5.544444561004639, 5.544444561004639, 0.0))
    assert isinstance(pose.data.x, float)
    tw = next(m for m in msgs if m.topic == "/turtle1/cmd_vel")
    assert tw.msgtype == "geometry_msgs/msg/Twist" and tw.data.linear.x == 2.0


def test_ros1_topic_selection_and_raw_bytes():
    with open_recording(JS / "example-lz4.bag") as r:
        raw = list(r.messages(["/turtle2/pose"], decode=False))
    assert len(raw) == 1344 and {m.topic for m in raw} == {"/turtle2/pose"}
    assert isinstance(raw[0].data, bytes) and len(raw[0].data) == 20  # five float32 fields


def test_ros1_unsorted_chunks_come_out_in_time_order():
    msgs = read_all(JS / "example-unsorted-chunks.bag")
    assert [(m.log_time_ns, m.data.data) for m in msgs] == [(1_000_000_000, "1"), (2_000_000_000, "2"), (3_000_000_000, "3")]


def test_empty_bag_topics_work_messages_refuse():
    with open_recording(JS / "no-messages.bag") as r:
        assert r.topics() == {} and r.message_count == 0 and r.start_ns is None
        with pytest.raises(RecordingError, match=r"no-messages\.bag: .*contains no messages"):
            list(r.messages())


# ---- ROS 2 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", [TALKER_MCAP, TALKER_SQLITE], ids=["mcap", "sqlite3"])
def test_ros2_talker_both_storages(folder):
    with open_recording(folder) as r:
        assert r.storage == f"rosbag2/{'mcap' if folder == TALKER_MCAP else 'sqlite3'}"
        assert {k: t.count for k, t in r.topics().items()} == metadata_counts(folder)
        msgs = list(r.messages())
    assert len(msgs) == 20
    assert_time_ordered(msgs)
    assert [m.data.data for m in msgs if m.topic == "/topic"] == [f"Hello, world! {i}" for i in range(10)]
    log = next(m for m in msgs if m.topic == "/rosout")
    assert log.msgtype == "rcl_interfaces/msg/Log" and log.data.level == 20


def test_ros2_db3_inside_a_bag_folder_opens_the_bag():
    with open_recording(TALKER_SQLITE / "talker.db3") as r:
        assert r.path == TALKER_SQLITE and r.message_count == 20


def test_ros2_split_bag_five_files():
    counts = metadata_counts(WBAG)
    with open_recording(WBAG) as r:
        assert {k: t.count for k, t in r.topics().items()} == counts
        msgs = list(r.messages())
    assert len(list(WBAG.glob("wbag_*.mcap"))) == 5
    assert len(msgs) == sum(counts.values()) == 6074 and counts_of(msgs) == counts
    assert_time_ordered(msgs)
    assert msgs[0].data.data == "Hello, world! 0 - 0"


def test_one_file_of_a_split_bag_reads_as_mcap():
    with open_recording(WBAG / "wbag_2.mcap") as r:
        assert isinstance(r, McapRecordingReader)
        n = sum(t.count for t in r.topics().values())
        assert n == len(list(r.messages())) == 1240


def test_split_mcap_bag_reads_the_same_without_the_mcap_reader(monkeypatch):
    """A ROS 2 bag's MCAP files go through the registered MCAP reader; rosbags' own MCAP storage agrees."""
    with open_recording(WBAG) as r:
        assert isinstance(r, RosbagsRecordingReader)
        fast_topics = {k: (t.count, t.first_ns, t.last_ns) for k, t in r.topics().items()}
        fast = [(m.log_time_ns, m.topic, m.data.data) for m in r.messages()]
    monkeypatch.delitem(RosbagsRecordingReader.STORAGE_FILE_READERS, "mcap")
    with open_recording(WBAG) as r:
        slow_topics = {k: (t.count, t.first_ns, t.last_ns) for k, t in r.topics().items()}
        slow = [(m.log_time_ns, m.topic, m.data.data) for m in r.messages()]
    assert slow_topics == fast_topics and len(fast) == 6074
    assert sorted(slow) == sorted(fast) and [m[0] for m in slow] == sorted(m[0] for m in slow)


def test_readers_never_import_each_other():
    """The type system is its own module (as rosbags' typesys): both readers import it, neither the other."""
    import ast

    import robodata.readers

    folder = Path(robodata.readers.__file__).parent
    for name, other in (("mcap_reader", "rosbag_reader"), ("rosbag_reader", "mcap_reader")):
        tree = ast.parse((folder / f"{name}.py").read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert f"robodata.readers.{other}" not in modules, name
        assert "robodata.readers.typesys" in modules, name


@pytest.mark.parametrize("path", [CDR_MCAP, CDR_SQLITE, CDR_MCAP / "cdr_test_0.mcap"], ids=["mcap", "sqlite3", "file"])
def test_types_not_in_the_standard_store_use_stored_definitions(path):
    msgs = read_all(path)
    assert counts_of(msgs) == {"/test_topic": 3, "/array_topic": 4}
    basic = next(m for m in msgs if m.topic == "/test_topic")
    assert basic.msgtype == "test_msgs/msg/BasicTypes" and basic.data.int32_value == 123
    arrays = next(m for m in msgs if m.topic == "/array_topic")
    assert list(arrays.data.bool_values) == [True, False, True]
    assert np.asarray(arrays.data.float64_values).shape == (3,)


def test_unknown_type_without_definition_is_a_clear_error(tmp_path):
    """test_msgs is in no standard store: with its stored definitions deleted, decoding it must say so."""
    import sqlite3

    bag = tmp_path / "cdr_test"
    shutil.copytree(CDR_SQLITE, bag)
    with sqlite3.connect(bag / "cdr_test_0.db3") as db:
        db.execute("DELETE FROM message_definitions")
    with open_recording(bag) as r:
        assert r.topics()["/test_topic"].count == 3  # topics and raw payloads need no definition
        raw = list(r.messages(["/test_topic"], decode=False))
        assert len(raw) == 3 and isinstance(raw[0].data, bytes)
        with pytest.raises(RecordingError) as e:
            list(r.messages(["/test_topic"]))
    assert str(e.value) == (
        f"{bag}: cannot decode topic /test_topic: message type test_msgs/msg/BasicTypes: it is not in the ROS 2 "
        "Humble type store and the recording stores no definition for it (read it with decode=False to get the raw bytes)"
    )


def test_service_events_in_sqlite3_use_the_service_definition():
    """sqlite3 stores test_msgs/srv/BasicTypes; the event topic's type is test_msgs/srv/BasicTypes_Event."""
    with open_recording(SERVICES_SQLITE) as r:
        assert r.topics()["/test_service1/_service_event"].count == 4
        msgs = list(r.messages())
    assert counts_of(msgs) == {k: v for k, v in metadata_counts(SERVICES_SQLITE).items() if v}
    events = [m.data for m in msgs if m.topic == "/test_service1/_service_event"]
    assert [(len(e.request), len(e.response)) for e in events] == [(1, 0), (0, 1), (1, 0), (0, 1)]
    assert events[0].request[0].string_value == "" and events[0].info.event_type == 0
    strings = next(m for m in msgs if m.topic == "/test_topic1")
    assert strings.data.string_value_default1 == "Hello world!"


def test_service_events_decode_from_the_stored_srv_definition():
    msgs = read_all(SERVICES_MCAP)
    req = [m.data.request[0] for m in msgs if len(m.data.request)]
    resp = [m.data.response[0] for m in msgs if len(m.data.response)]
    assert (req[0].a, req[0].b, resp[0].sum) == (1, 3, 4)


def test_ros1_style_type_name_in_a_ros2_bag():
    msgs = read_all(SEEK_BAG)
    assert len(msgs) == 5 and {m.msgtype for m in msgs} == {"test_msgs/msg/BasicTypes"}
    assert [m.log_time_ns for m in msgs] == [1_000_000_000 + i * 100_000_000 for i in range(5)]


def test_wrong_topic_names_the_topics_present():
    with open_recording(TALKER_MCAP / "talker.mcap") as r, pytest.raises(RecordingError, match=r"no topic /nope .*/rosout"):
        list(r.messages(["/nope"]))


# ---- MCAP: real files and what a recorder or a copy can do to them --------------------------------------------


def test_mcap_talker_file_matches_bag_metadata():
    with open_recording(TALKER_MCAP / "talker.mcap") as r:
        assert isinstance(r, McapRecordingReader) and r.has_summary and r.truncated is None
        assert {k: t.count for k, t in r.topics().items()} == metadata_counts(TALKER_MCAP)
        assert r.start_ns == 1585866235112411371
        ia = r.interarrival(["/topic"])["/topic"]
        assert ia.n == 9 and 0.49 < ia.mean < 0.51


def _cut(src: Path, dst: Path, size: int) -> Path:
    dst.write_bytes(src.read_bytes()[:size])
    return dst


def test_truncated_mcap_is_refused_naming_the_byte(tmp_path):
    src = TALKER_MCAP / "talker.mcap"
    bad = _cut(src, tmp_path / "talker.mcap", 2000)  # inside the only chunk (bytes 45..3010)
    with pytest.raises(RecordingError) as e:
        open_recording(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: truncated MCAP (no footer; the file ends mid-record at byte 2000")
    assert "allow_truncated=True" in msg
    with pytest.warns(RecordingWarning, match="truncated"), open_recording(bad, allow_truncated=True) as r:
        assert r.truncated and r.message_count == 0  # the only chunk was cut: nothing complete is left
        with pytest.raises(RecordingError, match="contains no messages"):
            list(r.messages())


def _joint_mcap(path: Path, n: int = 300, chunk_size: int = 2048, times=None) -> list[int]:
    times = list(times) if times is not None else [1_000_000_000 + i * 10_000_000 for i in range(n)]
    with McapRos2Writer(path, chunk_size=chunk_size) as w:
        for i, t in enumerate(times):
            w.write(
                "/joint_states",
                "sensor_msgs/msg/JointState",
                {"header": header(t), "name": ["j1", "j2"], "position": [float(i), -float(i)], "velocity": [], "effort": []},
                log_time_ns=t,
            )
    return times


def test_truncated_mcap_with_complete_chunks_reads_them_when_allowed(tmp_path):
    full = tmp_path / "full.mcap"
    times = _joint_mcap(full)
    with McapRecordingReader(full) as r:
        chunks = sorted(r._chunks, key=lambda c: c.offset)
    assert len(chunks) > 5
    cut_at = chunks[3].offset + chunks[3].length // 2
    bad = _cut(full, tmp_path / "crashed.mcap", cut_at)
    expected = rf"ends mid-record at byte {cut_at}: the Chunk record starting at byte {chunks[3].offset}"
    with pytest.raises(RecordingError, match=expected):
        McapRecordingReader(bad)
    with pytest.warns(RecordingWarning, match="3 complete chunk"):
        r = McapRecordingReader(bad, allow_truncated=True)
    with r:
        msgs = list(r.messages())
        assert r.message_count == len(msgs)
    assert 0 < len(msgs) < len(times)
    assert [m.log_time_ns for m in msgs] == times[: len(msgs)]
    assert list(msgs[-1].data.position) == [len(msgs) - 1, -(len(msgs) - 1)]


def _summary_start(path: Path) -> int:
    data = path.read_bytes()
    return struct.unpack_from("<Q", data, len(data) - 8 - 20)[0]


def test_mcap_without_summary_is_read_by_scanning(tmp_path):
    """A writer killed after its last chunk (no summary, no footer) and one that wrote no summary."""
    src = WBAG / "wbag_0.mcap"
    data = src.read_bytes()
    data_end = _summary_start(src) - 13  # the DataEnd record (opcode + length + crc) precedes the summary
    assert data[data_end] == 0x0F
    killed = tmp_path / "killed.mcap"
    killed.write_bytes(data[:data_end])
    no_summary = tmp_path / "no_summary.mcap"
    footer = struct.pack("<BQQQI", 0x02, 20, 0, 0, 0) + data[:8]
    no_summary.write_bytes(data[: data_end + 13] + footer)
    expected = [(m.topic, m.log_time_ns, m.data.data) for m in read_all(src)]
    assert len(expected) == 1246
    with pytest.warns(RecordingWarning, match="the writer did not finish"):
        r = open_recording(killed)
    with r:
        assert not r.has_summary
        assert [(m.topic, m.log_time_ns, m.data.data) for m in r.messages()] == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_recording(no_summary) as r:
            assert not r.has_summary and r.truncated is None and r.message_count == 1246
            assert [(m.topic, m.log_time_ns, m.data.data) for m in r.messages()] == expected


def _damaged_copy(src: Path, dst: Path, at: int, new: bytes) -> Path:
    data = bytearray(src.read_bytes())
    data[at : at + len(new)] = new
    dst.write_bytes(bytes(data))
    return dst


def test_corrupt_zstd_chunk_is_one_clear_error(tmp_path):
    src = TALKER_MCAP / "talker.mcap"
    with McapRecordingReader(src) as r:
        (chunk,) = r._chunks
    mid = chunk.offset + chunk.length // 2
    flipped = bytes(b ^ 0x5A for b in src.read_bytes()[mid : mid + 16])
    bad = _damaged_copy(src, tmp_path / src.name, mid, flipped)
    with open_recording(bad) as r, pytest.raises(RecordingError, match=rf"{bad}: corrupt MCAP chunk at byte {chunk.offset}"):
        list(r.messages())


def test_corrupt_uncompressed_chunk_is_one_clear_error(tmp_path):
    """rosbag2 writes uncompressed chunks without a CRC: damage to a record's framing is still caught."""
    src = CDR_MCAP / "cdr_test_0.mcap"
    with McapRecordingReader(src) as r:
        (chunk,) = r._chunks
    # the chunk's records start after: prefix (9), times and size (24), crc (4), compression "" (4), length (8)
    first_record_length = chunk.offset + 9 + 24 + 4 + 4 + 8 + 1
    bad = _damaged_copy(src, tmp_path / src.name, first_record_length, struct.pack("<Q", 10**9))
    with open_recording(bad) as r, pytest.raises(RecordingError, match=rf"{bad}: corrupt MCAP chunk at byte {chunk.offset}"):
        list(r.messages())


def test_crc_catches_flipped_payload_bytes(tmp_path):
    """zstd without a frame checksum decompresses some flipped bytes without complaint; validate_crcs=True
    catches them with the chunk's CRC."""
    full = tmp_path / "full.mcap"
    _joint_mcap(full, n=50, chunk_size=100_000)
    with McapRecordingReader(full) as r:
        (chunk,) = r._chunks
    bad = tmp_path / "bad.mcap"
    data = bytearray(full.read_bytes())
    for at in range(chunk.offset + chunk.length - 40, chunk.offset + 60, -7):  # find a flip that still decompresses
        trial = bytearray(data)
        trial[at] ^= 0x01
        bad.write_bytes(bytes(trial))
        with McapRecordingReader(bad, validate_crcs=False) as r:
            try:
                list(r.messages(decode=False))
            except RecordingError:
                continue
        break
    else:
        pytest.skip("every flip broke decompression")
    with McapRecordingReader(bad, validate_crcs=True) as r, pytest.raises(RecordingError, match="CRC32 mismatch"):
        list(r.messages(decode=False))
    with open_recording(bad, validate_crcs=True) as r, pytest.raises(RecordingError, match=rf"^{bad}: corrupt MCAP chunk"):
        list(r.messages())


def test_mcap_chunks_out_of_time_order_are_merged(tmp_path):
    """Chunks written out of order, overlapping in time (a recorder with several writer threads)."""
    rng = np.random.default_rng(0)
    base = np.arange(200) * 10_000_000 + 1_000_000_000
    blocks = [base[i : i + 20] for i in range(0, 200, 20)]
    order = rng.permutation(len(blocks))
    times = [int(t) for k in order for t in rng.permutation(blocks[k] + rng.integers(0, 25_000_000, 20))]
    _joint_mcap(tmp_path / "unsorted.mcap", chunk_size=1024, times=times)
    for workers in (0, 2):
        with McapRecordingReader(tmp_path / "unsorted.mcap", workers=workers) as r:
            assert len(r._chunks) > 5
            got = [m.log_time_ns for m in r.messages()]
        assert got == sorted(times)


def test_mcap_images_decode_to_numpy_views(tmp_path):
    path = tmp_path / "cams.mcap"
    frames = [np.full((48, 64, 3), k, np.uint8) for k in range(5)]
    with McapRos2Writer(path, chunk_size=20_000) as w:
        for k, img in enumerate(frames):
            w.write("/cam/image_raw", "sensor_msgs/msg/Image", image_message(1_000_000_000 + k * 33_000_000, "cam", img))
            w.write("/cmd", "std_msgs/msg/String", {"data": f"go {k}"}, log_time_ns=1_000_000_001 + k * 33_000_000)
    with open_recording(path) as r:
        imgs = list(r.messages(["/cam/image_raw"]))
        assert r.topics()["/cam/image_raw"].rate_hz == pytest.approx(1 / 0.033)
    assert [m.msgtype for m in imgs] == ["sensor_msgs/msg/Image"] * 5
    d = imgs[3].data
    assert (d.height, d.width, d.encoding, d.step) == (48, 64, "rgb8", 192)
    assert isinstance(d.data, np.ndarray) and d.data.dtype == np.uint8 and d.data.size == 48 * 64 * 3
    assert (d.data == 3).all() and d.header.stamp.nanosec == 99_000_000


# ---- not a recording ------------------------------------------------------------------------------------------


def test_not_a_recording_and_missing_paths(tmp_path):
    (tmp_path / "notes.mcap").write_text("these are my notes\n")
    (tmp_path / "notes.bag").write_text("these are my notes\n")
    (tmp_path / "notes.txt").write_text("these are my notes\n")
    (tmp_path / "empty.mcap").write_bytes(b"")
    cases = {
        tmp_path / "notes.mcap": "not an MCAP file",
        tmp_path / "empty.mcap": r"not an MCAP file \(it is empty\)",
        tmp_path / "notes.bag": "not a ROS 1 bag",
        tmp_path / "notes.txt": "not a recording robodata reads",
        tmp_path: "not a ROS 2 bag folder",
        tmp_path / "missing.mcap": "no such file",
    }
    for path, pattern in cases.items():
        with pytest.raises(RecordingError, match=pattern) as e:
            open_recording(path)
        assert str(e.value).startswith(str(path)), e.value
        assert isinstance(e.value, RobodataError)


def test_ros2_folder_with_a_missing_storage_file(tmp_path):
    bag = tmp_path / "wbag"
    shutil.copytree(WBAG, bag)
    (bag / "wbag_3.mcap").unlink()
    with pytest.raises(RecordingError, match=r"wbag: cannot open the recording: .*wbag_3\.mcap"):
        open_recording(bag)


def test_mcap_ros1_json_and_unsupported_encodings(tmp_path):
    """MCAP carries more than ROS 2: ROS 1 messages (ros1msg schema) and JSON decode; protobuf is refused clearly."""
    from mcap.writer import Writer

    path = tmp_path / "mixed.mcap"
    with path.open("wb") as f:
        w = Writer(f)
        w.start(profile="", library="test")
        ros1 = w.register_schema("geometry_msgs/Point", "ros1msg", b"float64 x\nfloat64 y\nfloat64 z\n")
        js = w.register_schema("Reading", "jsonschema", b'{"type": "object"}')
        pb = w.register_schema("foo.Bar", "protobuf", b"\x00")
        c1 = w.register_channel("/point", "ros1", ros1)
        c2 = w.register_channel("/reading", "json", js)
        c3 = w.register_channel("/proto", "protobuf", pb)
        for i in range(3):
            t = 1_000 + i
            w.add_message(c1, log_time=t, publish_time=t, data=struct.pack("<ddd", i, 2.0 * i, -1.0))
            w.add_message(c2, log_time=t, publish_time=t, data=f'{{"temp": {20 + i}, "pos": {{"x": {i}}}}}'.encode())
            w.add_message(c3, log_time=t, publish_time=t, data=b"\x08\x01")
        w.finish()
    with open_recording(path) as r:
        assert r.topics()["/point"].msgtype == "geometry_msgs/msg/Point" and r.topics()["/point"].encoding == "ros1"
        pts = list(r.messages(["/point"]))
        assert [(m.data.x, m.data.y, m.data.z) for m in pts] == [(0.0, 0.0, -1.0), (1.0, 2.0, -1.0), (2.0, 4.0, -1.0)]
        js_msgs = list(r.messages(["/reading"]))
        assert [m.data.temp for m in js_msgs] == [20, 21, 22] and js_msgs[2].data.pos.x == 2
        with pytest.raises(RecordingError, match=r"channel /proto \(schema foo.Bar\): its FileDescriptorSet does not build.*decode=False"):
            list(r.messages(["/proto"]))
        assert [m.data for m in r.messages(["/proto"], decode=False)] == [b"\x08\x01"] * 3


def test_closed_reader_refuses():
    r = open_recording(TALKER_MCAP / "talker.mcap")
    r.close()
    with pytest.raises(RecordingError, match="closed"):
        list(r.messages())


def test_truncated_ros1_bag_and_broken_ros2_metadata(tmp_path):
    cut = tmp_path / "example.bag"
    cut.write_bytes((JS / "example.bag").read_bytes()[:400_000])
    with pytest.raises(RecordingError, match=rf"^{cut}: truncated or damaged ROS 1 bag .*rosbag reindex"):
        open_recording(cut)
    bag = tmp_path / "talker"
    shutil.copytree(TALKER_SQLITE, bag)
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [\n")
    with pytest.raises(RecordingError, match=rf"^{bag}: cannot open the recording: Could not load YAML") as e:
        open_recording(bag)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "path", [JS / "example.bag", WBAG, TALKER_MCAP / "talker.mcap"], ids=["ros1-index", "ros2-mcap-index", "mcap-index"]
)
def test_index_timing_matches_a_streaming_pass(path):
    """Jitter from the indexes (no payload read) equals jitter from streaming every message."""
    from robodata.readers import RecordingReader

    with open_recording(path) as r:
        fast = r.interarrival()
        slow = RecordingReader.interarrival(r)
    assert fast.keys() == slow.keys() and fast
    for topic, ia in fast.items():
        assert ia.n == slow[topic].n
        if ia.n == 0:  # a single message (/tf_static): no gaps
            assert ia.std is None and slow[topic].std is None
            continue
        assert ia.mean == pytest.approx(slow[topic].mean, rel=1e-9, abs=1e-15)
        assert ia.std == pytest.approx(slow[topic].std, rel=1e-6, abs=1e-12)
        assert ia.max == pytest.approx(slow[topic].max, rel=1e-12)


def test_damaged_copies_fail_only_with_recording_error(tmp_path):
    """Random cuts and flipped bytes in real recordings: each read succeeds or raises RecordingError, nothing else."""
    import random

    rng = random.Random(7)
    sources = [TALKER_MCAP / "talker.mcap", CDR_MCAP / "cdr_test_0.mcap", JS / "example-unsorted-chunks.bag"]
    for i in range(60):
        src = sources[i % len(sources)]
        data = bytearray(src.read_bytes())
        if i % 2:
            data = data[: rng.randrange(len(data))]
        else:
            at = rng.randrange(len(data))
            data[at : at + 4] = bytes(b ^ rng.randrange(1, 256) for b in data[at : at + 4])
        bad = tmp_path / f"damaged{src.suffix}"
        bad.write_bytes(bytes(data))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RecordingWarning)
                with open_recording(bad) as r:
                    r.topics()
                    for _ in r.messages():
                        pass
        except RecordingError as err:
            assert str(err).startswith(str(bad)), err


@pytest.mark.parametrize("workers", [0, 2])
def test_recycled_chunk_buffers_never_overwrite_what_the_caller_keeps(tmp_path, workers):
    """Chunk buffers are reused once nothing refers into them; views the caller keeps must stay intact."""
    path = tmp_path / "frames.mcap"
    n = 60
    with McapRos2Writer(path, chunk_size=4_000) as w:  # about one 48x32 frame per chunk
        for k in range(n):
            w.write("/cam", "sensor_msgs/msg/Image", image_message(1_000_000_000 + k * 1_000_000, "c", np.full((32, 48, 3), k, np.uint8)))
    kept_images, kept_raw = {}, {}
    with McapRecordingReader(path, workers=workers) as r:
        assert len(r._chunks) >= n // 2
        for k, m in enumerate(r.messages()):
            if k % 7 == 0:
                kept_images[k] = m.data.data  # a numpy view into the chunk buffer
        for k, (_, _, _, view) in enumerate(r.raw_messages()):
            if k % 5 == 0:
                kept_raw[k] = view
        again = [m.data.data.copy() for m in r.messages()]  # a third pass reuses the pool again
    for k, arr in kept_images.items():
        assert (arr == k).all(), k
    for k, view in kept_raw.items():
        assert bytes(view[-10:]) == bytes([k]) * 10, k
    assert all((a == k).all() for k, a in enumerate(again))


@pytest.mark.parametrize("compression", ["zstd", "lz4", "none"])
def test_mcap_chunk_compressions(tmp_path, compression):
    path = tmp_path / f"{compression}.mcap"
    with McapRos2Writer(path, chunk_size=2048, compression=compression) as w:
        for i in range(100):
            w.write("/n", "std_msgs/msg/String", {"data": f"message {i}"}, log_time_ns=1_000 + i)
    with open_recording(path) as r:
        assert len(r._chunks) == 3
        assert [m.data.data for m in r.messages()] == [f"message {i}" for i in range(100)]


def test_mcap_ros2_fallback_decoder_reads_the_stored_schema(tmp_path):
    """The slower mcap_ros2 decoder (used for schemas rosbags' generator refuses) decodes what the fast path
    does; it once received the schema's fields in the wrong order and could never have worked."""
    from robodata.readers.mcap_reader import McapRecordingReader
    from tests.recordings import make_mcap

    path = make_mcap(tmp_path / "r.mcap", 5)
    with McapRecordingReader(path) as r:
        ch = next(c for c in r._channels.values() if c.topic == "/joint_states")
        fast = r._decoder(ch)
        slow = r._mcap_ros2_decoder(ch, r._schemas[ch.schema_id])
        raw = next(view for _, cid, view in r._iter_raw(None) if cid == ch.id)
        a, b = fast(raw), slow(raw)
    assert list(a.name) == list(b.name) == ["j1", "j2"]
    assert list(a.position) == list(b.position)


def _ros1_records(data: bytes) -> list[tuple[int, int, int, int]]:
    """(position, op, header length, data length) of every record of a ROS 1 bag, read from the bytes."""
    out, p = [], 13
    while p < len(data):
        (hlen,) = struct.unpack_from("<I", data, p)
        header = data[p + 4:p + 4 + hlen]
        i, op = 0, None
        while i < hlen:
            (n,) = struct.unpack_from("<I", header, i)
            k, _, v = header[i + 4:i + 4 + n].partition(b"=")
            op = v[0] if k == b"op" else op
            i += 4 + n
        (dlen,) = struct.unpack_from("<I", data, p + 4 + hlen)
        out.append((p, op, hlen, dlen))
        p += 8 + hlen + dlen
    return out


@pytest.mark.parametrize("damage, expect", [
    ("chunk_data_len", r"truncated or damaged ROS 1 bag: the chunk at byte 4117 declares 2.0 GB of data; the file "
                       r"has 868,400 bytes"),
    ("index_header_len", r"damaged ROS 1 bag: a record at byte \d+ declares a 1.5 GB header; the file has 868,400"),
    ("index_pos", r"truncated or damaged ROS 1 bag \(the bag header says its index starts at byte 878,400, past "
                  r"the end of the file"),
])
def test_damaged_ros1_bag_layout_is_said_in_the_files_terms(tmp_path, damage, expect):
    """A real bag (rosbag.js's example.bag) with one length field damaged, as a bad disk or a hostile upload
    would: one sentence naming the record, its byte offset and the file's size; no unpack or assert error."""
    data = bytearray((REALDATA / "rosbag_js" / "example.bag").read_bytes())
    recs = _ros1_records(bytes(data))
    if damage == "chunk_data_len":
        p, _, hlen, _ = next(r for r in recs if r[1] == 5)
        struct.pack_into("<I", data, p + 4 + hlen, 2_000_000_000)
    elif damage == "index_header_len":
        p = next(r for r in recs if r[1] == 4)[0]
        struct.pack_into("<I", data, p, 1_500_000_000)
    else:
        at = bytes(data).index(b"index_pos=", 13) + len(b"index_pos=")
        struct.pack_into("<Q", data, at, len(data) + 10_000)
    bag = tmp_path / "damaged.bag"
    bag.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=rf"damaged.bag: {expect}") as err:
        with open_recording(bag) as r:
            list(r.messages())
    assert "unpack" not in str(err.value) and "AssertionError" not in str(err.value)
