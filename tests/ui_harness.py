"""Helpers for the end-to-end UI test: a project home with one real recording taken through the whole asset
graph (ingested, synthetic demos, augmented videos, LeRobot episodes, a release), the real
``dagster-webserver`` on it, and headless Chromium (Playwright) to look at it.

``build_home`` runs in a fresh Python process (``python tests/ui_harness.py build HOME``) so that the
environment it sets (ROBODATA_HOME, DAGSTER_HOME), the Dagster instance and the embedded Ray it starts never
leak into the pytest process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("ROBODATA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}
BUILD_MARKER = "UI_HARNESS_RESULT "
# Hang guards, not speed limits: a busy 2-core machine runs the whole graph (Ray, MuJoCo, video) slowly.
BUILD_GUARD_S = 1500  # build_home: every asset's job on one recording
SERVER_GUARD_S = 600  # dagster-webserver answering, and again its code location loading
PAGE_GUARD_MS = 120_000  # one Playwright wait for the page to show something
# (job, the asset it materializes, partitioned by recording?) for every asset of the code location, upstream
# first: build_home runs them all. A new asset needs its line here (the UI test checks that none is missing).
PIPELINE = (
    ("ingest_recordings", "raw_teleop", True),
    ("generate_synthetic_demos", "synthetic_demos", True),
    ("augment_videos", "augmented_videos", True),
    ("write_lerobot_episodes", "lerobot_episodes", True),
    ("cut_release", "lerobot_dataset", False),
    ("train_policy", "policy_checkpoint", False),
)


def home_env(home: Path) -> dict[str, str]:
    """The environment for anything that should see ``home`` as the project home."""
    env = dict(os.environ)
    env.pop("ROBODATA_CONFIG", None)
    env.pop("DAGSTER_HOME", None)
    env["ROBODATA_HOME"] = str(home)
    env["DAGSTER_HOME"] = str(home / "dagster")
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    return env


# ---- (a) a project home with one recording through every asset -------------------------------------------


def build_home(home: Path, *, n_episodes: int = 2, seed: int = 3, fmt: str = "mcap") -> dict[str, Any]:
    """Record a tiny simulated session, land it, tick the sensor, then run every asset's job (:data:`PIPELINE`)
    on its partition, and the release, in this process: every asset of the graph is materialized.

    Sets ROBODATA_HOME (and, through ``prepare_home``, DAGSTER_HOME) in ``os.environ``: call it in a child
    process (:func:`build_home_subprocess`).
    """
    home = Path(home).resolve()
    os.environ.pop("ROBODATA_CONFIG", None)
    os.environ.pop("DAGSTER_HOME", None)
    os.environ["ROBODATA_HOME"] = str(home)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from robodata.config import load_config
    from robodata.landing import LandingZone
    from robodata.registry import Registry
    from robodata.sim.recorder import record_session
    from robodata_dagster.runs import instance_and_defs, tick_sensor

    cfg = load_config()
    instance, defs = instance_and_defs(cfg)
    rec = record_session(home / "recorded", "ui_session", n_episodes=n_episodes, seed=seed, image_hw=(48, 64))
    LandingZone(cfg.landing_url).land(rec[fmt])
    requests, skip = tick_sensor(instance, defs)
    keys = [r.partition_key for r in requests]
    if not keys:
        raise RuntimeError(f"the sensor requested no run (skip reason: {skip})")
    # every asset's job, upstream first, so that the UI shows the whole graph materialized
    outcomes = {asset: _run_or_raise(instance, defs, job, keys if partitioned else [""])
                for job, asset, partitioned in PIPELINE}
    ingest, release = outcomes["raw_teleop"], outcomes["lerobot_dataset"][0]
    return {
        "home": str(home),
        "dagster_home": os.environ["DAGSTER_HOME"],
        "keys": keys,
        "recordings": [r.key for k in keys for r in Registry(cfg.registry_url).in_partition(k)],
        "run_ids": [o.run_id for runs in outcomes.values() for o in runs],
        "metadata": {o.partition: _jsonable_dict(o.metadata) for o in ingest},  # raw_teleop's, by partition
        "release_metadata": _jsonable_dict(release.metadata),
        # asset -> partition ("" when unpartitioned) -> {check name: passed}
        "checks": {asset: {o.partition: o.checks or {} for o in runs} for asset, runs in outcomes.items()},
    }


def _run_or_raise(instance: Any, defs: Any, job: str, keys: list[str]) -> list[Any]:
    from robodata_dagster.runs import run_partitions

    outcomes = run_partitions(instance, defs, job, keys)
    failed = [o for o in outcomes if not o.success]
    if failed:
        raise RuntimeError(f"{job} failed: " + "; ".join(f"{o.partition or '-'}: {o.error}" for o in failed))
    return outcomes


def _jsonable_dict(meta: dict[str, Any] | None) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in (meta or {}).items()}


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def build_home_subprocess(home: Path, *, timeout: float = BUILD_GUARD_S, **kw: Any) -> dict[str, Any]:
    """:func:`build_home` in a child process; returns its result, raises with the child's output on failure."""
    args = [sys.executable, str(Path(__file__).resolve()), "build", str(home), "--json", json.dumps(kw)]
    proc = subprocess.run(args, cwd=REPO, env=home_env(Path(home)), capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(BUILD_MARKER):
            return json.loads(line[len(BUILD_MARKER):])
    raise RuntimeError(
        f"building the project home failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    )


# ---- (b) the real dagster-webserver ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Webserver:
    url: str
    proc: subprocess.Popen
    log_path: Path
    home: Path
    load_log: str = ""  # what it had logged when the code location finished loading

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            out = json.loads(r.read())
        if out.get("errors"):
            raise RuntimeError(f"GraphQL errors: {out['errors']}")
        return out["data"]

    def location_status(self) -> tuple[str, str | None]:
        """(load status, error message or None) of the ``robodata`` code location."""
        data = self.graphql(
            """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                 locationOrLoadError { __typename ... on PythonError { message stack } } } }
                 ... on PythonError { message } } }"""
        )
        ws = data["workspaceOrError"]
        if ws["__typename"] != "Workspace":
            return "ERROR", ws.get("message")
        for e in ws["locationEntries"]:
            if e["name"] == "robodata":
                err = e["locationOrLoadError"]
                msg = None
                if err and err["__typename"] == "PythonError":
                    msg = err["message"] + "".join(err.get("stack") or [])
                return e["loadStatus"], msg
        return "MISSING", f"no robodata location in {ws['locationEntries']}"

    def wait_location_loaded(self, timeout: float = SERVER_GUARD_S) -> None:
        deadline = time.monotonic() + timeout
        status, err = "LOADING", None
        while time.monotonic() < deadline:
            self.check_alive()
            status, err = self.location_status()
            if status == "LOADED":
                break
            time.sleep(0.5)
        if status != "LOADED":
            raise RuntimeError(f"code location still {status} after {timeout}s\n{self.log()[-4000:]}")
        self.load_log = self.log()
        if err:
            raise AssertionError(f"the robodata code location loaded with an error:\n{err}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {self.proc.returncode}:\n{self.log()[-6000:]}")


@contextlib.contextmanager
def webserver(home: Path, log_dir: Path, *, timeout: float = SERVER_GUARD_S) -> Iterator[Webserver]:
    """``dagster-webserver -w workspace.yaml`` on a free port, with ``home`` as the project home."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "dagster-webserver.log"
    env = home_env(home)
    # show every warning once (DeprecationWarning is hidden outside __main__ by default), so that the
    # "loads with no warnings" assertion sees them all
    env["PYTHONWARNINGS"] = "default"
    cmd = [str(VENV_BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    srv = Webserver(f"http://127.0.0.1:{port}", proc, log_path, home)
    try:
        deadline = time.monotonic() + timeout
        while True:
            srv.check_alive()
            try:
                with urllib.request.urlopen(f"{srv.url}/server_info", timeout=30) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster-webserver did not answer within {timeout}s:\n{srv.log()[-4000:]}")
            time.sleep(0.5)
        yield srv
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, grace: float = 60) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


# Python warnings as the code server logs them: "path.py:12: BetaWarning: ..." (warnings.showwarning),
# or a logged "...Warning: ..." line. Dagster's own INFO lines never contain "Warning:".
_WARNING_RE = re.compile(r"\b([A-Z]\w*Warning)\b\s*:")


def warning_lines(log: str) -> list[str]:
    """Lines of a webserver/code-server log that report a Python warning."""
    return [ln for ln in log.splitlines() if _WARNING_RE.search(ln)]


# ---- (c) headless Chromium ---------------------------------------------------------------------------------


@contextlib.contextmanager
def browser_page() -> Iterator[Any]:
    """A Playwright page (1400x900) in the system's headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            page = ctx.new_page()
            page.set_default_timeout(PAGE_GUARD_MS)
            page.set_default_navigation_timeout(PAGE_GUARD_MS)
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str, tmp_dir: Path) -> list[Path]:
    """Save ``name`` as a PNG under ``tmp_dir`` and, when $ROBODATA_SCREENSHOTS is set, there too."""
    out = [Path(tmp_dir) / name]
    extra = os.environ.get("ROBODATA_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        out.append(Path(extra) / name)
    png = page.screenshot(full_page=False)
    for p in out:
        p.write_bytes(png)
    return out


def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "build":
        kw = json.loads(argv[argv.index("--json") + 1]) if "--json" in argv else {}
        result = build_home(Path(argv[1]), **kw)
        print(BUILD_MARKER + json.dumps(result), flush=True)
        return 0
    print("usage: ui_harness.py build HOME [--json KWARGS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
