"""ROS 2 message definitions as ``ros2 bag record`` stores them in an MCAP schema (``ros2msg`` encoding).

A schema is the type's own ``.msg`` text followed, for every type it uses (depth first, each once), by a
separator line of 80 ``=``, a ``MSG: pkg/Type`` line and that type's text. Field lists are those of ROS 2
(Humble and later); comments are left out, as readers ignore them.
"""

from __future__ import annotations

import re

from robodata.errors import RobodataError

SEPARATOR = "=" * 80

# The .msg text of each type, by full name (pkg/msg/Type). Defaults (``float64 w 1``) are part of the text.
MSG_TEXT: dict[str, str] = {
    "builtin_interfaces/msg/Time": "int32 sec\nuint32 nanosec\n",
    "std_msgs/msg/Header": "builtin_interfaces/Time stamp\nstring frame_id\n",
    "std_msgs/msg/String": "string data\n",
    "std_msgs/msg/Bool": "bool data\n",
    "std_msgs/msg/MultiArrayDimension": "string label\nuint32 size\nuint32 stride\n",
    "std_msgs/msg/MultiArrayLayout": "MultiArrayDimension[] dim\nuint32 data_offset\n",
    "std_msgs/msg/Float32MultiArray": "MultiArrayLayout layout\nfloat32[] data\n",
    "geometry_msgs/msg/Point": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/msg/Quaternion": "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n",
    "geometry_msgs/msg/Pose": "Point position\nQuaternion orientation\n",
    "geometry_msgs/msg/PoseStamped": "std_msgs/Header header\nPose pose\n",
    "geometry_msgs/msg/PointStamped": "std_msgs/Header header\nPoint point\n",
    "sensor_msgs/msg/Image": (
        "std_msgs/Header header\n"
        "uint32 height\n"
        "uint32 width\n"
        "string encoding\n"
        "uint8 is_bigendian\n"
        "uint32 step\n"
        "uint8[] data\n"
    ),
    "sensor_msgs/msg/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data\n",
    "sensor_msgs/msg/JointState": (
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n"
    ),
}

PRIMITIVES = frozenset(
    "bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 string wstring".split()
)
_FIELD_RE = re.compile(r"^\s*([A-Za-z_][\w/]*)(?:\[[^\]]*\])?\s+\w+")


class MsgDefError(RobodataError):
    """A ROS 2 message type is not one robodata knows the definition of."""


def _full_name(ref: str, package: str) -> str:
    """``Pose`` in geometry_msgs -> ``geometry_msgs/msg/Pose``; ``std_msgs/Header`` -> ``std_msgs/msg/Header``."""
    if "/" not in ref:
        return f"{package}/msg/{ref}"
    pkg, name = ref.split("/")[0], ref.split("/")[-1]
    return f"{pkg}/msg/{name}"


def _dependencies(msgtype: str) -> list[str]:
    """Types used by ``msgtype``, depth first, each once (the order ``ros2 bag record`` writes them)."""
    out: list[str] = []

    def visit(t: str) -> None:
        package = t.split("/")[0]
        for line in MSG_TEXT[t].splitlines():
            m = _FIELD_RE.match(line)
            if not m or m.group(1) in PRIMITIVES:
                continue
            dep = _full_name(m.group(1), package)
            if dep not in MSG_TEXT:
                raise MsgDefError(f"{t} uses {dep}, whose definition robodata does not have")
            if dep not in out:
                out.append(dep)
                visit(dep)

    visit(msgtype)
    return out


def short_name(msgtype: str) -> str:
    """``std_msgs/msg/Header`` -> ``std_msgs/Header`` (the form of a schema's ``MSG:`` lines)."""
    parts = msgtype.split("/")
    return f"{parts[0]}/{parts[-1]}"


def msgdef(msgtype: str) -> str:
    """The concatenated definition of ``msgtype`` (e.g. ``sensor_msgs/msg/Image``), as an MCAP schema holds it."""
    if msgtype not in MSG_TEXT:
        known = ", ".join(sorted(MSG_TEXT))
        raise MsgDefError(f"no ROS 2 definition for message type {msgtype!r} (known: {known})")
    parts = [MSG_TEXT[msgtype].rstrip("\n")]
    for dep in _dependencies(msgtype):
        parts += [SEPARATOR, f"MSG: {short_name(dep)}", MSG_TEXT[dep].rstrip("\n")]
    return "\n".join(parts) + "\n"


IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POINT_STAMPED = "geometry_msgs/msg/PointStamped"
FLOAT32_MULTI_ARRAY = "std_msgs/msg/Float32MultiArray"
STRING = "std_msgs/msg/String"
BOOL = "std_msgs/msg/Bool"
