"""Run a trainer command to its end: stream its log, parse metrics, find the checkpoint, write a result file."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from robodata.atomic import atomic_write_text
from robodata.train.commands import TrainCommand, groot_last_checkpoint, lerobot_last_checkpoint
from robodata.train.metrics import MetricPoint, MetricsParser

RESULT_FILE = "robodata_train_result.json"
METRICS_FILE = "robodata_metrics.jsonl"
LOG_FILE = "train.log"


@dataclass
class TrainResult:
    ok: bool
    engine: str
    returncode: int
    start_step: int
    steps: int
    final_loss: float | None
    best_loss: float | None
    samples_per_s: float | None
    wall_s: float
    checkpoint: str | None
    checkpoint_bytes: int
    resumed: bool
    curve: list[dict] = field(default_factory=list)
    error: str = ""
    log_tail: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainResult:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def last_checkpoint(engine: str, output_dir: str | Path) -> Path | None:
    return groot_last_checkpoint(output_dir) if engine == "groot" else lerobot_last_checkpoint(output_dir)


def checkpoint_step(engine: str, output_dir: str | Path) -> int:
    """The step of the last checkpoint in ``output_dir`` (0 when there is none): where a resumed run starts."""
    cp = last_checkpoint(engine, output_dir)
    if cp is None:
        return 0
    if engine == "groot":
        state = cp / "trainer_state.json"
        return int(json.loads(state.read_text()).get("global_step", 0)) if state.exists() else int(cp.name.split("-")[-1])
    step_file = cp.parent / "training_state" / "training_step.json"
    return int(json.loads(step_file.read_text())["step"]) if step_file.exists() else int(cp.parent.name)


def dir_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _error_line(tail: list[str]) -> str:
    for line in reversed(tail):
        s = line.strip()
        if s and ("Error" in s or "error:" in s or "Exception" in s):
            return s[:400]
    return next((s.strip()[:400] for s in reversed(tail) if s.strip()), "no output")


def _exit_error(engine: str, rc: int, tail: list[str], batch_size: int) -> str:
    """The failed trainer's error; running out of GPU memory says so, with the batch size that did not fit."""
    oom = next((s.strip() for s in reversed(tail) if "CUDA out of memory" in s or "OutOfMemoryError" in s), None)
    if oom is not None:
        return (f"{engine} trainer ran out of GPU memory at batch size {batch_size} (exit code {rc}): lower "
                f"tiers.policy.batch_size or use a larger GPU; the trainer said: {oom[:300]}")
    return f"{engine} trainer exited with code {rc}: {_error_line(tail)}"


def run_trainer(cmd: TrainCommand, *, log_steps: int, batch_size: int,
                on_line: Callable[[str], None] | None = None,
                on_point: Callable[[MetricPoint], None] | None = None) -> TrainResult:
    """Run ``cmd`` (blocking), echoing its output to ``on_line``; the result is also written to ``RESULT_FILE``.

    A trainer that exits non-zero gives ``ok=False`` with its last error line; nothing is raised, so that the
    caller (a Pipes process, a test) always gets a result to report.
    """
    out = Path(cmd.output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    start_step = checkpoint_step(cmd.engine, out) if cmd.resumed else 0
    parser = MetricsParser(cmd.engine, log_steps, start_step)
    tail: deque[str] = deque(maxlen=60)
    env = {**os.environ, **cmd.env, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    log_path = out.parent / f"{out.name}.{LOG_FILE}"
    metrics_path = out.parent / f"{out.name}.{METRICS_FILE}"
    try:
        proc = subprocess.Popen(cmd.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                                bufsize=1, errors="replace")
    except OSError as err:
        return _finish(cmd, out, parser, start_step, batch_size, 127, t0, [], f"cannot start {cmd.argv[0]}: {err}")
    with open(log_path, "a") as log, open(metrics_path, "a") as mfile:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip("\n"))
            if on_line:
                on_line(line.rstrip("\n"))
            point = parser.feed(line.rstrip("\n"), time.perf_counter() - t0)
            if point is not None:
                mfile.write(json.dumps(asdict(point)) + "\n")
                mfile.flush()
                if on_point:
                    on_point(point)
        rc = proc.wait()
    error = "" if rc == 0 else _exit_error(cmd.engine, rc, list(tail), batch_size)
    return _finish(cmd, out, parser, start_step, batch_size, rc, t0, list(tail), error)


def _finish(cmd, out: Path, parser: MetricsParser, start_step: int, batch_size: int, rc: int, t0: float,
            tail: list[str], error: str) -> TrainResult:
    cp = last_checkpoint(cmd.engine, out) if out.exists() else None
    if rc == 0 and cp is None:
        error = f"{cmd.engine} trainer finished but wrote no checkpoint under {out}"
    res = TrainResult(
        ok=not error, engine=cmd.engine, returncode=rc, start_step=start_step,
        steps=checkpoint_step(cmd.engine, out) if cp else parser.last_step,
        final_loss=parser.final_loss, best_loss=parser.best_loss, samples_per_s=parser.samples_per_s(batch_size),
        wall_s=round(time.perf_counter() - t0, 2), checkpoint=str(cp) if cp else None,
        checkpoint_bytes=dir_bytes(cp) if cp else 0, resumed=cmd.resumed, curve=parser.curve(), error=error,
        log_tail=tail[-20:],
    )
    atomic_write_text(out / RESULT_FILE, json.dumps(res.to_dict(), indent=1))  # plan_run trusts a complete one
    return res
