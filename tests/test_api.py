"""The Python API on real Ray Data: sources -> ingest -> user stages -> validators -> dedup -> LeRobot v3.0."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import robodata
from robodata.api import PipelineError
from robodata.plugins import PluginError
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    """Two recordings in nested folders (one cut into two episodes by a gap) and a renamed copy of one."""
    root = tmp_path_factory.mktemp("bags")
    make_mcap(root / "a.mcap", 60, gap_after=30)
    (root / "robot-2" / "2026-12-01").mkdir(parents=True)
    make_mcap(root / "robot-2" / "2026-12-01" / "b.mcap", 45)
    shutil.copy(root / "a.mcap", root / "robot-2" / "a_again.mcap")
    (root / ".hidden.mcap.partial-1234").write_bytes(b"half a file")
    return root


def _actions(out: Path) -> np.ndarray:
    t = pq.read_table(next((out / "data").rglob("*.parquet")))
    return np.stack(t.column("action").to_numpy(zero_copy_only=False))


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "robodata_lineage.json"}


class Scale(robodata.PipelineStage):
    """Multiplies actions; fails on request for one episode; can break the schema on request."""

    def __init__(self, factor: float, fail_on: str = "", drop_column: bool = False):
        self.factor, self.fail_on, self.drop_column = factor, fail_on, drop_column

    def process_episode(self, episode):
        if self.fail_on and episode["episode_id"].endswith(self.fail_on):
            raise ValueError("this episode is cursed")
        out = {**episode, "action": np.asarray(episode["action"]) * self.factor}
        if self.drop_column:
            out.pop("store")
        return out


class RecordBatchSizes(robodata.PipelineStage):
    def __init__(self, folder: str):
        self.folder = folder

    def process_batch(self, batch):
        n = len(batch["episode_id"])
        Path(self.folder, f"{batch['episode_id'][0].replace('/', '_')}.{n}").write_text(str(n))
        return batch


class ShortEpisodes(robodata.Validator):
    name = "not_too_short"

    def __init__(self, min_frames: int, blocking: bool = True):
        self.min_frames = min_frames
        self.blocking = blocking  # type: ignore[misc]

    def validate_episode(self, episode):
        if episode["num_frames"] < self.min_frames:
            yield self.finding(f"only {episode['num_frames']} frames")


def test_pipeline_ingests_dedups_and_writes_lerobot(bags, tmp_path):
    out = tmp_path / "lerobot"
    res = robodata.pipeline(sources=str(bags), output=str(out), topic_map=SMALL_TOPIC_MAP,
                            metrics=["action_jerk", "episode_duration"]).run()
    assert res.ok and res.published and res.output == str(out)
    assert len(res.recordings) == 3 and res.episodes_in == 5  # the partial upload is not a recording
    assert res.episodes_out == 3 and res.frames_out == 60 + 45
    twins = {d["episode_id"].split("/")[0].rsplit("-", 1)[0]: d["twin"] for d in res.duplicates}
    assert set(twins) == {"a_again-mcap"} and all(t.startswith("a-mcap-") for t in twins.values())
    assert res.metrics["action_jerk"]["count"] == 3 and res.metrics["episode_duration.duration_s"]["max"] > 0
    lineage = json.loads((out / "meta" / "robodata_lineage.json").read_text())["episodes"]
    assert [e["source"].rsplit("/", 1)[-1] for e in lineage] == ["a.mcap", "a.mcap", "b.mcap"]
    assert res.lineage == lineage
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/api", root=out, video_backend="pyav")
    assert ds.num_episodes == 3 and len(ds) == 105
    assert ds[0]["observation.images.cam"].shape[0] == 3


def test_custom_stage_changes_reach_the_output_and_failures_are_isolated(bags, tmp_path):
    base = robodata.pipeline(str(bags / "a.mcap"), str(tmp_path / "base"), topic_map=SMALL_TOPIC_MAP).run()
    res = robodata.pipeline(str(bags / "a.mcap"), str(tmp_path / "scaled"), topic_map=SMALL_TOPIC_MAP,
                            stages=[Scale(2.0, fail_on="demo_1")]).run()
    assert base.ok and res.published and not res.ok
    assert res.episodes_out == 1
    [failure] = res.failed
    assert failure["episode_id"].endswith("/demo_1") and "'scale'" in failure["error"]
    assert "ValueError: this episode is cursed" in failure["error"] and failure["episode_id"] in failure["error"]
    base_a = _actions(tmp_path / "base")[:30]
    np.testing.assert_allclose(_actions(tmp_path / "scaled"), 2.0 * base_a, rtol=1e-6)


def test_a_stage_that_breaks_the_schema_is_named(bags, tmp_path):
    res = robodata.pipeline(str(bags / "a.mcap"), str(tmp_path / "o"), topic_map=SMALL_TOPIC_MAP,
                            stages=[Scale(1.0, drop_column=True)]).run()
    assert not res.published and len(res.failed) == 2
    assert all("stage 'scale' returned the wrong schema: missing column(s) store" in f["error"] for f in res.failed)
    assert not (tmp_path / "o").exists()


def test_batch_stage_gets_batches_of_batch_size(bags, tmp_path):
    seen = tmp_path / "batches"
    seen.mkdir()
    res = robodata.pipeline(str(bags), str(tmp_path / "o"), topic_map=SMALL_TOPIC_MAP, batch_size=2,
                            stages=[RecordBatchSizes(str(seen))]).run()
    assert res.ok
    sizes = [int(p.read_text()) for p in seen.iterdir()]
    assert sum(sizes) == 5 and max(sizes) <= 2


def test_blocking_validator_quarantines_episodes_a_warning_does_not(bags, tmp_path):
    res = robodata.pipeline(str(bags / "a.mcap"), str(tmp_path / "o"), topic_map=SMALL_TOPIC_MAP,
                            validators=[ShortEpisodes(31)]).run()
    # a.mcap has 30 + 30 frames: both too short for 31
    assert not res.published and {q["episode_id"].rsplit("/", 1)[1] for q in res.quarantined} == {"demo_0", "demo_1"}
    assert all("only 30 frames" in q["findings"][0]["message"] for q in res.quarantined)
    warn = robodata.pipeline(str(bags / "a.mcap"), str(tmp_path / "w"), topic_map=SMALL_TOPIC_MAP,
                             validators=[ShortEpisodes(31, blocking=False)]).run()
    assert warn.ok and warn.episodes_out == 2 and not warn.quarantined
    assert {f["severity"] for f in warn.findings if f["check"] == "not_too_short"} == {"warning"}


class RejectDataset(robodata.Validator):
    def validate_dataset(self, path):
        yield self.finding(f"{path.name} is not wanted")


def test_a_dataset_that_fails_a_blocking_check_is_quarantined_not_published(bags, tmp_path):
    out = tmp_path / "o"
    good = robodata.pipeline(str(bags / "a.mcap"), str(out), topic_map=SMALL_TOPIC_MAP).run()
    before = _digests(out)
    res = robodata.pipeline(str(bags / "a.mcap"), str(out), topic_map=SMALL_TOPIC_MAP, seed=1,
                            validators=[RejectDataset()]).run()
    assert good.ok and not res.published and res.quarantine
    assert "quarantine" in res.quarantine and Path(res.quarantine, "meta", "info.json").exists()
    assert _digests(out) == before  # the earlier output is untouched


def test_resume_skips_published_parts_and_gives_the_same_output(bags, tmp_path):
    spec = {"sources": [{"type": "mcap", "path": str(bags)}], "output": str(tmp_path / "full"),
            "topic_map": SMALL_TOPIC_MAP, "work_dir": str(tmp_path / "work")}
    full = robodata.pipeline(**{k: v for k, v in spec.items() if k != "sources"}, sources=spec["sources"]).run()
    assert full.ok and full.resumed_episodes == 0
    # An interrupted run: two of three parts published, no output yet.
    parts = sorted((tmp_path / "work" / "pipeline" / "parts").iterdir())
    shutil.rmtree(parts[0])
    again = robodata.pipeline(spec["sources"], str(tmp_path / "resumed"), topic_map=SMALL_TOPIC_MAP,
                              work_dir=str(tmp_path / "work")).run()
    assert again.ok and again.resumed_episodes == 2 and again.episodes_out == 3
    assert _digests(tmp_path / "resumed") == _digests(tmp_path / "full")


def test_bad_names_and_keys_are_one_clear_error(bags, tmp_path):
    with pytest.raises(PluginError, match=r"no stage named 'nope' \(known: .*keep_successful"):
        robodata.pipeline(str(bags), str(tmp_path / "o"), stages=["nope"])
    with pytest.raises(PipelineError, match="bogus"):
        robodata.pipeline(str(bags), str(tmp_path / "o"), bogus=1)
    with pytest.raises(PipelineError, match="no such file or folder"):
        robodata.pipeline(str(tmp_path / "missing"), str(tmp_path / "o")).run()
    with pytest.raises(PipelineError, match=r"\.output"):
        robodata.PipelineBuilder().source(str(bags)).build()


def test_builder_and_yaml_make_the_same_pipeline(bags, tmp_path):
    built = (robodata.PipelineBuilder()
             .source("mcap", str(bags / "robot-2"), topic_map=SMALL_TOPIC_MAP)
             .stage("set_task", task="wave at the camera")
             .validate("finite_values")
             .output(str(tmp_path / "built"), format="lerobot-v3")
             .options(seed=3)
             .build())
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "small.yaml").write_text(json.dumps(SMALL_TOPIC_MAP))
    (tmp_path / "p.yaml").write_text(f"""
sources:
  - type: mcap
    path: {bags / 'robot-2'}
    topic_map: maps/small.yaml
stages:
  - type: set_task
    task: wave at the camera
validators: [{{type: finite_values}}]
output: from_yaml/
seed: 3
""")
    from_yaml = robodata.pipeline(str(tmp_path / "p.yaml"))
    a, b = built.run(), from_yaml.run()
    assert a.ok and b.ok and b.output == str(tmp_path / "from_yaml")
    assert a.duplicates == [] and a.episodes_out == b.episodes_out == 3
    tasks = pq.read_table(tmp_path / "built" / "meta" / "tasks.parquet").to_pandas()
    assert list(tasks.index) == ["wave at the camera"] or "wave at the camera" in tasks.to_string()
    assert _digests(tmp_path / "built") == _digests(tmp_path / "from_yaml")


@pytest.mark.timeout(2400)  # above its hang guards: the wait for a first part, the kill, the run again
def test_a_killed_run_started_again_ends_with_the_same_output(bags, tmp_path):
    """SIGKILL of `robodata run` (and everything it started) once its first parts are published; the rerun
    skips them and its output equals an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    def yaml_for(out: str, work: str) -> Path:
        p = tmp_path / f"{out}.yaml"
        p.write_text(json.dumps({"sources": [{"type": "mcap", "path": str(bags)}], "output": out,
                                 "work_dir": work, "topic_map": SMALL_TOPIC_MAP}))
        return p

    robodata_bin = Path(sys.executable).parent / "robodata"
    parts = tmp_path / "work" / "pipeline" / "parts"
    proc = subprocess.Popen([str(robodata_bin), "run", str(yaml_for("killed", "work"))], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    family: set[int] = set()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            family |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            break
        if parts.exists() and any(not p.name.startswith(".") for p in parts.iterdir()):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in family:  # Ray's own processes, wherever their session is
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=600)
    killed_out = tmp_path / "killed"
    if killed_out.exists():  # only ever a complete, published output
        assert (killed_out / "meta" / "info.json").exists()
    again = robodata.pipeline(str(yaml_for("killed", "work"))).run()
    full = robodata.pipeline(str(yaml_for("full", "work_full"))).run()
    assert again.ok and full.ok and again.resumed_episodes >= 1
    assert _digests(killed_out) == _digests(tmp_path / "full")


def test_a_published_lerobot_dataset_is_recurated(realdata, tmp_path):
    """Held-out data: the real SO-101 LeRobot v3.0 dataset (recorded by others) through the API, two episodes."""
    src = realdata / "lerobot_v3_so101"
    res = robodata.pipeline([{"type": "lerobot", "path": str(src), "options": {"episodes": [0, 2]}}],
                            str(tmp_path / "so101"), stages=[{"type": "set_task", "task": "pick the cube"}],
                            validators=["finite_values"]).run()
    assert res.ok and res.episodes_in == 2 and res.episodes_out == 2, res.summary()
    info = json.loads((tmp_path / "so101" / "meta" / "info.json").read_text())
    src_info = json.loads((src / "meta" / "info.json").read_text())
    assert info["fps"] == src_info["fps"] and info["features"]["action"]["shape"] == [6]
    src_eps = pq.read_table(next((src / "meta" / "episodes").rglob("*.parquet"))).to_pandas()
    want = int(src_eps[src_eps.episode_index == 0]["length"].iloc[0]) + int(src_eps[src_eps.episode_index == 2]["length"].iloc[0])
    assert res.frames_out == want
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/so101", root=tmp_path / "so101", video_backend="pyav")
    assert ds.num_episodes == 2 and ds[0]["task"] == "pick the cube"


def test_a_damaged_recording_is_one_named_failure_and_the_rest_is_published(bags, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(bags / "a.mcap", src / "good.mcap")
    data = (bags / "a.mcap").read_bytes()
    (src / "cut.mcap").write_bytes(data[: len(data) // 2])  # a recorder that died mid-file
    res = robodata.pipeline(str(src), str(tmp_path / "o"), topic_map=SMALL_TOPIC_MAP).run()
    assert res.published and not res.ok and res.episodes_out == 2
    [bad] = res.failed
    assert bad["source"].endswith("cut.mcap") and bad["stage"] == "ingest"
    assert "cut.mcap" in bad["error"] and "truncated" in bad["error"]
