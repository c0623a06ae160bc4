"""A separate plugin package (tests/plugin_example) installed with pip, used by name from a pipeline YAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

# above the hang guards a test waits through: the plugin install (600 s) and its runs (900-1200 s each)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

PLUGIN = Path(__file__).parent / "plugin_example"
ROBODATA = Path(sys.executable).parent / "robodata"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin pip-installed into its own folder (kept off the shared venv), put on PYTHONPATH."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(PLUGIN)],
                   check=True, timeout=600)
    assert list(site.glob("robodata_example_plugin-*.dist-info"))
    return site


def _run(site: Path, pipeline: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([str(ROBODATA), "run", str(pipeline), "--json"], capture_output=True, text=True,
                          env=env, timeout=900)


def _trajectory(path: Path, n: int, amp: float) -> np.ndarray:
    t = np.arange(n) / 20.0
    v = np.stack([amp * np.sin(t), amp * np.cos(t)], axis=1)
    x = np.cumsum(v, axis=0) / 20.0
    table = np.column_stack([t, x, v])
    path.write_text("t,x,y,vx,vy\n" + "\n".join(",".join(f"{c:.6f}" for c in row) for row in table) + "\n")
    return table


def test_plugin_datasource_stage_validator_and_metric_by_name(plugin_site, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    calm = _trajectory(runs / "calm.csv", 40, 0.5)
    _trajectory(runs / "gentle.csv", 30, 0.8)
    _trajectory(runs / "wild.csv", 30, 5.0)
    (tmp_path / "p.yaml").write_text("""
sources:
  - type: csv_episodes
    path: runs/
    options: {fps: 20}
stages:
  - {type: smooth_actions, window: 5}
validators:
  - {type: max_abs_action, limit: 2.0}
metrics:
  - {type: path_length}
output: out/
""")
    proc = _run(plugin_site, tmp_path / "p.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert res["published"] and res["episodes_in"] == 3 and res["episodes_out"] == 2
    [q] = res["quarantined"]
    assert "wild-csv" in q["episode_id"] and q["findings"][0]["check"] == "max_abs_action"
    assert res["metrics"]["path_length"]["count"] == 2
    # The stage's smoothing reached the written actions.
    lineage = json.loads((tmp_path / "out" / "meta" / "robodata_lineage.json").read_text())["episodes"]
    first = next(e["episode_index"] for e in lineage if e["source"].endswith("calm.csv"))
    t = pq.read_table(next((tmp_path / "out" / "data").rglob("*.parquet"))).to_pandas()
    written = np.stack(t[t.episode_index == first]["action"].to_numpy())
    raw = calm[:, 3:5]
    padded = np.pad(raw, ((2, 2), (0, 0)), mode="edge")
    expected = np.stack([np.convolve(padded[:, j], np.ones(5) / 5, mode="valid") for j in range(2)], axis=1)
    np.testing.assert_allclose(written, expected, atol=1e-5)
    assert not np.allclose(written, raw, atol=1e-3)


def test_a_plugin_that_fails_to_import_is_one_clear_error(plugin_site, tmp_path):
    (tmp_path / "data").mkdir()
    _trajectory(tmp_path / "data" / "a.csv", 20, 0.5)
    (tmp_path / "p.yaml").write_text("sources: [{type: csv_episodes, path: data/}]\n"
                                     "stages: [{type: broken_stage}]\noutput: out/\n")
    proc = _run(plugin_site, tmp_path / "p.yaml")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: robodata.stages plugin 'broken_stage'")
    assert "robodata-example-plugin" in err[0] and "RuntimeError: this plugin needs a robot arm driver" in err[0]
    assert not (tmp_path / "out").exists()


DAGSTER_SCRIPT = r'''
import json, sys
import numpy as np
from pathlib import Path
import pyarrow.parquet as pq
from robodata.config import load_config
from robodata.landing import LandingZone
from robodata_dagster.runs import instance_and_defs, run_partitions, tick_sensor
from tests.recordings import make_mcap

cfg = load_config()
instance, defs = instance_and_defs(cfg)
graph = defs.resolve_asset_graph()
deps = {k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys) for k in graph.get_all_asset_keys()}
src = make_mcap(Path(sys.argv[1]) / "wave.mcap", 50) if sys.argv[2] == "mcap" else Path(sys.argv[2])
LandingZone(cfg.landing_url).land(src)
keys = [r.partition_key for r in tick_sensor(instance, defs)[0]]
out = {"deps": deps, "keys": keys, "runs": {}}
for job in ("ingest_recordings", "pipeline_stages", "write_lerobot_episodes"):
    out["runs"][job] = [(o.success, o.error) for o in run_partitions(instance, defs, job, keys)]
out["runs"]["cut_release"] = [(o.success, o.error) for o in run_partitions(instance, defs, "cut_release", [""])]
latest = json.loads((Path(cfg.storage_url) / "lerobot/releases/latest.json").read_text())
t = pq.read_table(next(Path(latest["path"], "data").rglob("*.parquet"))).to_pandas()
out["actions"] = np.stack(t["action"].to_numpy()).tolist()
from robodata.registry import Registry
out["recordings"] = [r.key for r in Registry(cfg.registry_url).in_partition(keys[0])]
raw = Path(cfg.storage_url) / "raw_teleop" / f"{out['recordings'][0]}.hdf5"
import h5py
with h5py.File(raw) as f:
    out["raw_actions"] = f["data/demo_0/actions"][()].tolist()
print("RESULT" + json.dumps(out))
'''


# The stages follow raw_teleop (DAGSTER_SCRIPT runs no MimicGen or augmentation; each tier reads exactly the one
# before it in the graph).
NO_MIMICGEN_NO_AUGMENT = "tiers: {synthetic_demos: {enabled: false}, augmented_videos: {enabled: false}}\n"


def _platform_run(site: Path, tmp_path: Path, landed: str) -> dict:
    """DAGSTER_SCRIPT in a fresh process with the plugin on its path and tmp_path/robodata.yaml as config."""
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{Path(__file__).parents[1]}",
           "ROBODATA_CONFIG": str(tmp_path / "robodata.yaml")}
    for k in ("ROBODATA_HOME", "DAGSTER_HOME"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-c", DAGSTER_SCRIPT, str(tmp_path), landed], capture_output=True,
                          text=True, env=env, timeout=1200, cwd=Path(__file__).parents[1])
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(line[len("RESULT"):])


def test_plugin_stage_is_its_own_asset_in_the_dagster_runner(plugin_site, tmp_path):
    """The same pipeline YAML in the platform: the plugin's stage is an asset between the recording tiers and
    lerobot_episodes, and its effect reaches the release."""
    from tests.recordings import SMALL_TOPIC_MAP

    (tmp_path / "map.yaml").write_text(json.dumps(SMALL_TOPIC_MAP))
    (tmp_path / "p.yaml").write_text("stages: [{type: smooth_actions, window: 5}]\n"
                                     "validators: [{type: max_abs_action, limit: 100}]\n")
    (tmp_path / "robodata.yaml").write_text(f"home: {tmp_path / 'home'}\n"
                                            "sources: [{pattern: '*.mcap', topic_map: map.yaml}]\n"
                                            f"{NO_MIMICGEN_NO_AUGMENT}pipeline: p.yaml\n")
    out = _platform_run(plugin_site, tmp_path, "mcap")
    assert "synthetic_demos" not in out["deps"] and "augmented_videos" not in out["deps"]
    assert out["deps"]["smooth_actions"] == ["raw_teleop"]  # the last enabled recording tier
    assert out["deps"]["lerobot_episodes"] == ["smooth_actions"]
    assert all(ok for runs in out["runs"].values() for ok, _ in runs), out["runs"]
    raw = np.asarray(out["raw_actions"])
    padded = np.pad(raw, ((2, 2), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, j], np.ones(5) / 5, mode="valid") for j in range(raw.shape[1])], axis=1)
    np.testing.assert_allclose(np.asarray(out["actions"]), smooth, atol=1e-5)


def test_plugin_datasource_feeds_the_platform(plugin_site, tmp_path):
    """A CSV trajectory landed in the landing zone: the plugin's datasource (named in the pipeline YAML) makes
    it a recording the sensor takes and raw_teleop ingests; the plugin's stage and validator follow."""
    table = _trajectory(tmp_path / "drive.csv", 40, 0.5)
    (tmp_path / "p.yaml").write_text("sources: [{type: csv_episodes, path: ., options: {fps: 20}}]\n"
                                     "stages: [{type: smooth_actions, window: 3}]\n"
                                     "validators: [{type: max_abs_action, limit: 100}]\n")
    (tmp_path / "robodata.yaml").write_text(f"home: {tmp_path / 'home'}\n{NO_MIMICGEN_NO_AUGMENT}pipeline: p.yaml\n")
    out = _platform_run(plugin_site, tmp_path, str(tmp_path / "drive.csv"))
    assert len(out["keys"]) == 1 and out["keys"][0].endswith("|default")  # today, no robot folder
    assert len(out["recordings"]) == 1 and out["recordings"][0].startswith("drive-csv-")
    assert all(ok for runs in out["runs"].values() for ok, _ in runs), out["runs"]
    np.testing.assert_allclose(np.asarray(out["raw_actions"]), table[:, 3:5], atol=1e-5)
    raw = table[:, 3:5]
    padded = np.pad(raw, ((1, 1), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, j], np.ones(3) / 3, mode="valid") for j in range(2)], axis=1)
    np.testing.assert_allclose(np.asarray(out["actions"]), smooth, atol=1e-5)
