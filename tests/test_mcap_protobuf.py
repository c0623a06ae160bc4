"""MCAP beyond ROS: protobuf recordings (Foxglove SDK schemas, a user's own types) read, inspected and ingested.

The fixtures are real files written by the Foxglove SDK (``foxglove.open_mcap`` + its typed channels) and by
``mcap_protobuf``'s writer, with a message type built at test time from a ``FileDescriptorProto``, as a user's
own ``.proto`` would be: nothing about the types is known to robodata beyond what the file's schema records say.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import descriptor_pb2, timestamp_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from PIL import Image

from robodata.cli import main as cli_main
from robodata.formats.isaaclab import EpisodeStore
from robodata.ingest import IngestError, ingest_recording
from robodata.inspect import inspect_path
from robodata.readers import open_recording
from robodata.readers.base import RecordingError
from robodata.topicmap import load_topic_map

T0 = 1_700_000_000_000_000_000
FRAMES = 30
H, W = 48, 64
LATENCY_NS = 3_000_000  # log time = message timestamp + transport latency: the timestamp must win

F = descriptor_pb2.FieldDescriptorProto


def _message_classes() -> dict[str, Any]:
    """``demo.Header`` {stamp}, ``demo.JointState`` {header, name[], position[], velocity[]} and
    ``demo.Command`` {timestamp, data[] float}: a user's own types, built from a FileDescriptorProto."""
    pool = DescriptorPool()
    ts_file = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts_file)
    pool.Add(ts_file)
    fd = descriptor_pb2.FileDescriptorProto(name="demo/robot.proto", package="demo", syntax="proto3",
                                            dependency=["google/protobuf/timestamp.proto"])

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        m = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("Header", [("stamp", 1, F.TYPE_MESSAGE, opt, ".google.protobuf.Timestamp"), ("frame_id", 2, F.TYPE_STRING, opt, "")])
    message("JointState", [("header", 1, F.TYPE_MESSAGE, opt, ".demo.Header"), ("name", 2, F.TYPE_STRING, rep, ""),
                           ("position", 3, F.TYPE_DOUBLE, rep, ""), ("velocity", 4, F.TYPE_DOUBLE, rep, "")])
    message("Command", [("timestamp", 1, F.TYPE_MESSAGE, opt, ".google.protobuf.Timestamp"),
                        ("data", 2, F.TYPE_FLOAT, rep, ""), ("gripper", 3, F.TYPE_BOOL, opt, "")])
    pool.Add(fd)
    return {n: GetMessageClass(pool.FindMessageTypeByName(f"demo.{n}")) for n in ("Header", "JointState", "Command")}


PB = _message_classes()


def _set_stamp(stamp: Any, ns: int) -> None:
    stamp.seconds, stamp.nanos = divmod(ns, 1_000_000_000)


def _joints(ns: int, k: int) -> Any:
    msg = PB["JointState"](name=["shoulder", "elbow", "wrist"], position=[0.1 * k, -0.2 * k, 0.5],
                           velocity=[1.0, 2.0, 3.0])
    msg.header.frame_id = "base"
    _set_stamp(msg.header.stamp, ns)
    return msg


def _command(ns: int, k: int) -> Any:
    msg = PB["Command"](data=[k, -k], gripper=k % 2 == 0)
    _set_stamp(msg.timestamp, ns)
    return msg


def _frame(k: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[:, : 2 * k + 2] = (200, 40, 40)  # a red bar that grows: which frame is which survives JPEG
    img[H // 2 :, :, 2] = 180
    return img


def _jpeg(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _write_foxglove(path: Path) -> Path:
    """A Foxglove SDK recording: camera (CompressedImage, JPEG) and wrist camera (RawImage) at 30 Hz, gripper
    pose (PoseInFrame), the tf tree (FrameTransforms), a goal (FrameTransform) and the user's own JointState
    (a protobuf channel with the FileDescriptorSet of ``demo.JointState`` in its schema record)."""
    import foxglove
    import foxglove.channels as fc
    import foxglove.messages as fm
    from mcap_protobuf.schema import build_file_descriptor_set

    ctx = foxglove.Context()  # not the global one: each fixture file gets only its own channels
    writer = foxglove.open_mcap(path, context=ctx)
    cam = fc.CompressedImageChannel("/camera/front/compressed", context=ctx)
    wrist = fc.RawImageChannel("/camera/wrist/image", context=ctx)
    pose = fc.PoseInFrameChannel("/gripper/pose", context=ctx)
    tf = fc.FrameTransformsChannel("/tf", context=ctx)
    goal = fc.FrameTransformChannel("/goal", context=ctx)
    fds = build_file_descriptor_set(PB["JointState"]).SerializeToString()
    joints = foxglove.Channel("/joint_states", schema=foxglove.Schema(name="demo.JointState", encoding="protobuf", data=fds),
                              message_encoding="protobuf", context=ctx)

    def ts(ns: int) -> Any:
        return fm.Timestamp(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)

    for j in range(FRAMES * 2 + 4):  # joint states at 60 Hz, from a little before the first frame
        ns = T0 + (j - 2) * 1_000_000_000 // 60
        joints.log(_joints(ns, j).SerializeToString(), log_time=ns + LATENCY_NS)
    for k in range(FRAMES):
        ns = T0 + k * 1_000_000_000 // 30
        img = _frame(k)
        cam.log(fm.CompressedImage(timestamp=ts(ns), frame_id="front", data=_jpeg(img), format="jpeg"),
                log_time=ns + LATENCY_NS)
        wrist.log(fm.RawImage(timestamp=ts(ns), frame_id="wrist", width=W, height=H, encoding="bgr8", step=W * 3,
                              data=np.ascontiguousarray(img[..., ::-1]).tobytes()), log_time=ns + LATENCY_NS)
        quat = fm.Quaternion(x=0.0, y=0.0, z=np.sin(k / 40), w=np.cos(k / 40))
        pose.log(fm.PoseInFrame(timestamp=ts(ns), frame_id="base",
                                pose=fm.Pose(position=fm.Vector3(x=0.01 * k, y=0.2, z=0.3), orientation=quat)),
                 log_time=ns + LATENCY_NS)
        tf.log(fm.FrameTransforms(transforms=[
            fm.FrameTransform(timestamp=ts(ns), parent_frame_id="world", child_frame_id="base",
                              translation=fm.Vector3(x=1.0, y=0.0, z=0.0), rotation=fm.Quaternion(w=1.0)),
            fm.FrameTransform(timestamp=ts(ns), parent_frame_id="base", child_frame_id="cube",
                              translation=fm.Vector3(x=0.5, y=-0.1 * k, z=0.02), rotation=fm.Quaternion(w=1.0)),
        ]), log_time=ns + LATENCY_NS)
        goal.log(fm.FrameTransform(timestamp=ts(ns), parent_frame_id="base", child_frame_id="goal",
                                   translation=fm.Vector3(x=0.4, y=0.0, z=0.1 + 0.001 * k),
                                   rotation=fm.Quaternion(x=0.0, y=1.0, z=0.0, w=0.0)), log_time=ns + LATENCY_NS)
    writer.close()
    return path


FOXGLOVE_MAP = {
    "task": "stack the cube",
    "robot_type": "foxglove_arm",
    "fps": 30,
    "reference": {"topic": "/camera/front/compressed"},
    "sync": {"method": "nearest", "tolerance_s": 0.02},
    "features": [
        {"name": "front", "topic": "/camera/front/compressed", "role": "image"},
        {"name": "wrist", "topic": "/camera/wrist/image", "role": "image"},
        {"name": "joints", "topic": "/joint_states", "field": "position", "role": "state"},
        {"name": "gripper", "topic": "/gripper/pose", "role": "pose"},
        {"name": "cube", "topic": "/tf", "select": ["cube"], "role": "pose"},
        {"name": "goal", "topic": "/goal", "role": "action"},
    ],
}


@pytest.fixture(scope="module")
def foxglove_mcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_foxglove(tmp_path_factory.mktemp("foxglove") / "session.mcap")


def test_foxglove_recording_is_inspected(foxglove_mcap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = inspect_path(foxglove_mcap)
    topics = {t["name"]: t for t in d["topics"]}
    assert {n: (t["type"], t["encoding"], t["count"]) for n, t in topics.items()} == {
        "/camera/front/compressed": ("foxglove.CompressedImage", "protobuf", FRAMES),
        "/camera/wrist/image": ("foxglove.RawImage", "protobuf", FRAMES),
        "/gripper/pose": ("foxglove.PoseInFrame", "protobuf", FRAMES),
        "/tf": ("foxglove.FrameTransforms", "protobuf", FRAMES),
        "/goal": ("foxglove.FrameTransform", "protobuf", FRAMES),
        "/joint_states": ("demo.JointState", "protobuf", FRAMES * 2 + 4),
    }
    assert topics["/camera/front/compressed"]["rate_hz"] == pytest.approx(30, rel=0.01)
    assert cli_main(["inspect", str(foxglove_mcap)]) == 0
    out = capsys.readouterr().out
    assert "foxglove.CompressedImage" in out and "demo.JointState" in out and "/tf" in out


def test_foxglove_messages_decode_with_fields_like_ros(foxglove_mcap: Path) -> None:
    from robodata.msgconv import stamp_ns, to_array

    seen = set()
    with open_recording(foxglove_mcap) as rec:
        for m in rec.messages():
            if m.topic in seen:
                continue
            seen.add(m.topic)
            # the message's own timestamp (a FrameTransforms, like a ROS TFMessage, has none of its own: log time)
            assert stamp_ns(m.data) == (None if m.topic == "/tf" else m.log_time_ns - LATENCY_NS)
            if m.topic == "/gripper/pose":
                assert np.allclose(to_array(m.data, None, m.msgtype), [0, 0.2, 0.3, 0, 0, 0, 1])
                assert np.allclose(to_array(m.data, "pose.position", m.msgtype), [0, 0.2, 0.3])
            if m.topic == "/tf":
                assert np.allclose(to_array(m.data, None, m.msgtype, ["cube", "base"]),
                                   [0.5, 0, 0.02, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1])
                assert to_array(m.data, "transforms", m.msgtype).shape == (2, 7)
            if m.topic == "/joint_states":
                assert np.allclose(to_array(m.data, "position", m.msgtype), [0, 0, 0.5])
                assert np.allclose(to_array(m.data, None, m.msgtype, ["wrist", "shoulder"]), [0.5, 0.0])
            if m.topic == "/camera/wrist/image":
                assert np.array_equal(to_array(m.data, None, m.msgtype), _frame(0))
    assert len(seen) == 6


def test_foxglove_recording_ingests_to_episodes(foxglove_mcap: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.hdf5"
    rep = ingest_recording(foxglove_mcap, out, load_topic_map(FOXGLOVE_MAP))
    assert len(rep.episodes) == 1 and rep.episodes[0].frames == FRAMES and rep.dropped_frames == 0
    with EpisodeStore(out) as es:
        assert es.schema.task == "stack the cube"
        (name,) = es.demo_names
        ep = es.read(name)
        # Times come from the messages' timestamps, not the (later) log times.
        assert ep.attrs["t0_s"] == pytest.approx(T0 * 1e-9, abs=1e-6)
        assert np.allclose(ep.timestamps, np.arange(FRAMES) / 30, atol=1e-6)
        front, wrist = ep.obs["front"], ep.obs["wrist"]
        assert front.shape == (FRAMES, H, W, 3) and front.dtype == np.uint8
        assert wrist.shape == (FRAMES, H, W, 3)
        for k in (0, 13, FRAMES - 1):
            truth = _frame(k).astype(float)
            assert np.abs(front[k].astype(float) - truth).mean() < 6  # decoded JPEG, the right frame
            assert np.array_equal(wrist[k], _frame(k))  # RawImage bgr8 -> rgb, exactly
        # PoseInFrame: 7-vector, quaternion x, y, z, w.
        gripper = ep.obs["gripper"]
        k = np.arange(FRAMES)
        assert gripper.shape == (FRAMES, 7)
        assert np.allclose(gripper[:, 0], 0.01 * k, atol=1e-5) and np.allclose(gripper[:, 1:3], [0.2, 0.3])
        assert np.allclose(gripper[:, 3:], np.stack([0 * k, 0 * k, np.sin(k / 40), np.cos(k / 40)], 1), atol=1e-5)
        assert np.allclose(ep.obs["cube"][:, 1], -0.1 * k, atol=1e-5) and np.allclose(ep.obs["cube"][:, 6], 1.0)
        # The user's own JointState at 60 Hz: the sample nearest each frame (2 samples per frame, 2 before).
        assert np.allclose(ep.obs["joints"], np.stack([0.1 * (2 * k + 2), -0.2 * (2 * k + 2), 0.5 + 0 * k], 1),
                           atol=1e-5)
        # FrameTransform as an action: translation + rotation, x, y, z, w.
        assert np.allclose(ep.actions, np.stack([0.4 + 0 * k, 0 * k, 0.1 + 0.001 * k] + [0 * k, 1 + 0 * k, 0 * k, 0 * k],
                                                1), atol=1e-5)


def _write_user_proto(path: Path) -> Path:
    """A recording written with ``mcap_protobuf``'s writer: only the user's own types (JointState with a header
    stamp, Command with a timestamp), at 50 Hz, in two episodes split by a gap."""
    from mcap_protobuf.writer import Writer

    with open(path, "wb") as f, Writer(f) as w:
        for k in range(40):
            ns = T0 + k * 20_000_000 + (2_000_000_000 if k >= 20 else 0)
            w.write_message("/joint_states", _joints(ns, k), log_time=ns + LATENCY_NS, publish_time=ns)
            w.write_message("/cmd", _command(ns + 1_000_000, k), log_time=ns + 1_000_000 + LATENCY_NS, publish_time=ns)
    return path


def test_user_proto_recording_ingests_by_field_path(tmp_path: Path) -> None:
    src = _write_user_proto(tmp_path / "own.mcap")
    tm = load_topic_map({
        "fps": 50,
        "reference": {"topic": "/joint_states"},
        "episodes": {"split": "gap", "gap_s": 0.5},
        "features": [
            {"name": "joints", "topic": "/joint_states", "field": "position", "select": ["elbow", "shoulder"],
             "role": "state"},
            {"name": "wrist", "topic": "/joint_states", "field": "position[2]", "role": "state"},
            {"name": "cmd", "topic": "/cmd", "fields": ["data", "gripper"], "names": ["vx", "vy", "grip"], "role": "action"},
        ],
    })
    rep = ingest_recording(src, tmp_path / "raw.hdf5", tm)
    assert [e.frames for e in rep.episodes] == [20, 20]
    with EpisodeStore(tmp_path / "raw.hdf5") as es:
        for i, name in enumerate(es.demo_names):
            ep = es.read(name)
            k = np.arange(20) + 20 * i
            # header.stamp (google.protobuf.Timestamp) is the clock, not the log time
            assert ep.attrs["t0_s"] == pytest.approx((T0 + k[0] * 20_000_000 + 2e9 * i) * 1e-9, abs=1e-6)
            assert np.allclose(ep.obs["joints"], np.stack([-0.2 * k, 0.1 * k], 1), atol=1e-5)
            assert np.allclose(ep.obs["wrist"][:, 0], 0.5)
            assert np.allclose(ep.actions, np.stack([k, -k, (k % 2 == 0).astype(float)], 1))


def _write_mcap(path: Path, channels: list[tuple[str, str, str, str, bytes, bytes]]) -> Path:
    """A hand-made MCAP: per channel (topic, message encoding, schema name, schema encoding, schema data, payload)."""
    from mcap.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        for topic, enc, sname, senc, sdata, payload in channels:
            sid = w.register_schema(name=sname, encoding=senc, data=sdata)
            cid = w.register_channel(topic=topic, message_encoding=enc, schema_id=sid)
            for k in range(3):
                w.add_message(cid, log_time=T0 + k * 10**8, data=payload, publish_time=T0 + k * 10**8)
        w.finish()
    return path


def test_flatbuffer_channel_is_refused_with_one_clear_error(tmp_path: Path) -> None:
    src = _write_mcap(tmp_path / "fb.mcap", [
        ("/camera/front/compressed", "flatbuffer", "foxglove.CompressedImage", "flatbuffer", b"BFBS\x00\x01", b"\x10\x00\x00\x00"),
    ])
    with open_recording(src) as rec:
        assert rec.topics()["/camera/front/compressed"].encoding == "flatbuffer"  # inspect still lists it
        with pytest.raises(RecordingError) as err:
            next(iter(rec.messages()))
    msg = str(err.value)
    assert str(src) in msg
    assert ("flatbuffer-encoded channel /camera/front/compressed (schema foxglove.CompressedImage): not supported; "
            "re-record with protobuf or ROS 2 CDR") in msg
    tm = dict(FOXGLOVE_MAP, features=[{"name": "front", "topic": "/camera/front/compressed", "role": "state"},
                                      {"name": "a", "topic": "/camera/front/compressed", "role": "action"}])
    with pytest.raises(IngestError, match="flatbuffer-encoded channel /camera/front/compressed") as err2:
        ingest_recording(src, tmp_path / "out.hdf5", load_topic_map(tm))
    assert str(err2.value).count(str(src)) == 1 and "\n" not in str(err2.value)
    assert not (tmp_path / "out.hdf5").exists()


def test_unknown_encoding_and_broken_descriptor_name_topic_and_schema(tmp_path: Path) -> None:
    src = _write_mcap(tmp_path / "odd.mcap", [
        ("/odom", "cbor", "acme.Odometry", "cddl", b"odometry = {}", b"\xa0"),
        ("/joints", "protobuf", "demo.JointState", "protobuf", b"\x0a\x05junk!", b""),
    ])
    with open_recording(src) as rec:
        with pytest.raises(RecordingError, match=r"channel /odom \(schema acme.Odometry\): message encoding 'cbor' "
                                                 r"is not supported") as err:
            next(iter(rec.messages(["/odom"])))
        assert str(src) in str(err.value)
        with pytest.raises(RecordingError, match=r"channel /joints \(schema demo.JointState\): its FileDescriptorSet "
                                                 r"does not build") as err:
            next(iter(rec.messages(["/joints"])))
        assert str(src) in str(err.value)
        # raw bytes are still there for whoever wants them
        assert next(iter(rec.messages(["/odom"], decode=False))).data == b"\xa0"


# -- foxglove.CompressedVideo: an h264 stream, a packet per message -----------------------------------------------

VIDEO_FRAMES, GOP = 40, 10


def _h264_packets(n: int) -> list[bytes]:
    """``n`` frames (a bright bar ``k + 1`` px wide in frame k) encoded as an Annex B h264 stream, one packet per
    frame, a keyframe (with SPS/PPS) every ``GOP`` frames and no B-frames, as foxglove.CompressedVideo wants.
    libx264 when PyAV has it, else another h264 encoder it has."""
    import av

    name = next(c for c in ("libx264", "libopenh264", "h264") if c in av.codecs_available)
    enc = av.CodecContext.create(name, "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.gop_size = GOP
    enc.max_b_frames = 0
    if name == "libx264":
        enc.options = {"tune": "zerolatency", "bframes": "0", "keyint_min": str(GOP), "sc_threshold": "0"}
    out = []
    for k in range(n):
        img = np.zeros((H, W, 3), np.uint8)
        img[:, : k + 1] = 210
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = k
        out.append(b"".join(bytes(p) for p in enc.encode(frame)))
    assert all(out), "the encoder held frames back"
    return out


def _bar_width(img: np.ndarray) -> int:
    return int((img.mean(axis=(0, 2)) > 105).sum())


def _write_foxglove_video(path: Path, packets: list[bytes], first: int = 0, fmt: str = "h264") -> Path:
    """A Foxglove SDK recording: ``/cam/video`` (CompressedVideoChannel) from packet ``first`` on, with joint states
    (JointStatesChannel) and a gripper pose (PoseInFrameChannel) at the same 30 Hz."""
    import foxglove
    import foxglove.channels as fc
    import foxglove.messages as fm

    ctx = foxglove.Context()
    writer = foxglove.open_mcap(path, context=ctx)
    video = fc.CompressedVideoChannel("/cam/video", context=ctx)
    joints = fc.JointStatesChannel("/joints", context=ctx)
    pose = fc.PoseInFrameChannel("/gripper/pose", context=ctx)
    for k in range(len(packets)):
        ns = T0 + k * 1_000_000_000 // 30
        stamp = fm.Timestamp(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)
        if k >= first:
            video.log(fm.CompressedVideo(timestamp=stamp, frame_id="cam", data=packets[k], format=fmt), log_time=ns)
        joints.log(fm.JointStates(timestamp=stamp, joints=[fm.JointState(name="a", position=0.1 * k),
                                                           fm.JointState(name="b", position=-0.1 * k)]), log_time=ns)
        pose.log(fm.PoseInFrame(timestamp=stamp, frame_id="base", pose=fm.Pose(
            position=fm.Vector3(x=0.01 * k, y=0.0, z=0.0), orientation=fm.Quaternion(w=1.0))), log_time=ns)
    writer.close()
    return path


VIDEO_MAP = {
    "fps": 30,
    "reference": {"topic": "/cam/video"},
    "sync": {"method": "nearest", "tolerance_s": 0.01},
    "features": [
        {"name": "cam", "topic": "/cam/video", "role": "image"},
        {"name": "joints", "topic": "/joints", "select": ["b", "a"], "role": "state"},
        {"name": "gripper", "topic": "/gripper/pose", "role": "action"},
    ],
}


@pytest.fixture(scope="module")
def h264_packets() -> list[bytes]:
    return _h264_packets(VIDEO_FRAMES)


def test_compressed_video_is_decoded_as_a_stream_and_ingested(h264_packets: list[bytes], tmp_path: Path) -> None:
    src = _write_foxglove_video(tmp_path / "video.mcap", h264_packets)
    with open_recording(src) as rec:
        assert rec.topics()["/cam/video"].msgtype == "foxglove.CompressedVideo"
        frames = [m for m in rec.messages(["/cam/video"])]
    assert len(frames) == VIDEO_FRAMES
    assert [m.log_time_ns for m in frames] == [T0 + k * 1_000_000_000 // 30 for k in range(VIDEO_FRAMES)]
    assert [_bar_width(m.data.image) for m in frames] == [k + 1 for k in range(VIDEO_FRAMES)]  # in order
    assert [k for k, m in enumerate(frames) if m.data.keyframe] == list(range(0, VIDEO_FRAMES, GOP))
    rep = ingest_recording(src, tmp_path / "raw.hdf5", load_topic_map(VIDEO_MAP))
    assert [e.frames for e in rep.episodes] == [VIDEO_FRAMES] and rep.dropped_frames == 0
    with EpisodeStore(tmp_path / "raw.hdf5") as es:
        ep = es.read(es.demo_names[0])
        cam = ep.obs["cam"]
        assert cam.shape == (VIDEO_FRAMES, H, W, 3) and cam.dtype == np.uint8
        assert [_bar_width(img) for img in cam] == [k + 1 for k in range(VIDEO_FRAMES)]
        k = np.arange(VIDEO_FRAMES)
        assert np.allclose(ep.obs["joints"], np.stack([-0.1 * k, 0.1 * k], 1), atol=1e-6)
        assert np.allclose(ep.actions[:, 0], 0.01 * k, atol=1e-6)


def test_a_video_stream_that_starts_before_a_keyframe_starts_at_the_first(h264_packets: list[bytes],
                                                                          tmp_path: Path) -> None:
    from robodata.readers.base import RecordingWarning

    src = _write_foxglove_video(tmp_path / "late.mcap", h264_packets, first=3)  # packets 3..9 are delta frames
    with pytest.warns(RecordingWarning, match=r"late.mcap: topic /cam/video \(foxglove.CompressedVideo, h264\): the "
                                              r"stream starts before a keyframe; its first 7 message\(s\) are skipped"):
        rep = ingest_recording(src, tmp_path / "raw.hdf5", load_topic_map(VIDEO_MAP))
    assert [e.frames for e in rep.episodes] == [VIDEO_FRAMES - GOP]
    with EpisodeStore(tmp_path / "raw.hdf5") as es:
        ep = es.read(es.demo_names[0])
        assert [_bar_width(img) for img in ep.obs["cam"]] == [k + 1 for k in range(GOP, VIDEO_FRAMES)]
        assert ep.attrs["t0_s"] == pytest.approx((T0 + GOP * 1_000_000_000 // 30) * 1e-9, abs=1e-6)


def test_an_unknown_video_format_is_one_sentence_naming_file_topic_schema_and_format(tmp_path: Path) -> None:
    src = _write_foxglove_video(tmp_path / "odd.mcap", [b"\x00\x00\x01\xb3junk"] * 3, fmt="theora")
    with open_recording(src) as rec:
        with pytest.raises(RecordingError) as err:
            next(iter(rec.messages(["/cam/video"])))
    assert str(err.value) == (f"{src}: topic /cam/video (schema foxglove.CompressedVideo): video format 'theora' is "
                              "not supported (h264, h265, hevc, vp9, av1 are)")
    with pytest.raises(IngestError) as err2:
        ingest_recording(src, tmp_path / "raw.hdf5", load_topic_map(VIDEO_MAP))
    assert str(err2.value).count(str(src)) == 1 and "video format 'theora' is not supported" in str(err2.value)
    assert not (tmp_path / "raw.hdf5").exists()
