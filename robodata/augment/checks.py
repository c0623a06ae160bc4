"""Checks of an augmented store: frame counts, low-dim data unchanged, images sane, variants differ but keep the scene.

Measures (on up to ``sample_frames`` evenly spaced frames of every camera of every variant, in 0-255 grey levels):

- ``distance``: mean |variant - source| over the whole image; must exceed ``min_distance`` (it did change);
- ``masked_residual``: inside the robot/object mask, the mean |variant - (a * source + b)| after fitting one
  global gain ``a`` and offset ``b`` of the luminance (light and colour shifts are allowed there, moving or
  repainting the robot and object is not); must stay below ``max_masked_residual``;
- blank / saturated: luminance mean within [10, 245], std above 3, under half the pixels clipped at 0 or 255.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robodata.formats.isaaclab import EpisodeStore
from robodata.formats.isaaclab_layout import ACTIONS, OBS_GROUP, STATES, TIMESTAMPS, obs_path

CHECK_FRAMES = "augmented_frame_counts_match_source"
CHECK_LOWDIM = "augmented_low_dim_unchanged"
CHECK_IMAGES = "augmented_images_not_blank_or_saturated"
CHECK_SCENE = "augmented_variants_differ_but_keep_robot_and_object"
CHECKS = (CHECK_FRAMES, CHECK_LOWDIM, CHECK_IMAGES, CHECK_SCENE)


@dataclass
class CheckOutcome:
    name: str
    passed: bool = True
    failures: list[str] = field(default_factory=list)
    measures: dict[str, Any] = field(default_factory=dict)

    def fail(self, msg: str) -> None:
        self.passed = False
        self.failures.append(msg)


def _lum(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def image_stats(src: np.ndarray, var: np.ndarray, keep: np.ndarray | None) -> dict[str, float]:
    """Distance, masked residual and exposure measures of variant frames against their source frames."""
    ls, lv = _lum(src), _lum(var)
    out = {
        "distance": float(np.abs(var.astype(np.float32) - src.astype(np.float32)).mean()),
        "mean": float(lv.mean()),
        "std": float(lv.std()),
        "clipped": float(((var == 0).all(-1) | (var == 255).all(-1)).mean()),
        "masked_residual": float("nan"),
        "mask_fraction": float(keep.mean()) if keep is not None else 0.0,
    }
    if keep is not None and keep.sum() >= 16:
        a_src, a_var = ls[keep], lv[keep]
        A = np.stack([a_src, np.ones_like(a_src)], 1)
        coef, *_ = np.linalg.lstsq(A, a_var, rcond=None)
        out["masked_residual"] = float(np.abs(A @ coef - a_var).mean())
    return out


def check_store(
    path: str | Path,
    masks: dict[tuple[str, str], np.ndarray] | None = None,
    *,
    min_distance: float = 4.0,
    max_masked_residual: float = 20.0,
    sample_frames: int = 12,
) -> dict[str, CheckOutcome]:
    """Run the four checks on an augmented store; ``masks[(demo, camera)]`` is the source's robot/object mask."""
    masks = masks or {}
    res = {name: CheckOutcome(name) for name in CHECKS}
    dist, resid = [], []
    with EpisodeStore(path) as es:
        cams = [f.name for f in es.schema.cameras]
        variants = [d for d in es.demo_names if "augmented_from" in es.attrs(d)]
        res[CHECK_FRAMES].measures["variants"] = len(variants)
        for d in variants:
            a = es.attrs(d)
            src = a["augmented_from"]
            tag = f"{d} ({src} v{a.get('augment_variant')})"
            g, gs = es.group(d), es.group(src)
            n, ns = es.num_samples(d), es.num_samples(src)
            if n != ns or any(es.dataset(d, c).shape[0] != ns for c in cams):
                res[CHECK_FRAMES].fail(f"{tag}: {n} frames, source {ns}")
                continue
            for key in (ACTIONS, STATES, TIMESTAMPS):
                if key not in gs:
                    continue
                if hasattr(gs[key], "shape"):
                    if key not in g or not np.array_equal(g[key][()], gs[key][()]):
                        res[CHECK_LOWDIM].fail(f"{tag}: {key} differ from the source")
                elif key not in g:
                    res[CHECK_LOWDIM].fail(f"{tag}: {key} is missing (the source has it)")
                else:  # a nested sim state (Isaac Lab's recorder): every dataset of the tree
                    gs[key].visititems(lambda k, o, key=key: _cmp_group(k, o, g[key], tag, key, res, top=True))  # noqa: B023
            cam_paths = {es.spec(c).h5path.split("/", 1)[1] for c in cams}  # under obs/
            flat = isinstance(gs[OBS_GROUP], h5py.Dataset)  # a flat policy obs (concatenate_terms): no camera in it
            if flat and not np.array_equal(g[OBS_GROUP][()], gs[OBS_GROUP][()]):
                res[CHECK_LOWDIM].fail(f"{tag}: {OBS_GROUP} differs from the source")
            for name, ds in () if flat else gs[OBS_GROUP].items():
                if name in cam_paths:
                    continue
                if hasattr(ds, "shape"):
                    if not np.array_equal(g[OBS_GROUP][name][()], ds[()]):
                        res[CHECK_LOWDIM].fail(f"{tag}: {obs_path(name)} differs from the source")
                else:
                    # visititems calls the lambda at once, in this iteration: binding g and tag late is right.
                    ds.visititems(lambda k, o, name=name: _cmp_group(k, o, g[OBS_GROUP][name], tag, name, res))  # noqa: B023
            idx = np.unique(np.linspace(0, n - 1, min(sample_frames, n)).round().astype(int))
            for c in cams:
                sv, vv = es.dataset(src, c)[idx], es.dataset(d, c)[idx]
                if np.array_equal(sv, vv):
                    continue  # a camera the config leaves alone
                mask = masks.get((src, c))
                st = image_stats(sv, vv, mask[idx] if mask is not None and len(mask) == ns else None)
                if not (10 <= st["mean"] <= 245 and st["std"] > 3 and st["clipped"] < 0.5):
                    res[CHECK_IMAGES].fail(f"{tag}/{c}: blank or saturated (mean {st['mean']:.0f}, std "
                                           f"{st['std']:.1f}, clipped {st['clipped']:.0%})")
                if st["distance"] <= min_distance:
                    res[CHECK_SCENE].fail(f"{tag}/{c}: distance {st['distance']:.1f} <= {min_distance}: hardly changed")
                if np.isfinite(st["masked_residual"]) and st["masked_residual"] > max_masked_residual:
                    res[CHECK_SCENE].fail(f"{tag}/{c}: robot/object residual {st['masked_residual']:.1f} > "
                                          f"{max_masked_residual}: the scene moved or was repainted")
                dist.append(st["distance"])
                if np.isfinite(st["masked_residual"]):
                    resid.append(st["masked_residual"])
    res[CHECK_SCENE].measures = {
        "min_distance": round(min(dist), 2) if dist else None,
        "mean_distance": round(float(np.mean(dist)), 2) if dist else None,
        "max_masked_residual": round(max(resid), 2) if resid else None,
        "clips_with_mask": len(resid),
    }
    if not variants:
        res[CHECK_FRAMES].fail("no augmented variants in the store")
    return res


def _cmp_group(key: str, obj: Any, other_group: Any, tag: str, name: str, res: dict[str, CheckOutcome],
               top: bool = False) -> None:
    if hasattr(obj, "shape") and (key not in other_group or not np.array_equal(other_group[key][()], obj[()])):
        res[CHECK_LOWDIM].fail(f"{tag}: {name if top else obs_path(name)}/{key} differs from the source")
