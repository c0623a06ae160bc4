"""Library stages that change episodes' shape, end to end through ``robodata.pipeline(...).run()`` (and the
Dagster custom-stage tier): trimming and segmentation cut every per-frame dataset, an action-space change is
described in info.json, stages run in the order given, and action statistics describe the published rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

import robodata
from robodata.api import PipelineError
from robodata.api.episodes import low_dim
from robodata.formats.isaaclab import EpisodeStore
from robodata.robot.model import packaged_urdf
from tests.test_trajectory import HW, plant

pytestmark = pytest.mark.slow

PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 7)]
PANDA_HOME = np.array([0.0, -0.5, 0.0, -2.0, 0.0, 1.8], np.float32)  # well inside the joint limits


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A real simulator session: three scripted Fetch pick-and-place episodes (canonical store, cameras)."""
    from robodata.sim.recorder import record_session

    out = tmp_path_factory.mktemp("api-stages-session")
    return record_session(out, "demo", n_episodes=3, seed=11, image_hw=HW, formats=("hdf5",))["hdf5"]


@pytest.fixture(scope="module")
def planted(recorded, tmp_path_factory) -> Path:
    """demo_0 held still for 60 frames at each end; demo_2's gripper closes at 40 and opens at 90."""
    d = tmp_path_factory.mktemp("planted") / "in"
    d.mkdir()
    plant(recorded, d / "planted.hdf5", head={"demo_0": 60}, tail={"demo_0": 60},
          gripper={"demo_2": [(0, 1.0), (40, -1.0), (90, 1.0)]})
    return d


def _lengths(store: Path) -> dict[str, int]:
    with EpisodeStore(store) as es:
        return {d: es.num_samples(d) for d in es.demo_names}


def _episodes(out: Path) -> list[int]:
    t = pq.read_table(next((out / "meta" / "episodes").rglob("*.parquet"))).to_pandas()
    return [int(n) for n in t.sort_values("episode_index")["length"]]


def _info(out: Path) -> dict:
    return json.loads((out / "meta" / "info.json").read_text())


def _parquet(out: Path, col: str) -> np.ndarray:
    t = pq.read_table(next((out / "data").rglob("*.parquet")))
    return np.stack(t.column(col).to_numpy(zero_copy_only=False))


class JointPosAction(robodata.PipelineStage):
    """action := six Panda joint positions (within its limits, moving with the recorded state) + the gripper
    command: 4 -> 7 columns."""

    name = "joint_pos_action"

    def process_episode(self, episode):
        s, a = np.asarray(episode["observation.state"], np.float32), np.asarray(episode["action"], np.float32)
        return {**episode, "action": np.concatenate([PANDA_HOME + 0.1 * np.tanh(s[:, :6]), a[:, 3:4]], axis=1),
                "action_names": [*PANDA_JOINTS, "gripper"]}


def test_trim_idle_shortens_episodes_and_cuts_their_camera_frames(planted, tmp_path):
    src = _lengths(planted / "planted.hdf5")
    res = robodata.pipeline(str(planted), str(tmp_path / "out"),
                            stages=[{"type": "trim_idle", "idle_speed": 0.002, "keep_idle_s": 0}]).run()
    assert res.published and res.episodes_in == 3 and res.episodes_out == 3, (res.failed, res.dropped)
    lengths = _episodes(tmp_path / "out")
    assert lengths[0] <= src["demo_0"] - 100  # most of the 120 planted still frames are gone
    assert sum(lengths) == res.frames_out < sum(src.values())
    info = _info(tmp_path / "out")
    assert info["total_frames"] == res.frames_out
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/trimmed", root=tmp_path / "out", video_backend="pyav")
    assert ds.num_episodes == 3 and len(ds) == res.frames_out
    cam = next(k for k in info["features"] if k.startswith("observation.images."))
    last = ds[lengths[0] - 1]  # the last kept frame of the trimmed episode decodes: the video was cut to match
    assert last["episode_index"] == 0 and tuple(last[cam].shape) == (3, *HW)
    # the kept state starts where the robot starts moving, not at the planted still frames
    with EpisodeStore(planted / "planted.hdf5") as es:
        still = low_dim(es, "demo_0")[1][0]
    state = _parquet(tmp_path / "out", "observation.state")
    assert not np.allclose(state[lengths[0] - 1], still, atol=1e-6) or not np.allclose(state[0], still, atol=1e-6)


def test_segments_become_episodes_and_their_frames_add_up(planted, tmp_path):
    src = _lengths(planted / "planted.hdf5")
    res = robodata.pipeline(str(planted), str(tmp_path / "out"),
                            stages=[{"type": "segment_episodes", "min_segment_frames": 5}]).run()
    assert res.published and not res.failed and not res.dropped
    ids = [e["episode_id"] for e in res.lineage]
    segs = [i for i in ids if "/demo_2/segment_" in i]
    assert len(segs) == 3  # open, closed (40..90), open again
    assert res.episodes_out == len(ids) > 3
    assert res.frames_out == sum(src.values()) == sum(_episodes(tmp_path / "out"))
    assert _episodes(tmp_path / "out")[ids.index(segs[1])] == 50
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/segments", root=tmp_path / "out", video_backend="pyav")
    assert ds.num_episodes == res.episodes_out and len(ds) == res.frames_out


def test_custom_stage_tier_cuts_every_per_frame_dataset(planted, tmp_path):
    """The Dagster tier's path (CustomStage.run, as the asset calls it): camera frames match the kept frames."""
    from robodata.stages.custom import CustomStage, custom_stage_from
    from robodata.storage import DataStore

    store = DataStore(str(tmp_path / "store"))
    for name, opts in (("trim_idle", {"idle_speed": 0.002, "keep_idle_s": 0}),
                       ("segment_episodes", {"min_segment_frames": 5})):
        stage = CustomStage(custom_stage_from(name, opts), tier=name)
        outcome = stage.run(store, "rec", source=planted / "planted.hdf5", source_rel="in/planted.hdf5")
        assert outcome.published, outcome.findings
        with store.read_path(stage.output_path("rec")) as out, EpisodeStore(out) as es, \
                EpisodeStore(planted / "planted.hdf5") as src:
            cams = [c.name for c in es.schema.cameras]
            assert cams
            for demo in es.demo_names:
                a = es.attrs(demo)
                source = str(a["robodata_episode_id"]).split("/")[1]
                start, stop = (int(x) for x in a.get("robodata_source_frames", (0, src.num_samples(source))))
                n = es.num_samples(demo)
                assert n == stop - start
                for c in cams:
                    np.testing.assert_array_equal(es.feature(demo, c, 0, n), src.feature(source, c, start, stop))
                np.testing.assert_array_equal(es.group(demo)["actions"][()], src.group(source)["actions"][start:stop])
                assert es.timestamps(demo)[0] == 0.0
            if name == "segment_episodes":
                assert len(es.demo_names) > 3


def test_end_effector_actions_change_the_action_space_and_info_json_says_so(recorded, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "demo.hdf5").symlink_to(recorded)
    panda = str(packaged_urdf("panda_description/urdf/panda.urdf"))
    ee = {"type": "end_effector_actions", "model": panda, "joints": PANDA_JOINTS, "ee_frame": "panda_hand_tcp",
          "locked": {"panda_joint7": 0.0}}
    # an object and a named stage in one list: the object runs first, as written (else EE sees 4 columns)
    res = robodata.pipeline(str(tmp_path / "in"), str(tmp_path / "ee"), stages=[JointPosAction(), ee]).run()
    assert res.published and not res.failed, res.failed
    info = _info(tmp_path / "ee")
    assert info["features"]["action"]["shape"] == [8]
    assert info["features"]["action"]["names"] == ["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"]
    modality = json.loads((tmp_path / "ee" / "meta" / "modality.json").read_text())
    assert max(v["end"] for v in modality["action"].values()) == 8
    a = _parquet(tmp_path / "ee", "action")
    assert a.shape[1] == 8 and np.allclose(np.linalg.norm(a[:, 3:7], axis=1), 1.0, atol=1e-4)


def test_stage_objects_and_names_keep_their_order(tmp_path):
    class Mark(robodata.PipelineStage):
        def __init__(self, name: str):
            self.name = name  # type: ignore[misc]

        def process_episode(self, episode):
            return episode

    p = robodata.pipeline(str(tmp_path), str(tmp_path / "out"),
                          stages=[Mark("first"), {"type": "set_task", "task": "x"}, Mark("third"), "keep_successful"])
    assert [s.label for s in p.stages] == ["first", "set_task", "third", "keep_successful"]
    b = (robodata.PipelineBuilder().source(str(tmp_path)).stage("keep_successful").stage(Mark("second"))
         .stage("set_task", task="x").output(str(tmp_path / "out2")).build())
    assert [s.label for s in b.stages] == ["keep_successful", "second", "set_task"]


def test_normalisation_statistics_describe_the_published_rows_only(recorded, tmp_path):
    (tmp_path / "in").mkdir()
    for n in ("a.hdf5", "b.hdf5"):  # the same episodes twice: one copy is a duplicate
        (tmp_path / "in" / n).symlink_to(recorded)
    res = robodata.pipeline(str(tmp_path / "in"), str(tmp_path / "out"), stages=[{"type": "normalize_actions",
                            "mode": "min_max"}], validators=[{"type": "episode_length", "min_frames": 100}]).run()
    assert res.published and res.duplicates and res.quarantined
    doc = json.loads((tmp_path / "out" / "meta" / "robodata_action_norm.json").read_text())
    assert doc["stats"]["action"]["count"] == [res.frames_out]
    info = _info(tmp_path / "out")
    assert doc["names"] == info["features"]["action"]["names"]
    assert info["action_normalization"]["stats"] == "meta/robodata_action_norm.json"
    assert info["action_normalization"]["mode"] == "min_max"
    a = _parquet(tmp_path / "out", "action")
    assert a.min() >= -1.0 - 1e-5 and a.max() <= 1.0 + 1e-5
    moving = np.ptp(a, axis=0) > 0
    assert np.allclose(a.min(axis=0)[moving], -1.0, atol=1e-4) and np.allclose(a.max(axis=0)[moving], 1.0, atol=1e-4)
    with pytest.raises(PipelineError, match="runs last"):
        robodata.pipeline(str(tmp_path / "in"), str(tmp_path / "x"), stages=["normalize_actions", {"type": "set_task", "task": "x"}])


def test_a_per_recording_tier_refuses_to_fit_normalisation_statistics(tmp_path):
    """In the asset graph a custom stage runs per recording partition: fitting there is refused, pointing at the
    release's own fit; with given statistics the stage is a tier like any other."""
    from robodata.robot.actions import ActionNormalizer
    from robodata.stages.custom import CustomStage, custom_stage_from

    with pytest.raises(PipelineError, match="tiers.lerobot.action_normalization"):
        CustomStage(custom_stage_from("normalize_actions", {"mode": "min_max"}), tier="normalize_actions")
    norm = ActionNormalizer("min_max")
    norm.update(np.array([[0.0, 1.0], [2.0, 3.0]]))
    stats = norm.save(tmp_path / "reference")  # a dataset folder holding meta/robodata_action_norm.json
    assert CustomStage(custom_stage_from("normalize_actions", {"stats": str(tmp_path / "reference")}),
                       tier="normalize_actions").stage.stats_from == str(tmp_path / "reference")
    assert stats.is_file()
