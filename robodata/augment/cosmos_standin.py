"""A stand-in for Cosmos Transfer 2.5's ``examples/inference.py``: same command line, no model.

The arguments are the real script's (``tyro`` with ``OmitArgPrefixes``: ``-i/--input-files``,
``-o/--output-dir``, ``--model {edge,depth,seg,vis,edge/distilled}``, ``--disable-guardrails``, the inference
overrides such as ``--num-steps``); an unknown flag exits 2. Each spec is checked as ``InferenceArguments``
checks it (unknown keys refused, ``name`` and a prompt required, ``video_path`` and every ``control_path`` must
exist, ``guidance`` an integer in 0..7, ``control_weight`` in 0..1, at least one control; the distilled edge
model takes only ``edge`` and ``num_steps: 4``); a bad spec exits 1 naming the file and the key.

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


SPEC_KEYS = {"name", "prompt", "prompt_path", "negative_prompt", "seed", "guidance", "video_path", "max_frames",
             "context_frame_index", "image_context_path", "num_conditional_frames", "resolution", "sigma_max",
             "num_video_frames_per_chunk", "num_steps", "show_control_condition", "show_input",
             "keep_input_resolution", "edge", "depth", "vis", "seg"}
CONTROL_KEYS = ("edge", "vis", "depth", "seg")
CONTROL_FIELDS = {"control_path", "control_weight", "mask_path", "mask_prompt"}
CONTROL_EXTRA = {"edge": {"preset_edge_threshold"}, "vis": {"preset_blur_strength"}, "seg": {"control_prompt"},
                 "depth": set()}
MODELS = ("edge", "depth", "seg", "vis", "edge/distilled")
DISTILLED_STEPS = 4


def spec_problems(path: Path, spec: dict, model: str) -> list[str]:
    """What ``examples/inference.py`` would refuse in the spec at ``path`` (relative paths: from its folder)."""
    def exists(p: object) -> bool:
        return isinstance(p, str) and (path.parent / p).exists()

    out = [f"unknown key {k!r}" for k in sorted(set(spec) - SPEC_KEYS)]
    if not isinstance(spec.get("name"), str) or not spec.get("name"):
        out.append("'name' is required")
    if spec.get("prompt") is None and not exists(spec.get("prompt_path")):
        out.append("a 'prompt' (or an existing 'prompt_path') is required")
    if not exists(spec.get("video_path")):
        out.append(f"video_path {spec.get('video_path')!r} does not exist")
    g = spec.get("guidance", 3)
    if isinstance(g, bool) or not isinstance(g, (int, float)) or g != int(g) or not 0 <= g <= 7:
        out.append(f"guidance {g!r} must be an integer in 0..7")
    controls = [k for k in CONTROL_KEYS if spec.get(k) is not None]
    if not controls:
        out.append("no controls provided (edge, vis, depth, seg)")
    for k in controls:
        ctl = spec[k]
        if not isinstance(ctl, dict):
            out.append(f"{k} must be a JSON object")
            continue
        out += [f"{k}: unknown key {x!r}" for x in sorted(set(ctl) - CONTROL_FIELDS - CONTROL_EXTRA[k])]
        w = ctl.get("control_weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
            out.append(f"{k}.control_weight {w!r} must be in 0..1")
        for key in ("control_path", "mask_path"):
            if ctl.get(key) is not None and not exists(ctl[key]):
                out.append(f"{k}.{key} {ctl[key]!r} does not exist")
    if model == "edge/distilled":
        if controls != ["edge"]:
            out.append(f"the distilled edge model takes only the edge control, not {controls}")
        if spec.get("num_steps") != DISTILLED_STEPS:
            out.append(f"the distilled edge model needs num_steps {DISTILLED_STEPS}, not {spec.get('num_steps')!r}")
    return out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="examples/inference.py (robodata stand-in)", description=__doc__.splitlines()[0])
    ap.add_argument("-i", "--input-files", required=True, nargs="+", help="inference spec JSON file(s)")
    ap.add_argument("-o", "--output-dir", required=True)
    ap.add_argument("--model", choices=MODELS, default="edge")
    ap.add_argument("--checkpoint-path", default=None)
    ap.add_argument("--experiment", default=None)
    ap.add_argument("--config-file", default="")
    ap.add_argument("--context-parallel-size", type=int, default=None)
    for flag in ("disable-guardrails", "offload-guardrail-models", "keep-going", "profile", "benchmark"):
        ap.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=flag == "keep-going")
    ap.add_argument("--num-steps", type=int, default=None)
    ap.add_argument("--guidance", type=int, choices=range(8), default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--resolution", default=None)
    ap.add_argument("--fault", default=None, help="(stand-in only) corrupt:NAME|short:NAME")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # an unknown or misspelled flag: argparse's message, exit 2
    bad = []
    for spec_file in args.input_files:
        sp = Path(spec_file)
        try:
            spec = json.loads(sp.read_text())
        except (OSError, ValueError) as err:
            bad.append(f"{sp}: not a readable JSON spec ({err})")
            continue
        spec = spec | {k: v for k, v in (("num_steps", args.num_steps), ("guidance", args.guidance)) if v is not None}
        bad += [f"{sp}: {p}" for p in spec_problems(sp, spec, args.model)]
    if bad:
        print("Error validating parameters:\n" + "\n".join(bad), file=sys.stderr)
        return 1
    args.input = args.input_files
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
