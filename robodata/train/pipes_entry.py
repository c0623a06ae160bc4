"""The process Dagster Pipes launches: run the trainer, stream its metrics, report the result back.

``python -m robodata.train.pipes_entry`` reads the command from ``$ROBODATA_TRAIN_SPEC`` (JSON: ``command``,
``log_steps``, ``batch_size``). Under Dagster Pipes (subprocess, Kubernetes pod, Ray job) each logged
step goes back as a log line and the final :class:`TrainResult` as a custom message; outside Pipes it
just runs. It exits 0 whenever it produced a result (a failed trainer is reported, not raised), so the
asset can show the trainer's own error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from robodata.train.commands import TrainCommand
from robodata.train.runner import run_trainer

TRAIN_SPEC_ENV = "ROBODATA_TRAIN_SPEC"


def spec_env(cmd: TrainCommand, *, log_steps: int, batch_size: int) -> dict[str, str]:
    return {TRAIN_SPEC_ENV: json.dumps({"command": cmd.to_dict(), "log_steps": log_steps, "batch_size": batch_size})}


def main() -> int:
    raw = os.environ.get(TRAIN_SPEC_ENV)
    if not raw:
        print(f"robodata.train.pipes_entry: ${TRAIN_SPEC_ENV} is not set", file=sys.stderr)
        return 2
    spec = json.loads(raw)
    cmd = TrainCommand(**spec["command"])
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    in_pipes = DAGSTER_PIPES_CONTEXT_ENV_VAR in os.environ
    ctx = open_dagster_pipes() if in_pipes else contextlib.nullcontext()
    with ctx as pipes:
        def on_point(p):
            if pipes is not None:
                pipes.log.info(f"step {p.step}: loss {p.loss:.4f}")

        def on_line(line: str):
            print(line, flush=True)

        res = run_trainer(cmd, log_steps=spec["log_steps"], batch_size=spec["batch_size"],
                          on_line=on_line, on_point=on_point)
        if pipes is not None:
            pipes.report_custom_message({"train_result": res.to_dict()})
            if not res.ok:
                pipes.log.error(res.error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
