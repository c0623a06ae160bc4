"""A before/after contact sheet: a few frames of a few clips, source above its variants, as one PNG."""

from __future__ import annotations

import io

import numpy as np


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], width: int = 160) -> bytes:
    """``rows`` are ``(label, frames)``; each frame is scaled to ``width`` pixels wide. Returns PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max((len(f) for _, f in rows), default=1)
    h0, w0 = rows[0][1][0].shape[:2] if rows and rows[0][1] else (1, 1)
    cell = (width / 80, width / 80 * h0 / w0)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(cell[0] * ncols, cell[1] * len(rows) + 0.2 * len(rows)),
                             dpi=80, squeeze=False)
    for r, (label, frames) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(frames):
                ax.imshow(frames[c])
            if c == 0:
                ax.set_title(label, fontsize=7, loc="left")
    fig.tight_layout(pad=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def sheet_from_store(path, max_variants: int = 3, frames: int = 4) -> bytes:
    """Source frames above each of the first few variants (first camera), from an augmented store."""
    from robodata.formats.isaaclab import EpisodeStore
    rows = []
    with EpisodeStore(path) as es:
        cam = es.schema.cameras[0].name
        variants = [d for d in es.demo_names if "augmented_from" in es.attrs(d)][:max_variants]
        for d in variants:
            a = es.attrs(d)
            src = a["augmented_from"]
            n = es.num_samples(src)
            idx = np.unique(np.linspace(0, n - 1, frames).round().astype(int))
            rows.append((f"{src} {cam} (source)", list(es.dataset(src, cam)[idx])))
            rows.append((f"{d}: {a.get('augment_engine')} v{a.get('augment_variant')} seed {a.get('augment_seed')}",
                         list(es.dataset(d, cam)[idx])))
    return contact_sheet(rows) if rows else b""
