"""The mission's pipeline YAML, as written, against an S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import moto_server, s3_filesystem
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

pytestmark = pytest.mark.slow

MISSION_YAML = """\
sources:
  - type: mcap
    path: s3://bucket/bags/
output: s3://bucket/curated/
num_gpus: 4
batch_size: 1024
"""


@pytest.fixture(scope="module")
def s3_env():
    with moto_server() as env:
        yield env


@pytest.mark.timeout(1800)  # above the run's 900 s hang guard and the S3 server's start
def test_mission_yaml_runs_as_written_on_s3(s3_env, tmp_path):
    fs = s3_filesystem(s3_env)
    fs.mkdir("bucket")
    for name, frames in (("arm-01.mcap", 40), ("arm-02.mcap", 50)):
        fs.put(str(make_mcap(tmp_path / name, frames)), f"bucket/bags/robot-7/{name}")
    # The project config in the working folder says which topic map fits these bags; the YAML is verbatim.
    (tmp_path / "map.yaml").write_text(json.dumps(SMALL_TOPIC_MAP))
    (tmp_path / "robodata.yaml").write_text("sources: [{pattern: '*.mcap', topic_map: map.yaml}]\n")
    (tmp_path / "pipeline.yaml").write_text(MISSION_YAML)
    env = {**os.environ, **s3_env}
    proc = subprocess.run([str(Path(sys.executable).parent / "robodata"), "run", "pipeline.yaml", "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert res["published"] and res["output"] == "s3://bucket/curated"
    assert res["episodes_out"] == 2 and res["frames_out"] == 90
    assert any("num_gpus=4" in n for n in res["notes"])
    listing = fs.find("bucket/curated")
    assert "bucket/curated/meta/info.json" in listing
    assert not [p for p in fs.find("bucket") if ".partial-" in p]  # no upload debris
    local = tmp_path / "curated"
    fs.get("bucket/curated", str(local), recursive=True)
    from robodata.lerobot import validate_dataset

    assert not [f for f in validate_dataset(local) if f.severity == "error"]
    info = json.loads((local / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_frames"] == 90
