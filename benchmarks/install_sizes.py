"""What each install layer costs: installed size (MB) and install time of ``pip install robodata[EXTRA]``.

    python benchmarks/install_sizes.py [--layers bare,ray,platform,train,sim,all] [--wheel W.whl] [--cold]

Builds the wheel from a clean copy of the working tree (or takes ``--wheel``), then for each layer creates a
throwaway venv (the running Python, no system site-packages) in a temporary folder, ``pip install``s the wheel
with that extra, and measures the venv's disk use (``du``: allocated blocks, hard links once) minus an empty
venv's. Each venv is removed before the next one is made, and the temporary folder at the end. Dependencies
come from PyPI through pip's cache (``--cold``: a throwaway cache, so every layer downloads everything).
Results are printed as a table and merged into ``benchmarks/results/install_sizes.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"bare": "", "ray": "ray", "platform": "platform", "train": "train", "sim": "sim", "all": "all"}
# What a layer brings (a top-level module each): shown per layer, so a table shows what went in.
PROBES = ("dagster", "ray", "great_expectations", "torch", "lerobot", "mlflow", "mujoco", "gymnasium_robotics")
# Not part of the source tree a wheel is built from.
_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache",
                                 ".robodata", "tests", "docs", "results", "node_modules")


def build_wheel(out_dir: str | os.PathLike[str]) -> Path:
    """Build robodata's wheel from a clean copy of the working tree (no stale ``build/`` files get in)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="robodata-src-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(REPO, src, ignore=_IGNORE)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
        if importlib.util.find_spec("setuptools") is not None:  # the build backend is here: no isolated env
            cmd.insert(4, "--no-build-isolation")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wheels = sorted(out.glob("robodata-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise RuntimeError(f"pip wheel wrote no robodata wheel in {out}")
    return wheels[-1]


def make_venv(path: str | os.PathLike[str]) -> Path:
    """A venv of the running Python without system site-packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return Path(path) / "bin" / "python"


def disk_usage(path: str | os.PathLike[str]) -> int:
    """Bytes allocated under ``path`` (like ``du -s``: blocks, each hard-linked file once, links not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total + os.lstat(path).st_blocks * 512


def pip_install(python: Path, requirement: str, *, cache_dir: str | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", requirement]
    if cache_dir:
        cmd[4:4] = ["--cache-dir", cache_dir]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def measure(layer: str, wheel: Path, work: Path, empty_bytes: int, *, cache_dir: str | None) -> dict:
    venv = work / f"venv-{layer}"
    py = make_venv(venv)
    extra = LAYERS[layer]
    t0 = time.perf_counter()
    proc = pip_install(py, f"{wheel}[{extra}]" if extra else str(wheel), cache_dir=cache_dir)
    seconds = time.perf_counter() - t0
    row: dict = {"layer": layer, "install_s": round(seconds, 1), "ok": proc.returncode == 0}
    if proc.returncode != 0:
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    else:
        row["size_mb"] = round((disk_usage(venv) - empty_bytes) / 1e6, 1)
        listed = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True)
        row["packages"] = len(json.loads(listed.stdout)) if listed.returncode == 0 else None
        probe = ("import importlib.util, json, sys; "
                 f"print(json.dumps([m for m in {list(PROBES)!r} if importlib.util.find_spec(m)]))")
        found = subprocess.run([str(py), "-c", probe], capture_output=True, text=True)
        row["has"] = json.loads(found.stdout) if found.returncode == 0 else []
    shutil.rmtree(venv, ignore_errors=True)
    return row


def table(rows: list[dict]) -> str:
    head = f"{'layer':<9} {'size MB':>9} {'install s':>10} {'packages':>9}  brings"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["ok"]:
            lines.append(f"{r['layer']:<9} {r['size_mb']:>9.1f} {r['install_s']:>10.1f} {r['packages'] or '-':>9}  "
                         + (", ".join(r["has"]) or "-"))
        else:
            lines.append(f"{r['layer']:<9} {'FAILED':>9} {r['install_s']:>10.1f} {'':>9}  {' '.join(r['error'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default=",".join(LAYERS), help=f"comma-separated, of {', '.join(LAYERS)}")
    ap.add_argument("--wheel", help="an already built robodata wheel (default: build one from this tree)")
    ap.add_argument("--cold", action="store_true", help="a throwaway pip cache: every layer downloads everything")
    ap.add_argument("--workdir", help="where the throwaway venvs go (default: the system temp folder)")
    ap.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/install_sizes.json")
    ap.add_argument("--quick", action="store_true", help="the bare and [platform] layers only (run_all's size)")
    args = ap.parse_args(argv)
    layers = ["bare", "platform"] if args.quick else [x.strip() for x in args.layers.split(",") if x.strip()]
    unknown = [x for x in layers if x not in LAYERS]
    if unknown:
        ap.error(f"unknown layer(s) {', '.join(unknown)}; choose from {', '.join(LAYERS)}")

    rows = []
    with tempfile.TemporaryDirectory(prefix="robodata-install-sizes-", dir=args.workdir) as tmp:
        work = Path(tmp)
        wheel = Path(args.wheel).resolve() if args.wheel else build_wheel(work / "wheel")
        print(f"wheel {wheel.name} ({wheel.stat().st_size / 1e6:.2f} MB); python {sys.version.split()[0]}",
              file=sys.stderr)
        make_venv(work / "venv-empty")
        empty = disk_usage(work / "venv-empty")
        shutil.rmtree(work / "venv-empty")
        cache = str(work / "pip-cache") if args.cold else None
        for layer in layers:
            print(f"installing {layer} ...", file=sys.stderr, flush=True)
            rows.append(measure(layer, wheel, work, empty, cache_dir=cache))
            if cache:
                shutil.rmtree(cache, ignore_errors=True)
    cache_kind = "throwaway (--cold)" if args.cold else "pip's default"
    print(f"empty venv: {empty / 1e6:.1f} MB (subtracted); pip cache: {cache_kind}")
    print(table(rows))
    if not args.no_save:
        out = REPO / "benchmarks" / "results" / "install_sizes.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(out.read_text()) if out.exists() else {}
        old.update({r["layer"]: {**r, "cold_cache": args.cold, "python": sys.version.split()[0]} for r in rows})
        out.write_text(json.dumps(old, indent=1) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
