"""The production engine: Isaac Lab Mimic's ``generate_dataset.py``, its command line and its output collected.

The command runs in the Isaac Lab container (NVIDIA's ``isaac-lab`` image, from your registry) wrapped by
:mod:`robodata.mimicgen.pipes_entry`, which reports back to Dagster through Dagster Pipes::

    python -m robodata.mimicgen.pipes_entry --output_file OUT -- \\
        /workspace/isaaclab/isaaclab.sh -p scripts/imitation_learning/isaaclab_mimic/generate_dataset.py \\
        --task Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0 --input_file IN --output_file OUT \\
        --generation_num_trials 1000 --num_envs 10 --device cuda --headless --enable_cameras
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robodata.formats.isaaclab import EpisodeStore, EpisodeStoreError
from robodata.formats.isaaclab_layout import ENV_NAME_KEY, SUCCESS_ATTR
from robodata.mimicgen.config import IsaacLabMimicConfig
from robodata.mimicgen.errors import MimicGenError


def generate_dataset_argv(cfg: IsaacLabMimicConfig, input_file: str, output_file: str) -> list[str]:
    """The exact ``generate_dataset.py`` command line for ``cfg``."""
    argv = [*cfg.command, "--task", cfg.task, "--input_file", str(input_file), "--output_file", str(output_file),
            "--generation_num_trials", str(cfg.generation_num_trials), "--num_envs", str(cfg.num_envs),
            "--device", cfg.device]
    if cfg.headless:
        argv.append("--headless")
    if cfg.enable_cameras:
        argv.append("--enable_cameras")
    return argv + list(cfg.extra_args)


def summarize_output(path: str | os.PathLike[str], min_frames: int = 1, max_frames: int = 100_000) -> dict[str, Any]:
    """Read a generated Isaac Lab HDF5: demos, frames, successes, lengths, and which demos hold NaN or bad lengths."""
    p = Path(path)
    try:
        es = EpisodeStore(p)
    except EpisodeStoreError as err:
        raise MimicGenError(f"Isaac Lab Mimic wrote no usable dataset: {err}") from err
    with es:
        lengths, successes, nan, bad_len = [], 0, [], []
        for name in es.demo_names:
            n = es.num_samples(name)
            lengths.append(n)
            successes += bool(es.attrs(name).get(SUCCESS_ATTR, True))
            if not min_frames <= n <= max_frames:
                bad_len.append(name)
            found: list[str] = []
            es.group(name).visititems(lambda k, d: found.append(k) if isinstance(d, h5py.Dataset)  # noqa: B023 - called at once
                                      and d.dtype.kind == "f" and not np.isfinite(d[()]).all() else None)
            if found:
                nan.append(name)
        return {"demos": len(es.demo_names), "frames": int(sum(lengths)), "successes": successes,
                "min_len": min(lengths, default=0), "max_len": max(lengths, default=0),
                "nan_demos": nan, "bad_length_demos": bad_len, "env_name": es.env_args.get(ENV_NAME_KEY, "")}


def pipes_entry_argv(output_file: str, min_frames: int, max_frames: int, argv: list[str]) -> list[str]:
    """``argv`` wrapped by :mod:`robodata.mimicgen.pipes_entry`, which reports the output through Dagster Pipes."""
    import sys

    return [sys.executable, "-m", "robodata.mimicgen.pipes_entry", "--output_file", str(output_file),
            "--min_frames", str(min_frames), "--max_frames", str(max_frames), "--", *argv]


def isaaclab_checks(path: str | os.PathLike[str], min_frames: int = 1, max_frames: int = 100_000) -> dict[str, Any]:
    """The four checks of ``synthetic_demos`` on an Isaac Lab Mimic output, from what it records.

    Success comes from Isaac Lab's own flags (its simulator is not here to replay in); the object-centric
    invariant cannot be checked, as Isaac Lab Mimic records no per-segment provenance.
    """
    from robodata.mimicgen.validate import CHECK_FINITE, CHECK_INVARIANT, CHECK_LENGTHS, CHECK_SUCCESS, Check

    s = summarize_output(path, min_frames, max_frames)
    failed = s["demos"] - s["successes"]
    return {
        CHECK_SUCCESS: Check(CHECK_SUCCESS, failed == 0 and s["demos"] > 0,
                             {"demos": s["demos"], "successes": s["successes"], "note": "success flags of Isaac Lab"},
                             "Isaac Lab Mimic wrote no demos" if not s["demos"] else
                             f"{failed} of {s['demos']} demos are flagged failed by Isaac Lab Mimic"),
        CHECK_INVARIANT: Check(CHECK_INVARIANT, True, {
            "checked": False, "reason": "Isaac Lab Mimic records no per-segment provenance to check against"}),
        CHECK_FINITE: Check(CHECK_FINITE, not s["nan_demos"], {"bad": s["nan_demos"][:20]},
                            f"{len(s['nan_demos'])} demos hold NaN or inf ({', '.join(s['nan_demos'][:5])})"),
        CHECK_LENGTHS: Check(CHECK_LENGTHS, not s["bad_length_demos"], {"out_of_bounds": s["bad_length_demos"][:20]},
                             f"{len(s['bad_length_demos'])} demos are outside [{min_frames}, {max_frames}] frames "
                             f"({', '.join(s['bad_length_demos'][:5])})"),
    }
