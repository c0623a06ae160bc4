"""ROS messages to numpy arrays: the one place that knows how a Pose, a JointState or an Image becomes numbers.

Works on messages decoded by any of robodata's readers (rosbags dataclasses with numpy arrays,
``mcap_ros2`` objects with lists and ``bytes``, protobuf messages, JSON namespaces): fields are looked up by
name, and geometry types are recognised by their fields, so ROS 1 and ROS 2 spellings of a type behave the
same, and so do the Foxglove protobuf schemas (``foxglove.Pose`` is a Pose, ``foxglove.RawImage`` an Image,
``google.protobuf.Timestamp`` a time).

Conversions (``to_array``):

=============================================  ==================================================
``geometry_msgs`` Point, Vector3               ``(3,)`` x, y, z
Quaternion                                     ``(4,)`` x, y, z, w
Pose, Transform (and their ``*Stamped``)       ``(7,)`` x, y, z, qx, qy, qz, qw
``foxglove.`` Pose(InFrame), FrameTransform    ``(7,)`` x, y, z, qx, qy, qz, qw
Twist, Accel, Wrench (and ``*Stamped``)        ``(6,)`` linear/force xyz, angular/torque xyz
``tf2_msgs/TFMessage`` + ``select`` frames     ``(7 * len(select),)`` the transforms of those child frames
                                               (and ``foxglove.FrameTransforms``)
``sensor_msgs/JointState`` + ``select`` names  ``(len(select),)`` of ``position`` (or the field given)
``foxglove.JointStates`` + ``select`` names    ``(len(select),)`` of each joint's ``position`` (or field)
numeric scalar / array                         ``(1,)`` / ``(n,)`` float64 (a message array: stacked)
bool scalar / array                            ``(1,)`` / ``(n,)`` bool
a message of numeric scalars only              ``(n,)`` float64 in field order (turtlesim/Pose)
``builtin_interfaces/Time``, ``Duration``      ``(1,)`` seconds (and ``google.protobuf.Timestamp``)
``sensor_msgs/Image``                          ``(H, W, 3)`` uint8 (rgb8, bgr8, rgba8, bgra8, mono8);
                                               ``(H, W)`` float32 (16UC1, 32FC1 depth)
                                               (and ``foxglove.RawImage``)
``sensor_msgs/CompressedImage``                ``(H, W, 3)`` uint8 (jpeg/png); ``(H, W)`` float32
                                               for ``compressedDepth`` png (and ``foxglove.CompressedImage``)
``foxglove.CompressedVideo``                   ``(H, W, 3)`` uint8: the frame a reader decoded from the
                                               topic's stream (:class:`VideoStream`; h264, h265, vp9, av1)
=============================================  ==================================================

A video message is one packet of a stream: it decodes only after the packets before it, so readers decode it
in order (:class:`VideoStream`, one per topic) and hand out a :class:`VideoFrame`, never the packet alone.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from robodata.errors import RobodataError

_FIELD_TOKEN = re.compile(r"\s*(?:\.?([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\])")
IMAGE_TYPES = ("sensor_msgs/msg/Image",)
COMPRESSED_IMAGE_TYPES = ("sensor_msgs/msg/CompressedImage",)
COMPRESSED_VIDEO_TYPES = ("foxglove.CompressedVideo", "foxglove_msgs/msg/CompressedVideo")
_RGB_LIKE = {"rgb8": (3, (0, 1, 2)), "bgr8": (3, (2, 1, 0)), "rgba8": (4, (0, 1, 2)), "bgra8": (4, (2, 1, 0))}
_DEPTH: dict[str, np.dtype] = {"16uc1": np.dtype("uint16"), "mono16": np.dtype("uint16"),
                               "32fc1": np.dtype("float32")}


class MessageConversionError(RobodataError):
    """A message field cannot become an array: unknown field, non-numeric type, missing joint or frame."""


class FrameNotInMessage(MessageConversionError):
    """A TFMessage does not carry a selected child frame (``/tf`` messages often hold a subset of frames)."""


def normalize_msgtype(msgtype: str) -> str:
    """The ROS 2 spelling of a message type: ``geometry_msgs/Pose`` (ROS 1) -> ``geometry_msgs/msg/Pose``.

    ROS 2 names (``pkg/msg/Name``, ``pkg/srv/Name_Event``) and non-ROS names (protobuf ``foo.Bar``) are kept.
    """
    parts = msgtype.strip().split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    return msgtype.strip()


def field_names(obj: Any) -> list[str]:
    """The field names of a decoded message object (any of the decoders robodata uses)."""
    desc = getattr(type(obj), "DESCRIPTOR", None)
    if desc is not None and hasattr(desc, "fields_by_name"):  # a protobuf message: its fields in declared order
        return [f.name for f in desc.fields]
    if dataclasses.is_dataclass(obj):
        # rosbags declares constants (``Log.DEBUG``) as dataclass fields typed ``ClassVar[...]``
        return [f.name for f in dataclasses.fields(obj) if not f.name.startswith("_") and "ClassVar" not in str(f.type)]
    names: list[str] = []
    for cls in type(obj).__mro__:
        for s in getattr(cls, "__slots__", ()) or ():
            if not s.startswith("_") and s not in names:
                names.append(s)
    if hasattr(obj, "__dict__"):
        names += [k for k in vars(obj) if not k.startswith("_") and k not in names]
    return names


_NOT_MESSAGES = (str, bytes, bytearray, memoryview, int, float, bool, list, tuple, np.ndarray, np.generic)


def _is_message(obj: Any) -> bool:
    return not isinstance(obj, _NOT_MESSAGES) and bool(field_names(obj))


def get_field(msg: Any, field: str | None, msgtype: str = "message") -> Any:
    """Follow a field path (``pose.position.x``, ``transforms[0].transform``) into a message."""
    if not field:
        return msg
    value, pos, done = msg, 0, ""
    while pos < len(field):
        m = _FIELD_TOKEN.match(field, pos)
        if m is None or m.end() == pos:
            raise MessageConversionError(f"{msgtype}: cannot parse field path {field!r} at {field[pos:]!r}")
        name, index = m.group(1), m.group(2)
        if name is not None:
            if not _is_message(value) or name not in field_names(value):
                have = field_names(value) if _is_message(value) else []
                where = f"{done} of " if done else ""
                raise MessageConversionError(
                    f"{msgtype}: no field {name!r} in {where}{msgtype if not done else 'it'} (field path {field!r}; "
                    f"fields there: {', '.join(have) or 'none, it is not a message'})"
                )
            value = getattr(value, name)
            done = f"{done}.{name}" if done else name
        else:
            i = int(index)
            try:
                value = value[i]
            except (IndexError, TypeError, KeyError) as err:
                size = len(value) if hasattr(value, "__len__") else "no"
                raise MessageConversionError(
                    f"{msgtype}: cannot take [{i}] of {done or 'the message'} in field path {field!r} ({size} elements)"
                ) from err
            done = f"{done}[{i}]"
        pos = m.end()
    return value


def stamp_ns(msg: Any) -> int | None:
    """The ``header.stamp`` of a message in ns, else its ``timestamp`` when that is a time (the Foxglove schemas'
    convention: ``foxglove.PoseInFrame.timestamp``, a ``google.protobuf.Timestamp``); ``None`` when it has neither."""
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None) if header is not None else None
    if stamp is None:
        stamp = getattr(msg, "timestamp", None)
        if stamp is None or isinstance(stamp, _NOT_MESSAGES) or not _is_set(msg, "timestamp"):
            return None
    return _time_ns(stamp)


def _is_set(msg: Any, name: str) -> bool:
    """Whether a protobuf message field holding a message was set (an unset one reads as its default, zero)."""
    has = getattr(msg, "HasField", None)
    if has is None:
        return True
    try:
        return bool(has(name))
    except ValueError:  # not a message field: presence is not tracked
        return True


def _time_ns(t: Any) -> int | None:
    for s_name, n_name in (("sec", "nanosec"), ("sec", "nsec"), ("secs", "nsecs"), ("seconds", "nanos")):
        if hasattr(t, s_name) and hasattr(t, n_name):
            return int(getattr(t, s_name)) * 1_000_000_000 + int(getattr(t, n_name))
    return None


def _has(obj: Any, *names: str) -> bool:
    return all(hasattr(obj, n) for n in names)


def _xyz(v: Any) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def _geometry(v: Any) -> np.ndarray | None:
    """Geometry types recognised by their fields; ``None`` when ``v`` is none of them."""
    if _has(v, "x", "y", "z", "w") and len(field_names(v)) == 4:
        return np.array([v.x, v.y, v.z, v.w], dtype=np.float64)
    if _has(v, "x", "y", "z") and len(field_names(v)) == 3:
        return np.array(_xyz(v), dtype=np.float64)
    if _has(v, "position", "orientation") and _has(v.orientation, "w"):
        return np.array(_xyz(v.position) + _quat(v.orientation), dtype=np.float64)
    if _has(v, "translation", "rotation") and _has(v.rotation, "w"):
        return np.array(_xyz(v.translation) + _quat(v.rotation), dtype=np.float64)
    for a, b in (("linear", "angular"), ("force", "torque")):
        if _has(v, a, b) and _has(getattr(v, a), "x", "y", "z"):
            return np.array(_xyz(getattr(v, a)) + _xyz(getattr(v, b)), dtype=np.float64)
    # *Stamped / *WithCovariance wrappers (header + one geometry field), and foxglove's *InFrame (frame_id)
    for inner in ("pose", "transform", "twist", "accel", "wrench"):
        if _has(v, inner) and (_has(v, "header") or _has(v, "covariance") or _has(v, "frame_id")):
            return _geometry(getattr(v, inner))
    return None


def _quat(q: Any) -> list[float]:
    return [float(q.x), float(q.y), float(q.z), float(q.w)]


def _numeric(value: Any, where: str) -> np.ndarray:
    if isinstance(value, (bool, np.bool_)):
        return np.array([value], dtype=bool)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return np.array([value], dtype=np.float64)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(value, dtype=np.uint8).astype(np.float64)
    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            return value.copy()
        if value.dtype.kind in "iuf":
            return value.astype(np.float64)
        raise MessageConversionError(f"{where} is an array of {value.dtype}, not numbers")
    if isinstance(value, (list, tuple)):
        if not value:
            return np.zeros(0, dtype=np.float64)
        if all(isinstance(x, (bool, np.bool_)) for x in value):
            return np.array(value, dtype=bool)
        if all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in value):
            return np.array(value, dtype=np.float64)
        if all(_is_message(x) for x in value):
            rows = [_convert(x, f"{where}[{i}]") for i, x in enumerate(value)]
            shapes = {r.shape for r in rows}
            if len(shapes) != 1:
                raise MessageConversionError(f"{where}: its elements convert to different shapes {sorted(shapes)}")
            return np.stack(rows)
        raise MessageConversionError(f"{where} is a list of {type(value[0]).__name__}, not numbers")
    if isinstance(value, Sequence) and not isinstance(value, str):  # a protobuf repeated field
        return _numeric(list(value), where)
    if isinstance(value, str):
        raise MessageConversionError(f"{where} is a string ({value[:40]!r}), not a number")
    raise MessageConversionError(f"{where} is a {type(value).__name__}, not a number")


def _convert(value: Any, where: str) -> np.ndarray:
    if isinstance(value, VideoFrame):
        return value.image
    if _is_message(value):
        if _has(value, "height", "width", "encoding", "step", "data"):
            return image_to_array(value, where)
        if _has(value, "format", "data") and len(field_names(value)) <= 4:  # + header, or timestamp + frame_id
            return compressed_image_to_array(value, where)
        geo = _geometry(value)
        if geo is not None:
            return geo
        names = field_names(value)
        t = _time_ns(value) if len(names) == 2 else None
        if t is not None:
            return np.array([t / 1e9], dtype=np.float64)
        scalars = [getattr(value, n) for n in names]
        if all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in scalars):
            return np.array(scalars, dtype=np.float64)  # a flat message of numbers (turtlesim/Pose, Color...)
        raise MessageConversionError(
            f"{where} is a message with no numeric conversion (fields: {', '.join(field_names(value))}); "
            "name a numeric field of it"
        )
    return _numeric(value, where)


def to_array(msg: Any, field: str | None, msgtype: str, select: list[str] | None = None) -> np.ndarray:
    """Convert ``msg.<field>`` (the whole message when ``field`` is None) to a numpy array.

    ``select`` picks named parts: joints of a ``sensor_msgs/JointState`` (of its ``position``, or of the
    ``field`` given: ``velocity``/``effort``), in the order asked; child frames of a ``tf2_msgs/TFMessage``.

    Raises:
        MessageConversionError: unknown field, a type with no numeric meaning (a log string), a joint or
            frame that is not in the message (``FrameNotInMessage`` for TF), an unsupported image encoding.
    """
    msgtype = normalize_msgtype(msgtype)
    if isinstance(msg, (bytes, bytearray, memoryview)) and msgtype not in ("std_msgs/msg/ByteMultiArray",):
        raise MessageConversionError(f"{msgtype}: got raw bytes, not a decoded message (read it with decode=True)")
    if select is not None:
        return _select(msg, field, msgtype, list(select))
    if msgtype in COMPRESSED_VIDEO_TYPES and not isinstance(msg, VideoFrame) and field in (None, "data"):
        raise MessageConversionError(
            f"{msgtype}: one packet of a video stream, which decodes only in order after the packets before it; "
            "this reader hands out the packets undecoded (MCAP recordings are decoded as a stream)"
        )
    value = get_field(msg, field, msgtype)
    where = f"{msgtype}.{field}" if field else msgtype
    return _convert(value, where)


def _select(msg: Any, field: str | None, msgtype: str, select: list[str]) -> np.ndarray:
    if not select:
        raise MessageConversionError(f"{msgtype}: select is empty")
    # sensor_msgs/JointState, and a user's own JointState-like message (names + parallel value arrays)
    if _has(msg, "name", "position") and not isinstance(msg.name, (str, bytes)):
        names = [str(n) for n in msg.name]
        values = get_field(msg, field or "position", msgtype)
        arr = _numeric(values, f"{msgtype}.{field or 'position'}")
        if len(arr) != len(names):
            raise MessageConversionError(
                f"{msgtype}: {field or 'position'} has {len(arr)} values for {len(names)} joint names"
                + (" (the field is empty in this message)" if len(arr) == 0 else "")
            )
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in select if n not in index]
        if missing:
            raise MessageConversionError(
                f"{msgtype}: no joint {', '.join(map(repr, missing))} in this message "
                f"(joints present: {', '.join(names)})"
            )
        return arr[[index[n] for n in select]]
    joints = getattr(msg, "joints", None) if field is None or field in ("position", "velocity", "effort") else None
    if joints is not None and not isinstance(joints, (str, bytes)):  # foxglove.JointStates: a message per joint
        by_name = {str(j.name): j for j in joints}
        missing = [n for n in select if n not in by_name]
        if missing:
            raise MessageConversionError(
                f"{msgtype}: no joint {', '.join(map(repr, missing))} in this message "
                f"(joints present: {', '.join(by_name) or 'none'})"
            )
        return np.array([float(getattr(by_name[n], field or "position")) for n in select], dtype=np.float64)
    transforms = getattr(msg, "transforms", None) if field in (None, "transforms") else None
    if transforms is not None:  # tf2_msgs/TFMessage (and ROS 1 tf/tfMessage)
        by_child = {str(t.child_frame_id).lstrip("/"): t for t in transforms}
        missing = [f for f in select if f.lstrip("/") not in by_child]
        if missing:
            raise FrameNotInMessage(
                f"{msgtype}: no transform to child frame {', '.join(map(repr, missing))} in this message "
                f"(it has: {', '.join(sorted(by_child)) or 'none'})"
            )
        return np.concatenate([_geometry(by_child[f.lstrip("/")]) for f in select])
    raise MessageConversionError(
        f"{msgtype}: select applies to sensor_msgs/JointState and foxglove.JointStates (joint names) and "
        "tf2_msgs/TFMessage and foxglove.FrameTransforms (child frames)"
    )


def _buffer(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def image_to_array(img: Any, where: str = "sensor_msgs/msg/Image") -> np.ndarray:
    """A ``sensor_msgs/Image`` as ``(H, W, 3)`` uint8 RGB, or ``(H, W)`` float32 for depth; respects ``step``.

    Returns a new array (never a view of the message buffer).
    """
    h, w, step = int(img.height), int(img.width), int(img.step)
    enc = str(img.encoding).lower()
    buf = _buffer(img.data)
    if h * step > buf.size or h <= 0 or w <= 0:
        raise MessageConversionError(
            f"{where}: {h}x{w} image with step {step} needs {h * step} bytes, the message has {buf.size}"
        )
    rows = buf[: h * step].reshape(h, step)
    if enc in _RGB_LIKE:
        ch, order = _RGB_LIKE[enc]
        if step < w * ch:
            raise MessageConversionError(f"{where}: step {step} is shorter than a {enc} row of width {w}")
        px = rows[:, : w * ch].reshape(h, w, ch)
        if order == (0, 1, 2) and ch == 3:
            return np.array(px, dtype=np.uint8, order="C")
        # One plane at a time: ~0.3 ms on a VGA frame, where copying a reversed or 4-to-3 view
        # (px[..., ::-1], px[..., :3]) or fancy indexing (px[..., [2, 1, 0]]) takes ~2 ms.
        out = np.empty((h, w, 3), dtype=np.uint8)
        for dst, src in enumerate(order):
            out[:, :, dst] = px[:, :, src]
        return out
    if enc in ("mono8", "8uc1"):
        if step < w:
            raise MessageConversionError(f"{where}: step {step} is shorter than a mono8 row of width {w}")
        plane = rows[:, :w]
        return np.stack([plane, plane, plane], axis=-1)
    if enc in _DEPTH:
        dt = _DEPTH[enc].newbyteorder(">" if int(getattr(img, "is_bigendian", 0)) else "<")
        if step < w * dt.itemsize:
            raise MessageConversionError(f"{where}: step {step} is shorter than a {enc} row of width {w}")
        depth = rows[:, : w * dt.itemsize].copy().view(dt).reshape(h, w)
        return depth.astype(np.float32)
    raise MessageConversionError(
        f"{where}: image encoding {img.encoding!r} is not supported "
        "(rgb8, bgr8, rgba8, bgra8, mono8, 16UC1, mono16, 32FC1)"
    )


def compressed_image_to_array(img: Any, where: str = "sensor_msgs/msg/CompressedImage") -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` decoded: jpeg/png -> ``(H, W, 3)`` uint8 RGB; ``compressedDepth``
    (image_transport's 12-byte header + 16-bit png) -> ``(H, W)`` float32."""
    from PIL import Image, UnidentifiedImageError

    fmt = str(img.format)
    raw = bytes(_buffer(img.data))
    try:
        if "compresseddepth" in fmt.lower().replace(" ", ""):
            with Image.open(io.BytesIO(raw[12:])) as im:
                return np.asarray(im, dtype=np.uint16).astype(np.float32)
        with Image.open(io.BytesIO(raw)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise MessageConversionError(f"{where}: cannot decode its {fmt!r} data ({len(raw)} bytes): {err}") from err


# -- video streams (foxglove.CompressedVideo): a packet per message, decoded in order -----------------------------

# foxglove's ``format`` -> FFmpeg decoders PyAV may have, in order of preference
_VIDEO_DECODERS = {"h264": ("h264",), "h265": ("hevc",), "hevc": ("hevc",), "vp9": ("libvpx-vp9", "vp9"),
                   "av1": ("libdav1d", "libaom-av1", "av1")}  # fmt: skip


@dataclasses.dataclass(slots=True)
class VideoFrame:
    """One decoded frame of a video stream, in place of its packet message: the message's ``timestamp`` (``None``
    when unset) and ``frame_id``, the stream's ``format``, and ``image`` ``(H, W, 3)`` uint8 RGB."""

    timestamp: Any
    frame_id: str
    format: str
    image: np.ndarray
    keyframe: bool


class VideoStream:
    """The packets of one topic's video stream (``foxglove.CompressedVideo``: h264/h265 Annex B, vp9, av1; one
    frame per message, no B-frames) through one stateful PyAV decoder, frames out in order.

    :meth:`push` takes each message with its log time and returns the ``(log time, VideoFrame)`` pairs ready
    (one per message: the decoder runs single-threaded with low delay, so a frame comes out with its packet);
    :meth:`flush` returns what the decoder still held at the end. Messages before the first keyframe cannot be
    decoded and are skipped (``skipped`` counts them; the reader notes it once).
    """

    def __init__(self, where: str):
        self.where = where
        self.format: str | None = None
        self.skipped = 0
        self.started = False
        self._ctx: Any = None
        self._pending: deque[tuple[int, Any]] = deque()

    def _open(self, fmt: str) -> Any:
        import av

        names = _VIDEO_DECODERS.get(fmt, ())
        for name in names:
            try:
                ctx = av.CodecContext.create(name, "r")
            except (ValueError, av.error.FFmpegError):  # not in this FFmpeg build
                continue
            ctx.thread_count = 1  # frame threads would hold frames back: one frame out per packet in
            try:
                ctx.flags |= av.codec.context.Flags.low_delay
            except (AttributeError, TypeError, ValueError):  # older PyAV spells the flags otherwise; a nicety
                pass
            return ctx
        known = ", ".join(_VIDEO_DECODERS)
        tried = ", ".join(names)
        why = f"has no decoder in this PyAV build (tried {tried})" if names else f"is not supported ({known} are)"
        raise MessageConversionError(f"{self.where}: video format {fmt!r} {why}")

    def push(self, log_time_ns: int, msg: Any) -> list[tuple[int, VideoFrame]]:
        import av

        fmt = str(getattr(msg, "format", "")).strip().lower()
        if self._ctx is None:
            self._ctx, self.format = self._open(fmt), fmt
        elif fmt != self.format:
            raise MessageConversionError(
                f"{self.where}: video format changes from {self.format!r} to {fmt!r} mid-stream"
            )
        data = msg.data
        if isinstance(data, str):  # JSON-encoded foxglove.CompressedVideo: base64
            import base64

            data = base64.b64decode(data)
        raw = bytes(_buffer(data))
        try:
            frames = self._ctx.decode(av.Packet(raw))
        except av.error.FFmpegError as err:
            if not self.started:  # a delta frame before any keyframe (and its parameter sets)
                self.skipped += 1
                return []
            raise MessageConversionError(
                f"{self.where}: cannot decode a {fmt} packet ({len(raw)} bytes): {err}"
            ) from err
        if not self.started:
            keys = [f for f in frames if f.key_frame]
            if not keys:
                self.skipped += 1
                return []
            self.started = True
            frames = keys[:1]
        self._pending.append((log_time_ns, msg))
        return self._pair(frames)

    def flush(self) -> list[tuple[int, VideoFrame]]:
        """The frames the decoder still holds once the stream ends."""
        import av

        if self._ctx is None or not self.started:
            return []
        try:
            frames = self._ctx.decode(None)
        except av.error.FFmpegError as err:
            raise MessageConversionError(
                f"{self.where}: cannot decode the end of the {self.format} stream: {err}"
            ) from err
        return self._pair(frames)

    def _pair(self, frames: list[Any]) -> list[tuple[int, VideoFrame]]:
        out = []
        for f in frames:
            if not self._pending:
                break  # more frames than messages: a message held two; the spec says one, the first is kept
            lt, msg = self._pending.popleft()
            stamp = getattr(msg, "timestamp", None)
            if stamp is not None and not _is_set(msg, "timestamp"):
                stamp = None
            out.append((lt, VideoFrame(stamp, str(getattr(msg, "frame_id", "")), self.format or "",
                                       f.to_ndarray(format="rgb24"), bool(f.key_frame))))  # fmt: skip
        return out
