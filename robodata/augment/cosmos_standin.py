"""A stand-in for Cosmos Transfer 2.5's ``examples/inference.py``: same command line, no model.

``python -m robodata.augment.cosmos_standin -i SPEC.json -o OUTDIR [--fault corrupt:NAME|short:NAME]`` reads the
spec, checks that the input and control videos open and agree in length, writes ``OUTDIR/<name>.mp4`` (the input
recoloured by a seed-drawn colour shift, at the input's timestamps) and, when launched through Dagster Pipes,
reports the output through dagster-pipes. ``--fault`` makes it misbehave for the clip ``NAME`` (tests).
It stands in for the model only: everything around it (specs, launch, collection) is the production path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _run(spec_path: Path, out_dir: Path, fault: str | None, log) -> dict:
    import numpy as np

    from robodata.augment.video import count_frames, iter_clip, video_settings, write_clip

    spec = json.loads(spec_path.read_text())
    name, video = spec["name"], spec["video_path"]
    n = count_frames(video)
    for kind in ("depth", "edge", "seg", "vis"):
        ctl = spec.get(kind)
        if ctl and ctl.get("control_path"):
            m = count_frames(ctl["control_path"])
            if m != n:
                raise SystemExit(f"{name}: control {kind} has {m} frames, the input video {n}")
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    gain = rng.uniform(0.6, 1.4, size=3).astype(np.float32)
    out = out_dir / f"{name}.mp4"
    out_dir.mkdir(parents=True, exist_ok=True)
    mode, _, target = (fault or "").partition(":")
    if mode == "corrupt" and target == name:
        out.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
        log(f"{name}: wrote a corrupt file on purpose")
        return {"name": name, "output": str(out), "frames": -1}
    ts_all, batches = [], []
    for ts, frames in iter_clip(video):
        ts_all.append(ts)
        batches.append(np.clip(frames.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    ts = np.concatenate(ts_all)
    if mode == "short" and target == name:
        ts, batches = ts[:-1], batches[:-1] + [batches[-1][:-1]]
    f = write_clip(out, batches, ts, 30, video_settings("libx264", 18))
    log(f"{name}: wrote {f.frames} frames to {out}")
    return {"name": name, "output": str(out), "frames": f.frames}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-i", "--input", required=True, nargs="+", help="inference spec JSON file(s)")
    ap.add_argument("-o", "--output-dir", required=True)
    ap.add_argument("--fault", default=None)
    args, _unknown = ap.parse_known_args(argv)  # the real script's other flags are accepted and ignored
    if os.environ.get("DAGSTER_PIPES_CONTEXT"):  # launched through Dagster Pipes
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            for spec in args.input:
                r = _run(Path(spec), Path(args.output_dir), args.fault, pipes.log.info)
                pipes.report_custom_message(r)
        return 0
    for spec in args.input:
        print(json.dumps(_run(Path(spec), Path(args.output_dir), args.fault, lambda m: print(m, file=sys.stderr))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
