"""Runs Isaac Lab Mimic's ``generate_dataset.py`` (or any command) and reports its output to Dagster through Pipes.

Usage (inside the Isaac Lab container; the Dagster side is a ``PipesSubprocessClient`` or ``PipesK8sClient``)::

    python -m robodata.mimicgen.pipes_entry --output_file OUT.hdf5 [--step annotate|generate] \\
        [--quaternion_order xyzw] -- <annotate_demos.py or generate_dataset.py command line>

Only ``dagster_pipes`` is imported here (no Dagster), so the container needs just that small package.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> int:
    from dagster_pipes import open_dagster_pipes

    from robodata.mimicgen.isaaclab import summarize_output

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: pipes_entry --output_file OUT [--min_frames N --max_frames N] -- COMMAND...", file=sys.stderr)
        return 2
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="robodata.mimicgen.pipes_entry")
    parser.add_argument("--output_file", required=True)
    parser.add_argument("--min_frames", type=int, default=1)
    parser.add_argument("--max_frames", type=int, default=100_000)
    parser.add_argument("--step", choices=("annotate", "generate"), default="generate")
    parser.add_argument("--quaternion_order", choices=("wxyz", "xyzw"), default=None)
    args = parser.parse_args(argv[:cut])
    command = argv[cut + 1:]
    with open_dagster_pipes() as pipes:
        pipes.log.info(f"launching: {' '.join(command)}")
        t0 = time.perf_counter()
        proc = subprocess.run(command, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"Isaac Lab Mimic exited with status {proc.returncode}: {' '.join(command)}")
        summary = summarize_output(args.output_file, args.min_frames, args.max_frames, args.quaternion_order)
        pipes.report_asset_materialization(metadata={
            "engine": "isaaclab_mimic",
            "step": args.step,
            "demos": summary["demos"],
            "successes": summary["successes"],
            "frames": summary["frames"],
            "min_len": summary["min_len"],
            "max_len": summary["max_len"],
            "env_name": summary["env_name"],
            "wall_s": round(wall, 2),
            "demos_per_min": round(60 * summary["demos"] / wall, 2) if wall else 0.0,
            "command": {"raw_value": " ".join(command), "type": "text"},
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
