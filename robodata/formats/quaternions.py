"""Which order a file's quaternions are in (``wxyz`` or ``xyzw``), and converting between the two.

robodata's own order is ``x, y, z, w`` (ROS, MCAP/foxglove, and Isaac Lab from 3.0 on). Isaac Lab 2.x and
Isaac Sim write ``w, x, y, z``; nothing in an Isaac Lab recording says which (its ``env_args`` holds the env
name only), so :func:`decide_order` takes, first to last: an explicit setting, a stamp in the file
(``env_args`` keys ``quaternion_order`` / ``quat_convention`` / ``quat_order``), then the data itself.

Why the data can tell: manipulation scenes are upright. A robot base, a table, a cube at rest are rotated
about the vertical axis only, so their quaternions are ``(cos a, 0, 0, sin a)`` in ``wxyz`` and
``(0, 0, sin a, cos a)`` in ``xyzw``: the two columns that are (near) zero say the order. At a = 0 (the
usual robot base) ``(1, 0, 0, 0)`` and ``(0, 0, 0, 1)`` fit both hypotheses, so the scalar part breaks the
tie: under the right order it is the larger one (identity-heavy scenes). Each order is scored as the mean
squared scalar part minus the mean squared tilt components; a decision needs a clear margin, else the order
stays unknown and the caller says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

QuatOrder = Literal["wxyz", "xyzw"]
ORDERS: tuple[str, ...] = ("wxyz", "xyzw")
CANONICAL: QuatOrder = "xyzw"
STAMP_KEYS = ("quaternion_order", "quat_convention", "quat_order")
_MARGIN = 0.2  # score difference needed to decide
_UNIT_TOL = 0.05  # rows with | |q| - 1 | above this are no quaternions (padding, garbage)


@dataclass(frozen=True)
class OrderDecision:
    """A file's quaternion order and where it came from (``setting``, ``stamp``, ``data``, ``assumed``)."""

    order: QuatOrder
    source: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.order} ({self.source}{': ' + self.detail if self.detail else ''})"


def reorder(q: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Quaternions in the last axis (size 4) from order ``src`` to ``dst``."""
    if src == dst:
        return q
    if src == "wxyz" and dst == "xyzw":
        return q[..., [1, 2, 3, 0]]
    if src == "xyzw" and dst == "wxyz":
        return q[..., [3, 0, 1, 2]]
    raise ValueError(f"unknown quaternion orders {src!r} -> {dst!r} (one of {ORDERS})")


def reorder_columns(values: np.ndarray, starts: Iterable[int], src: str, dst: str) -> np.ndarray:
    """``values`` (n, D) with a quaternion at each of ``starts`` (column offsets) reordered; a copy."""
    out = np.array(values, copy=True)
    flat = out.reshape(len(out), -1)
    for s in starts:
        flat[:, s : s + 4] = reorder(flat[:, s : s + 4], src, dst)
    return out


def scores(quats: np.ndarray) -> dict[str, float] | None:
    """Per order: mean squared scalar part minus mean squared tilt (x, y) parts; ``None`` without unit rows."""
    raw: np.ndarray = np.asarray(quats, np.float64).reshape(-1, 4)
    finite = raw[np.isfinite(raw).all(axis=1)]
    q = finite[np.abs(np.linalg.norm(finite, axis=1) - 1) < _UNIT_TOL]
    if not len(q):
        return None
    sq = q**2
    return {
        "wxyz": float(sq[:, 0].mean() - (sq[:, 1] + sq[:, 2]).mean()),
        "xyzw": float(sq[:, 3].mean() - (sq[:, 0] + sq[:, 1]).mean()),
    }


def detect(samples: Mapping[str, np.ndarray]) -> tuple[QuatOrder | None, str]:
    """The order the named quaternion samples (each (..., 4)) agree on, or ``None``; and the evidence."""
    total = {"wxyz": 0.0, "xyzw": 0.0}
    used = []
    for name, q in samples.items():
        s = scores(q)
        if s is None:
            continue
        used.append(name)
        for k in total:
            total[k] += s[k]
    if not used:
        return None, "no quaternion data to look at"
    n = len(used)
    w, x = total["wxyz"] / n, total["xyzw"] / n
    what = f"{', '.join(used[:4])}{' ...' if n > 4 else ''}: score wxyz {w:+.2f}, xyzw {x:+.2f}"
    if abs(w - x) < _MARGIN:
        return None, what
    return ("wxyz" if w > x else "xyzw"), what


def stamped(env_args: Mapping[str, Any]) -> str | None:
    """The order a file declares in its env_args (or robodata's block in it), normalised; ``None`` if none."""
    blocks = [env_args, env_args.get("robodata") or {}, env_args.get("env_kwargs") or {}]
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        for key in STAMP_KEYS:
            v = block.get(key)
            if isinstance(v, str) and v.lower().replace(",", "").replace(" ", "") in ORDERS:
                return v.lower().replace(",", "").replace(" ", "")
    return None


def decide_order(setting: str | None, env_args: Mapping[str, Any], samples: Mapping[str, np.ndarray],
                 where: str, assume: QuatOrder = "wxyz") -> OrderDecision:
    """A file's quaternion order: ``setting`` (``wxyz``/``xyzw``; ``auto``/None looks), the file's stamp,
    the data, else ``assume`` (Isaac Lab 2.x's order) with the reason."""
    if setting not in (None, "auto"):
        if setting not in ORDERS:
            raise ValueError(f"{where}: quaternion order {setting!r} is not one of auto, {', '.join(ORDERS)}")
        return OrderDecision(setting, "setting")  # type: ignore[arg-type]
    stamp = stamped(env_args)
    if stamp:
        return OrderDecision(stamp, "stamp", "env_args")  # type: ignore[arg-type]
    found, evidence = detect(samples)
    if found:
        return OrderDecision(found, "data", evidence)
    return OrderDecision(assume, "assumed", f"the data does not tell ({evidence}); set quaternion_order")
