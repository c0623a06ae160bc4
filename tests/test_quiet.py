"""Quiet by default: a command prints its progress and result; the encoder's banner, Ray's notices and other
libraries' warnings go to ``<home>/logs/robodata.log``; ``robodata --verbose`` shows them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec
from robodata.logs import configured
from robodata.readers.base import RecordingWarning

REPO = Path(__file__).resolve().parents[1]
ROBODATA = Path(sys.executable).with_name("robodata")
CHATTER = ("Svt[", "torchcodec", "Token authentication", "Started a local Ray instance", "Progress bars")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One episode of 10 frames, one 32x32 camera: enough for an encoder to start."""
    path = tmp_path_factory.mktemp("quiet") / "store.hdf5"
    schema = EpisodeSchema([FeatureSpec("joint_pos", "state", (2,)), FeatureSpec("cmd", "action", (2,)),
                            FeatureSpec("front", "image", (32, 32, 3), "uint8")], 10.0, task="t", robot_type="r")
    rng = np.random.default_rng(0)
    with EpisodeStoreWriter(path, schema) as w:
        demo = w.begin_episode()
        demo.extend(np.arange(10) / 10.0, {"joint_pos": rng.random((10, 2), dtype=np.float32),
                                           "cmd": rng.random((10, 2), dtype=np.float32),
                                           "front": rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)})
        demo.close(success=True)
    return path


def _robodata(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SVT_LOG", "SVT_LOG_FILE", "ROBODATA_VERBOSE", "ROBODATA_HOME", "ROBODATA_CONFIG",
                        "RAY_DATA_VERBOSE")}
    env["ROBODATA_NO_REAPER"] = "1"
    return subprocess.run([str(ROBODATA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_convert_prints_its_result_and_no_encoder_chatter(store, tmp_path):
    proc = _robodata(tmp_path, "convert", str(store), "out")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("wrote out: 1 episodes, 10 frames")
    assert not [c for c in CHATTER if c in proc.stderr], proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    assert not (tmp_path / ".robodata").exists()  # nothing was logged: no log file left behind

    loud = _robodata(tmp_path, "--verbose", "convert", str(store), "loud")
    assert loud.returncode == 0, loud.stderr
    assert "Svt[info]: SVT [version]" in loud.stderr and loud.stdout.startswith("wrote ")


def test_dependency_chatter_goes_to_the_log_file_and_robodata_warnings_to_the_user(tmp_path, capfd, monkeypatch):
    log = tmp_path / "home" / "logs" / "robodata.log"
    shown: list[str] = []  # what reaches the user's warnings display (stderr, outside pytest)
    monkeypatch.setattr(warnings, "showwarning", lambda message, *a, **k: shown.append(str(message)))
    root = logging.getLogger()
    handlers, showwarning = list(root.handlers), warnings.showwarning
    with configured(False, lambda: log):
        assert not log.exists()  # nothing logged yet: no file, no folder
        logging.getLogger("lerobot.utils.import_utils").warning(
            "'torchcodec' is installed but cannot be loaded. Falling back to 'pyav' as a default decoder.")
        logging.getLogger("ray._private.worker").info("Started a local Ray instance.")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn_explicit("a dependency's deprecation", DeprecationWarning, "torch/x.py", 1)
            warnings.warn_explicit("bag.mcap: summary section fails its CRC", RecordingWarning, "reader.py", 2)
        logging.getLogger("robodata.lerobot.video").warning("h264_nvenc cannot open here")
        logging.getLogger("urllib3").error("connection refused")
    err = capfd.readouterr().err
    assert "torchcodec" not in err and "Started a local Ray" not in err and "deprecation" not in err
    assert shown == ["bag.mcap: summary section fails its CRC"]  # robodata's own warning: for the user
    assert "warning: h264_nvenc cannot open here" in err and "error: connection refused" in err
    text = log.read_text()
    assert "torchcodec" in text and "Started a local Ray instance." in text and "a dependency's deprecation" in text
    # Put back as found: a command run in-process (tests, a notebook) leaves logging as it was.
    assert root.handlers == handlers and warnings.showwarning is showwarning


@pytest.mark.slow
def test_run_on_ray_prints_the_result_not_rays_notices(store, tmp_path):
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({"sources": [{"path": str(store)}],
                                                            "output": str(tmp_path / "out")}))
    proc = _robodata(tmp_path, "run", "pipeline.yaml", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "published" in proc.stdout and not [c for c in CHATTER if c in proc.stderr], proc.stderr
    log = (tmp_path / ".robodata" / "logs" / "robodata.log").read_text()  # the home: ./.robodata here
    # Ray prints its token-authentication notice only on some machines: where it did, it went to the log
    assert "Started a local Ray instance" in log and "Token authentication" not in proc.stderr
