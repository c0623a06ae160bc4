"""A robot's kinematic model (URDF or MJCF) loaded with pinocchio: joints, limits, frames.

Conventions: joint positions in rad (revolute) or m (prismatic), velocities in rad/s or m/s, lengths in m.
A model exposes the *scalar* joints (one degree of freedom: revolute, continuous, prismatic) by name; joints
with several coordinates (free, planar, spherical, MuJoCo's merged slide joints) are not addressable by a
data column and stay at the reference configuration (or a value given in ``locked``).

URDF is parsed by pinocchio (``buildModelFromUrdf``). MJCF is parsed by pinocchio too
(``buildModelFromMJCF``), after MuJoCo compiles the file into one self-contained document (resolving
``<include>`` and defaults): pinocchio 4.1's MJCF parser reads only the *first* body tree under
``<worldbody>`` and silently returns an empty model for files such as gymnasium-robotics' Fetch scene, whose
first bodies are the floor and a mocap target. We therefore keep the one top-level body tree that holds the
end-effector frame (or, without one, the tree with the most joints) and hand that to pinocchio.
MJCF has no velocity limits, so an MJCF model says "no velocity limits in the model".
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.errors import RobodataError

FORMATS = ("urdf", "mjcf")
_SUFFIX_FORMATS = {".urdf": "urdf", ".mjcf": "mjcf"}
_ROOT_TAGS = {"<robot": "urdf", "<mujoco": "mjcf"}
_NO_LIMIT = 1e300  # pinocchio fills missing limits with +-inf or +-max double
NO_VELOCITY_LIMITS = "no velocity limits in the model"


class RobotModelError(RobodataError):
    """A robot model file does not load, or a joint or frame named by the user is not in it."""


class JointNameError(RobotModelError):
    """Joint names in the data do not match the robot model's."""


@dataclass(frozen=True)
class JointInfo:
    """One scalar joint of the model.

    ``lower``/``upper``: position limits (``-inf``/``inf`` when unbounded); ``velocity``: the velocity limit
    (None when the model has none); ``unit``: ``rad`` or ``m``; ``kind``: revolute, continuous or prismatic.
    ``idx_q``/``nq``/``idx_v`` locate it in pinocchio's configuration and velocity vectors.
    """

    name: str
    model_name: str
    kind: str
    unit: str
    lower: float
    upper: float
    velocity: float | None
    idx_q: int
    nq: int
    idx_v: int

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.lower) or math.isfinite(self.upper)


def close_matches(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest known names, or an empty string."""
    near = difflib.get_close_matches(name, list(known), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""


def detect_format(path: Path) -> str:
    """``urdf`` or ``mjcf``, from the suffix, else from the root element of the document."""
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt:
        return fmt
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    found = [(head.find(tag), fmt) for tag, fmt in _ROOT_TAGS.items() if tag in head]
    if not found:
        raise RobotModelError(f"{path}: neither a URDF (<robot>) nor an MJCF (<mujoco>) document; "
                              "pass format='urdf' or format='mjcf'")
    return min(found)[1]


def _kind(shortname: str) -> tuple[str, str] | None:
    """(kind, unit) of a one-degree-of-freedom pinocchio joint type, None for the others."""
    s = shortname.removeprefix("JointModel")
    if s.startswith("RUB"):
        return "continuous", "rad"
    if s.startswith(("RX", "RY", "RZ", "RevoluteUnaligned", "RevoluteUnboundedUnaligned")):
        return ("continuous" if "Unbounded" in s else "revolute"), "rad"
    if s.startswith(("PX", "PY", "PZ", "PrismaticUnaligned")):
        return "prismatic", "m"
    return None


def _limit(v: float) -> float:
    return float(v) if abs(float(v)) < _NO_LIMIT else math.copysign(math.inf, float(v))


def _mjcf_robot_document(path: Path, ee_frame: str | None) -> str:
    """The MJCF at ``path`` compiled by MuJoCo into one document holding only the robot's body tree."""
    import xml.etree.ElementTree as ET

    import mujoco

    try:
        spec = mujoco.MjSpec.from_file(str(path))
        spec.compile()
        xml = spec.to_xml()
    except Exception as err:  # MuJoCo's parse/compile errors, named with the file
        raise RobotModelError(f"{path}: not a valid MJCF file ({str(err).strip().splitlines()[0]})") from err
    root = ET.fromstring(xml)
    world = root.find("worldbody")
    bodies = [b for b in (world if world is not None else []) if b.tag == "body"]

    def joints(b: ET.Element) -> int:
        return sum(1 for j in b.iter("joint") if j.get("type", "hinge") != "free")

    def holds(b: ET.Element, name: str) -> bool:
        return any(e.get("name") == name for e in b.iter() if e.tag in ("body", "site", "joint", "geom"))

    keep = [b for b in bodies if ee_frame and holds(b, ee_frame)] or sorted(bodies, key=joints, reverse=True)[:1]
    if not keep or joints(keep[0]) == 0:
        raise RobotModelError(f"{path}: the MJCF has no body with joints under <worldbody>")
    for b in bodies:
        if b is not keep[0]:
            assert world is not None
            world.remove(b)
    return ET.tostring(root, encoding="unicode")


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture the process's C-level stderr (fd 2) while parsing: urdfdom and pinocchio print their complaints
    there (``Error:   Joint [j] is missing a child link``), which would otherwise land in the user's terminal or
    a run log as noise beside robodata's own error. Yields a list that holds the captured lines afterwards."""
    lines: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            try:
                yield lines
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            lines += [ln.strip() for ln in text.splitlines() if ln.strip()]


def _parse_error(err: Exception, noise: list[str]) -> str:
    """The first line of ``err`` plus what the parser printed (urdfdom's own lines say what is wrong)."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    said = "; ".join(dict.fromkeys(noise))[:600]
    return first + (f"; the parser said: {said}" if said else "")


def _build_pinocchio(path: Path, fmt: str, ee_frame: str | None) -> Any:
    import pinocchio

    if fmt == "urdf":
        with captured_stderr() as noise:
            try:
                return pinocchio.buildModelFromUrdf(str(path))
            except Exception as err:  # noqa: BLE001 - urdfdom/pinocchio errors, raised below named with the file
                failed = err
        raise RobotModelError(f"{path}: not a valid URDF file (pinocchio could not parse it: "
                              f"{_parse_error(failed, noise)})") from failed
    doc = _mjcf_robot_document(path, ee_frame)
    # pinocchio's MJCF parser reads files, not strings: the document goes through a temporary file.
    with tempfile.TemporaryDirectory(prefix="robodata-mjcf-") as tmp:
        flat = os.path.join(tmp, path.stem + ".xml")
        Path(flat).write_text(doc, encoding="utf-8")
        with captured_stderr() as noise:
            try:
                return pinocchio.buildModelFromMJCF(flat)
            except Exception as err:  # noqa: BLE001 - raised below, named with the file
                failed = err
        raise RobotModelError(f"{path}: pinocchio could not build a model from this MJCF "
                              f"({_parse_error(failed, noise)})") from failed


@dataclass
class RobotModel:
    """A pinocchio model with robodata's view of it: named scalar joints, limits, frames, an end effector.

    Build one with :meth:`load`. ``joint_names`` are the *active* joints (the columns of the joint vectors
    that kinematics functions take, in that order); every other joint stays at ``reference`` (the model's
    ``qpos0`` reference configuration for MJCF, pinocchio's neutral one otherwise, overridden by ``locked``).
    """

    path: Path
    format: str
    model: Any  # pinocchio.Model
    joints: dict[str, JointInfo]
    joint_names: list[str]
    reference: np.ndarray
    ee_frame: str | None = None
    name_prefix: str = ""
    _frames: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        format: str | None = None,
        ee_frame: str | None = None,
        joint_names: Sequence[str] | None = None,
        *,
        locked: Mapping[str, float | Sequence[float]] | None = None,
        name_prefix: str = "",
    ) -> RobotModel:
        """Load a URDF or MJCF file.

        Args:
            format: ``urdf`` or ``mjcf`` (default: from the suffix, else the document's root element).
            ee_frame: the end-effector frame (a URDF link or joint, an MJCF body or site) for kinematics.
            joint_names: the active joints, in the data's order (default: every scalar joint, model order).
            locked: positions of other joints (by name; a multi-coordinate joint takes a sequence), e.g. a
                mobile base's pose, used wherever a configuration is built.
            name_prefix: a namespace the model puts before every name (MuJoCo's ``robot0:``), left out of the
                names this model exposes: the data names ``shoulder_pan_joint``, the file ``robot0:shoulder_pan_joint``.
        """
        import pinocchio

        p = Path(path)
        if not p.is_file():
            raise RobotModelError(f"{p}: no such robot model file")
        fmt = (format or detect_format(p)).lower()
        if fmt not in FORMATS:
            raise RobotModelError(f"{p}: unknown robot model format {format!r} (choose from {list(FORMATS)})")
        model = _build_pinocchio(p, fmt, name_prefix + ee_frame if ee_frame else None)
        if model.njoints <= 1:
            raise RobotModelError(f"{p}: the {fmt.upper()} model has no joints")

        def short(n: str) -> str:
            return n[len(name_prefix):] if name_prefix and n.startswith(name_prefix) else n

        joints: dict[str, JointInfo] = {}
        for j in range(1, model.njoints):
            jm = model.joints[j]
            k = _kind(jm.shortname())
            if k is None or jm.nv != 1:
                continue
            iq, iv = int(jm.idx_q), int(jm.idx_v)
            bounded = jm.nq == 1
            vel = _limit(model.velocityLimit[iv])
            joints[short(model.names[j])] = JointInfo(
                short(model.names[j]), model.names[j], k[0], k[1],
                _limit(model.lowerPositionLimit[iq]) if bounded else -math.inf,
                _limit(model.upperPositionLimit[iq]) if bounded else math.inf,
                vel if math.isfinite(vel) and vel > 0 else None, iq, int(jm.nq), iv)
        refs = model.referenceConfigurations
        reference = np.array(refs["qpos0"] if "qpos0" in refs else pinocchio.neutral(model), dtype=np.float64)
        frames = {short(f.name): i for i, f in enumerate(model.frames)}
        robot = cls(p, fmt, model, joints, list(joints), reference, None, name_prefix, frames)
        if joint_names is not None:
            robot.joint_names = [j.name for j in robot.resolve(joint_names)]
        if ee_frame is not None:
            robot.frame_id(ee_frame)
            robot.ee_frame = ee_frame
        for name, value in (locked or {}).items():
            robot._lock(name, value)
        return robot

    # -- names ---------------------------------------------------------------------------------------

    @property
    def frames(self) -> list[str]:
        """Every frame of the model (links/bodies, joints, sites), prefix left out."""
        return list(self._frames)

    @property
    def has_velocity_limits(self) -> bool:
        return any(j.velocity is not None for j in self.joints.values())

    def frame_id(self, name: str) -> int:
        fid = self._frames.get(name)
        if fid is None:
            raise RobotModelError(f"{self.path}: no frame {name!r} in the model{close_matches(name, self._frames)}")
        return fid

    def resolve(self, names: Sequence[str]) -> list[JointInfo]:
        """The joints named ``names`` (data names), or one :class:`JointNameError` naming every mismatch."""
        unknown = [n for n in names if n not in self.joints]
        if unknown:
            what = ", ".join(f"{n!r}{close_matches(n, self.joints)}" for n in unknown)
            raise JointNameError(f"{self.path}: joint name(s) not in the robot model: {what}; "
                                 f"the model's joints are {list(self.joints)}")
        dup = sorted({n for n in names if list(names).count(n) > 1})
        if dup:
            raise JointNameError(f"{self.path}: joint name(s) given more than once: {dup}")
        return [self.joints[n] for n in names]

    def _lock(self, name: str, value: float | Sequence[float]) -> None:
        vals = np.atleast_1d(np.asarray(value, dtype=np.float64))
        for j in range(1, self.model.njoints):
            n = self.model.names[j]
            if n == name or n == self.name_prefix + name or n.removeprefix("Composite_") in (name, self.name_prefix + name):
                jm = self.model.joints[j]
                if vals.size != jm.nq:
                    raise RobotModelError(f"{self.path}: joint {name!r} has {jm.nq} position coordinate(s), "
                                          f"locked value has {vals.size}")
                self.reference[jm.idx_q:jm.idx_q + jm.nq] = vals
                return
        names = [self.model.names[j] for j in range(1, self.model.njoints)]
        raise RobotModelError(f"{self.path}: cannot lock joint {name!r}: not in the model{close_matches(name, names)}")

    # -- limits and configurations ----------------------------------------------------------------------

    def limits(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``lower``, ``upper``, ``velocity`` (nan where none) arrays for ``names`` (default: active joints)."""
        js = self.resolve(names if names is not None else self.joint_names)
        return {
            "lower": np.array([j.lower for j in js]),
            "upper": np.array([j.upper for j in js]),
            "velocity": np.array([j.velocity if j.velocity is not None else np.nan for j in js]),
        }

    def configuration(self, q: np.ndarray) -> np.ndarray:
        """pinocchio configurations ``(..., nq)`` from active-joint positions ``(..., J)`` (others at ``reference``)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape[-1] != len(self.joint_names):
            raise RobotModelError(f"{self.path}: joint vectors have {len(self.joint_names)} values "
                                  f"({self.joint_names}), got {q.shape[-1]}")
        out = np.broadcast_to(self.reference, q.shape[:-1] + self.reference.shape).copy()
        for c, name in enumerate(self.joint_names):
            j = self.joints[name]
            if j.nq == 1:
                out[..., j.idx_q] = q[..., c]
            else:  # continuous joints are (cos, sin) in pinocchio
                out[..., j.idx_q] = np.cos(q[..., c])
                out[..., j.idx_q + 1] = np.sin(q[..., c])
        return out

    def active_positions(self, config: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`configuration`: active-joint positions ``(..., J)`` of configurations."""
        config = np.asarray(config, dtype=np.float64)
        cols = []
        for name in self.joint_names:
            j = self.joints[name]
            if j.nq == 1:
                cols.append(config[..., j.idx_q])
            else:
                cols.append(np.arctan2(config[..., j.idx_q + 1], config[..., j.idx_q]))
        return np.stack(cols, axis=-1)

    def velocity_columns(self) -> list[int]:
        """Indices of the active joints in pinocchio's velocity vector (Jacobian columns)."""
        return [self.joints[n].idx_v for n in self.joint_names]

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: file, format, joints with limits, end effector, velocity-limit note."""
        return {
            "path": str(self.path), "format": self.format, "ee_frame": self.ee_frame,
            "joints": {n: {"kind": j.kind, "unit": j.unit, "lower": j.lower, "upper": j.upper,
                           "velocity": j.velocity} for n, j in self.joints.items()},
            "active_joints": list(self.joint_names),
            "velocity_limits": None if self.has_velocity_limits else NO_VELOCITY_LIMITS,
        }


def packaged_urdf(relpath: str, distribution: str = "example-robot-data") -> Path:
    """A robot description a pip package ships, e.g. ``packaged_urdf("panda_description/urdf/panda.urdf")``.

    example-robot-data (a cmeel wheel) installs its robots under ``cmeel.prefix/share/example-robot-data/robots``.
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import distribution as dist

    try:
        d = dist(distribution)
    except PackageNotFoundError as err:
        raise RobotModelError(f"package {distribution!r} is not installed (pip install {distribution})") from err
    p = Path(str(d.locate_file(f"cmeel.prefix/share/{distribution}/robots/{relpath}")))
    if not p.is_file():
        raise RobotModelError(f"{p}: {distribution} has no robot description {relpath!r}")
    return p


def gymnasium_robotics_mjcf(relpath: str = "fetch/pick_and_place.xml") -> Path:
    """An MJCF scene gymnasium-robotics ships (default: the Fetch pick-and-place scene robodata's simulator runs)."""
    try:
        import gymnasium_robotics
    except ImportError as err:
        raise RobotModelError(f"gymnasium-robotics is not installed, so its {relpath} is not available") from err
    p = Path(gymnasium_robotics.__file__).parent / "envs" / "assets" / relpath
    if not p.is_file():
        raise RobotModelError(f"{p}: gymnasium-robotics has no MJCF {relpath!r}")
    return p


def load_configured(cfg: Any, path: str | os.PathLike[str]) -> RobotModel:
    """The project's ``quality.robot_model`` (a :class:`robodata.config.RobotModelConfig`, file at ``path``)
    loaded once up front, where the configuration is read (CLI start, the code location's definitions): a model
    that does not parse is one :class:`RobotModelError` naming the file, a configuration error, not a finding on
    every recording (``blocking`` is for the data's findings)."""
    return RobotModel.load(path, cfg.format, locked=cfg.locked or None, name_prefix=cfg.name_prefix)
