"""Messages to arrays: real turtlesim messages (ROS 1), and images/poses/joints written to MCAP and read back."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from robodata.msgconv import FrameNotInMessage, MessageConversionError, stamp_ns, to_array
from robodata.readers import open_recording
from robodata.ros2.mcap_writer import McapRos2Writer, header

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
TURTLES = REALDATA / "rosbag_js" / "example.bag"
T0 = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def turtle():
    """The first message of each topic of the turtlesim bag, and every /tf message."""
    first, tf = {}, []
    with open_recording(TURTLES) as r:
        for m in r.messages():
            first.setdefault(m.topic, m)
            if m.topic == "/tf":
                tf.append(m)
    return first, tf


def test_turtlesim_pose(turtle):
    m = turtle[0]["/turtle1/pose"]
    assert m.msgtype == "turtlesim/msg/Pose"
    whole = to_array(m.data, None, m.msgtype)  # a flat message of numbers: all of them, in field order
    assert whole.shape == (5,) and whole.dtype == np.float64
    xyt = np.concatenate([to_array(m.data, f, m.msgtype) for f in ("x", "y", "theta")])
    np.testing.assert_allclose(xyt, [5.544444561004639, 5.544444561004639, 0.0])
    assert stamp_ns(m.data) is None  # turtlesim/Pose has no header


def test_twist_is_six_numbers_under_both_type_spellings(turtle):
    m = turtle[0]["/turtle1/cmd_vel"]
    for name in ("geometry_msgs/msg/Twist", "geometry_msgs/Twist"):
        np.testing.assert_allclose(to_array(m.data, None, name), [2.0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(to_array(m.data, "linear", m.msgtype), [2.0, 0, 0])
    assert to_array(m.data, "linear.x", m.msgtype).shape == (1,)


def test_tf_select_child_frames(turtle):
    tf = turtle[1]
    t1 = next(m for m in tf if m.data.transforms[0].child_frame_id == "turtle1")
    pose = to_array(t1.data, None, t1.msgtype, select=["turtle1"])
    assert pose.shape == (7,)
    np.testing.assert_allclose(pose[:3], [5.544444561004639, 5.544444561004639, 0.0])
    assert np.linalg.norm(pose[3:]) == pytest.approx(1.0)
    assert stamp_ns(t1.data) is None
    assert to_array(t1.data, "transforms[0].header.stamp", t1.msgtype)[0] > 1.39e9  # Time -> seconds
    with pytest.raises(FrameNotInMessage, match=r"no transform to child frame 'turtle2' .*\(it has: turtle1\)"):
        to_array(t1.data, None, t1.msgtype, select=["turtle2"])
    static = turtle[0]["/tf_static"]
    np.testing.assert_allclose(to_array(static.data, None, static.msgtype, select=["carrot"]), [1, 0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(to_array(static.data, "transforms[0].transform", static.msgtype), [1, 0, 0, 0, 0, 0, 1])


def test_rosout_log_is_not_numeric(turtle):
    m = turtle[0]["/rosout"]
    with pytest.raises(MessageConversionError, match=r"rosgraph_msgs/msg/Log is a message with no numeric conversion"):
        to_array(m.data, None, m.msgtype)
    with pytest.raises(MessageConversionError, match=r"rosgraph_msgs/msg/Log.msg is a string"):
        to_array(m.data, "msg", m.msgtype)
    with pytest.raises(MessageConversionError, match=r"no field 'levle' in rosgraph_msgs/msg/Log .*fields there: header, level"):
        to_array(m.data, "levle", m.msgtype)
    assert to_array(m.data, "level", m.msgtype).tolist() == [2.0]
    assert stamp_ns(m.data) == 1396293887843869098


def test_raw_bytes_are_refused():
    with pytest.raises(MessageConversionError, match="raw bytes"):
        to_array(b"\x00\x01", None, "geometry_msgs/msg/Twist")


# ---- synthetic messages through the MCAP writer and reader -----------------------------------------------


def _image(h: int, w: int, encoding: str, data: bytes, step: int, bigendian: int = 0) -> dict:
    return {
        "header": header(T0, "cam"),
        "height": h,
        "width": w,
        "encoding": encoding,
        "is_bigendian": bigendian,
        "step": step,
        "data": data,
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One MCAP with images in every supported encoding (some with row padding), compressed images, joints, poses."""
    rng = np.random.default_rng(1)
    h, w = 6, 5
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    alpha = np.full((h, w, 1), 7, np.uint8)
    mono = rng.integers(0, 256, (h, w), dtype=np.uint8)
    depth16 = rng.integers(0, 5000, (h, w)).astype(np.uint16)
    depth32 = rng.random((h, w)).astype(np.float32)

    def padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
        rows = rows.reshape(h, -1)
        out = np.concatenate([rows, np.full((h, pad), 0xEE, np.uint8)], axis=1)
        return out.tobytes(), out.shape[1]

    images = {
        "rgb8": (rgb, *padded(rgb.view(np.uint8), 0)),
        "rgb8_padded": (rgb, *padded(rgb.view(np.uint8), 4)),
        "bgr8": (rgb, *padded(rgb[..., ::-1].copy(), 0)),
        "rgba8": (rgb, *padded(np.concatenate([rgb, alpha], 2), 0)),
        "bgra8": (rgb, *padded(np.concatenate([rgb[..., ::-1], alpha], 2), 2)),
        "mono8": (np.repeat(mono[..., None], 3, 2), *padded(mono, 3)),
        "16UC1": (depth16.astype(np.float32), *padded(depth16.view(np.uint8), 2)),
        "32FC1": (depth32, *padded(depth32.view(np.uint8), 0)),
    }
    yy, xx = np.mgrid[0:32, 0:48]
    big = np.stack([xx * 5, yy * 7, (xx + yy) * 3], -1).astype(np.uint8)  # smooth: jpeg keeps it close
    compressed = {}
    for fmt in ("png", "jpeg"):
        buf = io.BytesIO()
        PILImage.fromarray(big).save(buf, format=fmt.upper(), quality=95)
        compressed[fmt] = buf.getvalue()
    path = tmp_path_factory.mktemp("msgconv") / "synthetic.mcap"
    with McapRos2Writer(path) as wr:
        for i, (name, (_, data, step)) in enumerate(images.items()):
            enc = name.split("_")[0]
            wr.write(f"/img/{name}", "sensor_msgs/msg/Image", _image(h, w, enc, data, step), log_time_ns=T0 + i)
        wr.write("/img/yuv", "sensor_msgs/msg/Image", _image(h, w, "yuv422", b"\x00" * (h * w * 2), w * 2), log_time_ns=T0 + 50)
        wr.write("/img/short", "sensor_msgs/msg/Image", _image(h, w, "rgb8", b"\x00" * 10, w * 3), log_time_ns=T0 + 51)
        for i, (fmt, data) in enumerate(compressed.items()):
            msg = {"header": header(T0 + 100 + i), "format": fmt, "data": data}
            wr.write(f"/cimg/{fmt}", "sensor_msgs/msg/CompressedImage", msg)
        broken = {"header": header(T0 + 110), "format": "jpeg", "data": b"not a jpeg"}
        wr.write("/cimg/broken", "sensor_msgs/msg/CompressedImage", broken)
        wr.write(
            "/joint_states",
            "sensor_msgs/msg/JointState",
            {
                "header": header(T0 + 200),
                "name": ["shoulder", "elbow", "wrist"],
                "position": [0.1, 0.2, 0.3],
                "velocity": [1.0, 2.0, 3.0],
                "effort": [],
            },
        )
        wr.write(
            "/pose",
            "geometry_msgs/msg/PoseStamped",
            {
                "header": header(T0 + 300, "world"),
                "pose": {"position": {"x": 1.0, "y": 2.0, "z": 3.0}, "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}},
            },
        )
    with open_recording(path) as r:
        msgs = {m.topic: m for m in r.messages()}
    return msgs, images, big


def test_images_every_encoding_and_row_padding(written):
    msgs, images, _ = written
    for name, (expected, _, _) in images.items():
        m = msgs[f"/img/{name}"]
        arr = to_array(m.data, None, m.msgtype)
        if name in ("16UC1", "32FC1"):
            assert arr.shape == (6, 5) and arr.dtype == np.float32, name
        else:
            assert arr.shape == (6, 5, 3) and arr.dtype == np.uint8, name
        np.testing.assert_array_equal(arr, expected, err_msg=name)
        assert arr.flags.writeable and arr.flags.c_contiguous
    assert stamp_ns(msgs["/img/rgb8"].data) == T0


def test_image_errors_name_the_problem(written):
    msgs = written[0]
    with pytest.raises(MessageConversionError, match=r"sensor_msgs/msg/Image: image encoding 'yuv422' is not supported"):
        to_array(msgs["/img/yuv"].data, None, "sensor_msgs/msg/Image")
    with pytest.raises(MessageConversionError, match=r"6x5 image with step 15 needs 90 bytes, the message has 10"):
        to_array(msgs["/img/short"].data, None, "sensor_msgs/msg/Image")


def test_compressed_images_decode(written):
    msgs, _, big = written
    png = to_array(msgs["/cimg/png"].data, None, "sensor_msgs/msg/CompressedImage")
    np.testing.assert_array_equal(png, big)
    jpg = to_array(msgs["/cimg/jpeg"].data, None, "sensor_msgs/msg/CompressedImage")
    assert jpg.shape == (32, 48, 3) and jpg.dtype == np.uint8
    assert np.abs(jpg.astype(int) - big).mean() < 4  # lossy, but the same picture
    with pytest.raises(MessageConversionError, match=r"CompressedImage: cannot decode its 'jpeg' data \(10 bytes\)"):
        to_array(msgs["/cimg/broken"].data, None, "sensor_msgs/msg/CompressedImage")


def test_joint_state_select(written):
    m = written[0]["/joint_states"]
    np.testing.assert_allclose(to_array(m.data, None, m.msgtype, select=["wrist", "shoulder"]), [0.3, 0.1])
    np.testing.assert_allclose(to_array(m.data, "velocity", m.msgtype, select=["elbow"]), [2.0])
    np.testing.assert_allclose(to_array(m.data, "position", m.msgtype), [0.1, 0.2, 0.3])
    with pytest.raises(MessageConversionError, match=r"no joint 'gripper' in this message \(joints present: shoulder, elbow, wrist\)"):
        to_array(m.data, None, m.msgtype, select=["shoulder", "gripper"])
    with pytest.raises(MessageConversionError, match=r"effort has 0 values for 3 joint names"):
        to_array(m.data, "effort", m.msgtype, select=["elbow"])
    with pytest.raises(MessageConversionError, match="select applies to"):
        to_array(written[0]["/pose"].data, None, "geometry_msgs/msg/PoseStamped", select=["x"])


def test_pose_stamped(written):
    m = written[0]["/pose"]
    np.testing.assert_allclose(to_array(m.data, "pose", m.msgtype), [1, 2, 3, 0, 0, 0, 1])
    np.testing.assert_allclose(to_array(m.data, None, m.msgtype), [1, 2, 3, 0, 0, 0, 1])
    np.testing.assert_allclose(to_array(m.data, "pose.orientation", m.msgtype), [0, 0, 0, 1])
    np.testing.assert_allclose(to_array(m.data, "pose.position", m.msgtype), [1, 2, 3])
    assert stamp_ns(m.data) == T0 + 300
    with pytest.raises(MessageConversionError, match=r"cannot take \[0\] of pose"):
        to_array(m.data, "pose[0]", m.msgtype)


def test_mcap_ros2_decoded_objects_convert_too(written, tmp_path):
    """Messages decoded by mcap_ros2 (lists and bytes instead of numpy arrays) give the same arrays."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    msgs, images, _ = written
    path = tmp_path / "again.mcap"
    with McapRos2Writer(path) as wr:
        js = {"header": header(T0), "name": ["a", "b"], "position": [1.5, 2.5], "velocity": [], "effort": []}
        wr.write("/joint_states", "sensor_msgs/msg/JointState", js)
        img, data, step = images["bgr8"]
        wr.write("/img", "sensor_msgs/msg/Image", _image(6, 5, "bgr8", data, step))
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        decoded = {c.topic: (s.name, d) for s, c, _, d in reader.iter_decoded_messages()}
    name, js = decoded["/joint_states"]
    assert isinstance(js.position, list)
    np.testing.assert_allclose(to_array(js, None, name, select=["b", "a"]), [2.5, 1.5])
    name, im = decoded["/img"]
    assert isinstance(im.data, bytes)
    np.testing.assert_array_equal(to_array(im, None, name), img)
    assert stamp_ns(im) == T0
