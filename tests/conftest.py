"""Shared fixtures: paths to the real data beside the checkout, an isolated project home per test."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


# What robodata sets in the process for the rest of it (runs.prepare_home: the config and the Dagster home a
# CLI command ran with). Restored after every test to what it was when the test started (a module fixture's
# project home included): a test that runs a command in-process must not hand its config to the next module.
_PROCESS_ENV = ("ROBODATA_CONFIG", "ROBODATA_HOME", "DAGSTER_HOME")


@pytest.fixture(autouse=True)
def _env_as_it_was():
    saved = {k: os.environ.get(k) for k in _PROCESS_ENV}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module", autouse=True)
def _no_ray_across_modules():
    """An embedded Ray a module started (the Python API keeps one up for the process) is shut down after the
    module: Ray's workers keep the environment of the ``ray.init`` that started them (credentials, the S3
    endpoint), so a later module's settings would not reach them."""
    yield
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.exists():
        raise RuntimeError(f"the real test data is missing: {REALDATA} (CI lays ../shared beside the checkout)")
    return REALDATA


@contextlib.contextmanager
def moto_server():
    """An S3-compatible server (moto's standalone server) on 127.0.0.1; yields the environment that points
    boto3/s3fs at it (credentials from the environment, as in production)."""
    import socket
    import subprocess
    import sys
    import time

    import s3fs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    # fsspec caches filesystem instances by their arguments, not the environment: one made for an earlier
    # server (another port) would be handed out again and talk to a server that is gone
    s3fs.S3FileSystem.clear_instance_cache()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        deadline = time.monotonic() + 300  # a hang guard, generous: a busy 2-core machine
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        s3fs.S3FileSystem.clear_instance_cache()


def s3_filesystem(env: dict[str, str]):
    import s3fs

    return s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                             client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]}, use_listings_cache=False)


@contextlib.contextmanager
def project_home(cfg_file: Path, *, clear: tuple[str, ...] = ()):
    """Point robodata at ``cfg_file`` (its own home, a fresh Dagster instance) for the duration; yields
    ``(config, instance, definitions)`` and restores the environment afterwards. ``clear`` names more
    variables to unset meanwhile (e.g. MLFLOW_TRACKING_URI)."""
    keys = ("ROBODATA_CONFIG", "ROBODATA_HOME", "DAGSTER_HOME", *clear)
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ.pop(k, None)
    os.environ["ROBODATA_CONFIG"] = str(cfg_file)
    try:
        from robodata.config import load_config
        from robodata_dagster.runs import instance_and_defs

        cfg = load_config()
        instance, defs = instance_and_defs(cfg)
        yield cfg, instance, defs
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def registered_partition(instance, registry_url: str, key: str, tiers: tuple[str, ...] = ("raw_teleop",),
                         date: str = "2026-12-01") -> str:
    """Register ``key`` (episodes already in the store) as an ingested recording, alone in its own robot x day
    partition (robot = the key), with published outputs of ``tiers``; returns the partition key to
    materialize a later tier with. For tests that build a tier's input by hand instead of ingesting."""
    import time as _time

    from robodata.registry import INGESTED, Output, Recording, Registry

    part = f"{date}|{key}"
    registry = Registry(registry_url)
    with registry.engine.begin() as conn:
        if not registry.key_taken(conn, key):
            registry.add_recording(conn, Recording(key, "test-zone", f"{key}/{key}.hdf5", 1, 1.0, "", _time.time(),
                                                   0, INGESTED, partition_key=part))
    for tier in tiers:
        registry.put_output(Output(tier, key, part, f"in-{key}", f"v-{key}", "published"))
    instance.add_dynamic_partitions("robots", [key])
    return part


@pytest.fixture()
def source_demos(tmp_path: Path) -> Path:
    """Recorded source demos in the store for Isaac Lab Mimic: actions, initial_state, no obs/datagen_info (not
    annotated: Mimic annotates, then generates)."""
    import json

    import h5py
    import numpy as np

    p = tmp_path / "store" / "raw_teleop" / "rec.hdf5"
    p.parent.mkdir(parents=True)
    with h5py.File(p, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0"})
        for i in range(2):
            g = data.create_group(f"demo_{i}")
            g.create_dataset("actions", data=np.zeros((12, 7), np.float32))
            g.create_dataset("initial_state", data=np.zeros(5, np.float32))
            g.attrs["num_samples"] = 12
    return p
