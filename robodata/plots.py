"""Small PNG plots for the Dagster UI (trajectories, rate histograms), rendered headless with matplotlib."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np


def _fig(w: float = 6.0, h: float = 3.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(w, h), dpi=80)


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def trajectory_and_rates_png(
    trajectories: Mapping[str, np.ndarray], rate_gaps: Mapping[str, Sequence[float]], title: str = ""
) -> bytes:
    """Left: xy of each episode's (T, >=2) trajectory; right: inter-arrival time histogram per topic."""
    plt, fig = _fig(8, 3)
    ax1 = fig.add_subplot(1, 2, 1)
    for name, xy in trajectories.items():
        xy = np.asarray(xy)
        if xy.ndim == 2 and xy.shape[1] >= 2 and len(xy):
            ax1.plot(xy[:, 0], xy[:, 1], lw=1, label=name)
            ax1.plot(xy[0, 0], xy[0, 1], "o", ms=3, color=ax1.lines[-1].get_color())
    ax1.set_title("trajectories (x, y)", fontsize=9)
    ax1.set_aspect("equal", adjustable="datalim")
    if len(trajectories) <= 8:
        ax1.legend(fontsize=6)
    ax2 = fig.add_subplot(1, 2, 2)
    for topic, gaps in rate_gaps.items():
        g = np.asarray(gaps, float) * 1e3
        if len(g):
            ax2.hist(g, bins=40, histtype="step", label=topic)
    ax2.set_xlabel("inter-arrival time (ms)", fontsize=8)
    ax2.set_title("message timing per topic", fontsize=9)
    ax2.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return _png(plt, fig)


def markdown_image(png: bytes, alt: str = "plot") -> str:
    """Markdown with the PNG inlined (the Dagster UI renders it in the metadata panel)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
