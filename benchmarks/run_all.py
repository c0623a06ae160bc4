"""Run every benchmark in benchmarks/ one after another and print their tables.

    python benchmarks/run_all.py            # each script with --quick (a few minutes in all)
    python benchmarks/run_all.py --full     # each script at its full size (no flag passed)
    python benchmarks/run_all.py --only ingest lerobot_write

Every ``benchmarks/*.py`` except this one is a benchmark: one command, its own subprocesses, a printed table.
They run sequentially (they measure time and peak RSS; running them side by side would skew both).
Exits non-zero if any benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full size: run each script without --quick")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these scripts (name with or without .py)")
    args = ap.parse_args()
    scripts = benchmarks()
    if args.only:
        wanted = {n.removesuffix(".py") for n in args.only}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            ap.error(f"no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(p.stem for p in scripts)})")
        scripts = [p for p in scripts if p.stem in wanted]
    flags = [] if args.full else ["--quick"]
    summary = []
    for script in scripts:
        cmd = [sys.executable, str(script), *flags]
        print(f"\n=== {script.name} {' '.join(flags)}".rstrip() + " ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=HERE.parent).returncode  # output goes straight to this terminal
        summary.append((script.name, rc, time.perf_counter() - t0))
    print("\n=== summary ===")
    for name, rc, seconds in summary:
        print(f"{name:28s} {'ok' if rc == 0 else f'FAILED (exit {rc})':18s} {seconds:7.0f} s")
    return 0 if all(rc == 0 for _, rc, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
