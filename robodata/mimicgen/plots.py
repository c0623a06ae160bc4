"""The generation overview plot: source vs generated object and goal positions, and end-effector paths (x, y)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def generation_overview_png(sources: Sequence[Any], scenes: Sequence[dict[str, Any]], title: str = "") -> bytes:
    """``sources``: :class:`~robodata.mimicgen.source.SourceDemo` list; ``scenes``: ``GenerationReport.scenes``."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8, 3.2), dpi=80)
    ax1 = fig.add_subplot(1, 2, 1)
    for label, pts, style in (
        ("source cube", [s.objects["cube"][0, :2, 3] for s in sources if "cube" in s.objects], "ks"),
        ("source goal", [s.objects["goal"][0, :2, 3] for s in sources if "goal" in s.objects], "kx"),
        ("generated cube", [sc["object"][:2] for sc in scenes if sc.get("object")], "bs"),
        ("generated goal", [sc["goal"][:2] for sc in scenes if sc.get("goal")], "rx"),
    ):
        if pts:
            a = np.asarray(pts)
            ax1.plot(a[:, 0], a[:, 1], style, ms=4, alpha=0.7, label=label, fillstyle="none")
    ax1.set_title("object and goal positions (x, y)", fontsize=9)
    ax1.set_aspect("equal", adjustable="datalim")
    ax1.legend(fontsize=6)
    ax2 = fig.add_subplot(1, 2, 2)
    for s in sources:
        ax2.plot(s.eef_measured[:, 0, 3], s.eef_measured[:, 1, 3], "k-", lw=1.2, alpha=0.8)
    for sc in scenes[:40]:
        xy = np.asarray(sc["eef_xy"])
        ax2.plot(xy[:, 0], xy[:, 1], "-", lw=0.7, alpha=0.6)
    ax2.set_title("end-effector paths: source (black), generated", fontsize=9)
    ax2.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
