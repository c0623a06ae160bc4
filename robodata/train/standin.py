"""A stand-in for the GPU part of GR00T fine-tuning: same arguments, same log lines, same checkpoint layout.

It checks what ``scripts/gr00t_finetune.py`` would need from us (a v2.1 dataset with ``meta/modality.json``,
its flags) and then, instead of loading ``nvidia/GR00T-N1.5-3B`` on GPUs, writes HF-Trainer-style
``checkpoint-<step>/`` folders and prints HF Trainer's ``{'loss': ...}`` lines. It lets the whole production
launch path (command line, Pipes, metrics, registry) run on a laptop. ``$ROBODATA_STANDIN_CRASH_AT=<step>``
makes it die there, like a trainer that runs out of memory mid-run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from robodata.lerobot.layout import EPISODES_JSONL, INFO_PATH, MODALITY_PATH


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gr00t_finetune.py (robodata stand-in)")
    p.add_argument("--dataset-path", required=True, nargs="+")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--data-config", required=True)
    p.add_argument("--embodiment-tag", default="new_embodiment")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=10000)
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--save-steps", type=int, default=500)
    p.add_argument("--base-model-path", default="nvidia/GR00T-N1.5-3B")
    for f in ("tune-llm", "tune-visual", "tune-projector", "tune-diffusion-model", "resume"):
        p.add_argument(f"--{f}", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--lora-rank", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--dataloader-num-workers", type=int, default=8)
    p.add_argument("--video-backend", default="decord")
    p.add_argument("--report-to", default="wandb")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    for ds in a.dataset_path:
        problem = check_dataset(ds)
        if problem:
            print(problem, file=sys.stderr)
            return 1
    return train(Path(a.output_dir), max_steps=a.max_steps, save_steps=a.save_steps, batch_size=a.batch_size,
                 learning_rate=a.learning_rate, resume=a.resume, configuration=vars(a), model_type="gr00t_n1_5")


def check_dataset(path: str) -> str | None:
    """What GR00T needs from the release at ``path`` and it lacks (v2.1 layout with modality.json), or None."""
    root = Path(path)
    for need in (INFO_PATH, MODALITY_PATH, EPISODES_JSONL):
        if not (root / need).exists():
            return f"FileNotFoundError: {root / need} (GR00T needs a LeRobot v2.1 dataset with modality.json)"
    return None


def train(out: Path, *, max_steps: int, save_steps: int, batch_size: int, learning_rate: float, resume: bool,
          configuration: dict, model_type: str) -> int:
    """HF-Trainer-like steps: log lines every 10 steps, ``checkpoint-<step>/`` every ``save_steps``."""
    a = argparse.Namespace(max_steps=max_steps, save_steps=save_steps, batch_size=batch_size,
                           learning_rate=learning_rate, resume=resume)
    crash_at = int(os.environ.get("ROBODATA_STANDIN_CRASH_AT", "0"))
    out.mkdir(parents=True, exist_ok=True)
    start, history = 0, []
    cps = sorted((p for p in out.glob("checkpoint-*")), key=lambda p: int(p.name.split("-")[-1]))
    if a.resume and cps:
        state = json.loads((cps[-1] / "trainer_state.json").read_text())
        start, history = state["global_step"], state["log_history"]
    print("GR00T FINE-TUNING CONFIGURATION (stand-in):", json.dumps(configuration), flush=True)
    t0 = time.perf_counter()
    for step in range(start + 1, a.max_steps + 1):
        time.sleep(0.002)
        if crash_at and step == crash_at:
            print(f"torch.OutOfMemoryError: CUDA out of memory at step {step} (stand-in)", file=sys.stderr, flush=True)
            return 1
        if step % 10 == 0:
            rec = {"loss": round(1.5 * math.exp(-step / 40) + 0.05, 4), "grad_norm": 1.0,
                   "learning_rate": a.learning_rate, "epoch": round(step / 100, 2)}
            history.append({**rec, "step": step})
            print(rec, flush=True)
        if step % a.save_steps == 0 or step == a.max_steps:
            cp = out / f"checkpoint-{step}"
            cp.mkdir(exist_ok=True)
            (cp / "config.json").write_text(json.dumps({"model_type": model_type, "standin": True}))
            (cp / "model.safetensors").write_bytes(b"\0" * 4096)
            (cp / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": history}))
    dt = time.perf_counter() - t0
    n = a.max_steps - start
    print({"train_runtime": round(dt, 3), "train_samples_per_second": round(n * a.batch_size / dt, 3),
           "train_steps_per_second": round(n / dt, 3), "train_loss": history[-1]["loss"] if history else 0.0,
           "epoch": round(a.max_steps / 100, 2)}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
