"""Files written the way Isaac Lab's recorder writes them (nested groups, gzip, no timestamps; built in
tests/isaaclab_recorder.py from the published layout, not with robodata's writer) through every path:
inspect, ingest (the raw_teleop step), convert, MimicGen's source reader, augmentation's merge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from robodata.cli import main as cli
from robodata.formats.isaaclab import EpisodeStore
from robodata.formats.quaternions import decide_order, reorder
from robodata.ingest import IngestError, ingest_recording
from robodata.inspect import format_inspection, inspect_path
from tests.isaaclab_recorder import POLICY_TERMS, demo_data, leaves, write_isaaclab_recording, write_robomimic_dataset

SIM_STATE = ("states/articulation/robot/joint_position", "states/articulation/robot/root_pose",
             "states/rigid_object/cube/root_pose", "initial_state/articulation/robot/joint_position",
             "initial_state/rigid_object/cube/root_pose", "processed_actions")


@pytest.fixture
def recorder_file(tmp_path):
    return write_isaaclab_recording(tmp_path / "isaac" / "dataset.hdf5", demos=2, frames=20)


def test_reader_infers_the_features_of_a_recorder_file(recorder_file):
    with EpisodeStore(recorder_file) as es:
        roles = {f.name: f.role for f in es.schema.features}
        assert roles["table_cam"] == roles["wrist_cam"] == "image"
        assert roles["joint_pos"] == roles["eef_quat"] == "state"
        assert roles["obs.actions"] == "extra"  # the last-action term beside the action itself
        assert es.spec("obs.actions").h5path == "obs/actions"
        assert es.timestamps_inferred and np.allclose(np.diff(es.timestamps("demo_0")), 1 / 30)
        assert es.quaternion_order.order == "wxyz" and es.quaternion_order.source == "data"
        ep = es.read("demo_0")
        assert ep.states.shape == (20, sum(int(np.prod(f.shape)) for f in es.schema.of_role("state")))
        assert set(ep.datagen) == {"object_pose", "eef_pose", "target_eef_pose", "subtask_term_signals"}
        lay = {b.s: b for b in es.batches("demo_1", 8)}
        assert sorted(lay) == [0, 8, 16] and lay[16].e == 23
        assert "states/rigid_object/cube/root_pose" in lay[0].passthrough and lay[0].states is None
        assert set(es.statics("demo_0")) >= {"initial_state/articulation/robot/root_pose"}


def test_inspect_names_the_layout(recorder_file):
    d = inspect_path(recorder_file)
    text = format_inspection(d)
    assert "table_cam" in text and "image" in text
    assert "quaternions" in text and "wxyz" in text
    assert "no timestamps" in text
    assert "states/articulation/robot/joint_position" in text  # the sim state tree is shown


def test_ingest_keeps_the_nested_layout_and_converts_quaternions(recorder_file, tmp_path):
    out = tmp_path / "canonical.hdf5"
    report = ingest_recording(recorder_file, out)
    assert [e.frames for e in report.episodes] == [20, 23]
    assert any("no timestamps" in n for n in report.notes) and any("wxyz" in n for n in report.notes)
    src, dst = leaves(recorder_file, "demo_1"), leaves(out, "demo_1")
    assert set(src) <= set(dst)  # every group path of the recorder file survives
    for path in src:
        if path == "obs/eef_quat":
            assert np.array_equal(dst[path], reorder(src[path], "wxyz", "xyzw"))
        else:
            assert np.array_equal(dst[path], src[path]), path
    for path in SIM_STATE:
        assert path in dst
    assert "states" not in {p.split("/")[0] for p in dst if "/" not in p}  # no flat states beside the tree
    with h5py.File(out) as f:
        assert f["data/demo_1"].attrs["seed"] == 43 and bool(f["data/demo_1"].attrs["success"])
        table = json.loads(f["data"].attrs["env_args"])["robodata"]
    assert table["quaternion_order"] == "xyzw" and table["sim_state_quaternion_order"] == "wxyz"
    # obs/object (position + a wxyz quaternion) is not covered by the name rule: the store says it stayed wxyz
    assert table["unconverted_quaternion_columns"] == {"object": [3]}
    assert any("'object'" in n and "not converted" in n for n in report.notes)  # and the user is told
    # the canonical store reads back as itself (no second conversion) and ingests to the same content
    again = tmp_path / "again.hdf5"
    ingest_recording(out, again)
    second = leaves(again, "demo_1")
    assert all(np.array_equal(second[p], dst[p]) for p in dst)


def test_cli_ingest_and_convert_read_the_same_file(recorder_file, tmp_path, capsys):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    assert cli(["ingest", str(recorder_file), "--out", str(tmp_path / "c.hdf5")]) == 0
    assert cli(["convert", str(recorder_file), str(tmp_path / "direct")]) == 0
    assert cli(["convert", str(tmp_path / "c.hdf5"), str(tmp_path / "via")]) == 0
    capsys.readouterr()
    direct = LeRobotDataset(repo_id="local/direct", root=tmp_path / "direct", video_backend="pyav")
    via = LeRobotDataset(repo_id="local/via", root=tmp_path / "via", video_backend="pyav")
    assert len(direct) == len(via) == 43
    assert np.array_equal(direct[30]["observation.state"].numpy(), via[30]["observation.state"].numpy())
    assert direct[0]["observation.images.table_cam"].shape == (3, 24, 32)
    names = direct.meta.features["observation.state"]["names"]
    assert names is None or len(names) == direct[0]["observation.state"].shape[0]
    # the quaternion of eef_quat is xyzw in the dataset: identity is (0, 0, 0, 1)
    with EpisodeStore(tmp_path / "c.hdf5") as es:
        sl = es.schema.slices("state")["eef_quat"]
    assert np.allclose(direct[0]["observation.state"].numpy()[sl[0]:sl[1]], [0, 0, 0, 1])


def test_isaac_lab_3_files_are_xyzw_and_stay_so(tmp_path):
    path = write_isaaclab_recording(tmp_path / "il3.hdf5", quat_order="xyzw")
    with EpisodeStore(path) as es:
        assert es.quaternion_order.order == "xyzw" and es.quaternion_order.source == "data"
        assert np.allclose(es.feature("demo_0", "eef_quat")[0], [0, 0, 0, 1])
    out = tmp_path / "c.hdf5"
    ingest_recording(path, out)
    assert np.array_equal(leaves(out)["obs/eef_quat"], leaves(path)["obs/eef_quat"])


def test_a_stamp_or_a_setting_decides_before_the_data(tmp_path):
    path = write_isaaclab_recording(tmp_path / "stamped.hdf5", quat_order="wxyz",
                                    env_args={"quat_convention": "xyzw"})  # a (wrong) stamp still wins over data
    with EpisodeStore(path) as es:
        assert es.quaternion_order.order == "xyzw" and es.quaternion_order.source == "stamp"
    with EpisodeStore(path, quaternion_order="wxyz") as es:
        assert es.quaternion_order.source == "setting"
        assert np.allclose(es.feature("demo_0", "eef_quat")[0], [0, 0, 0, 1])
    # data that cannot tell (tilted poses only): assumed, and said so
    tilted = {"q": np.tile(np.array([0.5, 0.5, 0.5, 0.5]), (10, 1))}
    d = decide_order("auto", {}, tilted, "x.hdf5")
    assert d.source == "assumed" and "quaternion_order" in d.detail
    with pytest.raises(ValueError, match="x.hdf5: quaternion order 'zyxw'"):
        decide_order("zyxw", {}, {}, "x.hdf5")


def test_mimicgen_source_reads_the_recorder_file(recorder_file):
    from robodata.mimicgen.config import SubtaskConfig
    from robodata.mimicgen.source import load_sources

    subtasks = [SubtaskConfig(name="grasp", object_ref="cube", term_signal="grasp"),
                SubtaskConfig(name="lift", object_ref="cube")]
    sources = load_sources(recorder_file, subtasks)
    assert [s.name for s in sources] == ["demo_0", "demo_1"]
    assert not sources[0].signals_detected and sources[0].objects["cube"].shape == (20, 4, 4)
    segs = sources[0].segments(subtasks)
    assert [(s.start, s.end) for s in segs] == [(0, 11), (11, 20)]  # the signal rises at frame 10


def test_augmentation_merge_carries_the_sim_state(recorder_file, tmp_path):
    from robodata.augment.merge import Variant, merge_variants

    canonical = tmp_path / "c.hdf5"
    ingest_recording(recorder_file, canonical)
    out = tmp_path / "aug.hdf5"
    report = merge_variants(canonical, out, [Variant("demo_1", 0, 7, "local", {})])
    assert not report.failed and list(report.written) == ["demo_2"]
    src, new = leaves(canonical, "demo_1"), leaves(out, "demo_2")
    for path in SIM_STATE:
        assert np.array_equal(new[path], src[path]), path


def test_bad_nested_layouts_are_one_error_naming_the_group(tmp_path):
    path = write_isaaclab_recording(tmp_path / "short.hdf5")
    with h5py.File(path, "r+") as f:  # a sim-state leaf that lost rows
        del f["data/demo_1/states/rigid_object/cube/root_velocity"]
        f["data/demo_1/states/rigid_object/cube"].create_dataset("root_velocity", data=np.zeros((5, 6)))
    with pytest.raises(IngestError) as err:
        ingest_recording(path, tmp_path / "o.hdf5")
    assert "short.hdf5" in str(err.value) and "/data/demo_1" in str(err.value)
    assert not (tmp_path / "o.hdf5").exists()

    path = write_isaaclab_recording(tmp_path / "nocam.hdf5")
    with h5py.File(path, "r+") as f:
        del f["data/demo_1/obs/wrist_cam"]
    with pytest.raises(IngestError, match=r"nocam.hdf5: /data/demo_1/obs/wrist_cam is missing"):
        ingest_recording(path, tmp_path / "o.hdf5")

    path = tmp_path / "noobs.hdf5"
    with h5py.File(path, "w") as f:
        g = f.create_group("data/demo_0")
        g.create_dataset("actions", data=np.zeros((4, 2)))
        g.create_dataset("observations", data=np.zeros((4, 2)))
    with pytest.raises(IngestError, match=r"noobs.hdf5: /data/demo_0 lacks the 'obs' group \(or a flat 'obs' dataset\)"):
        ingest_recording(path, tmp_path / "o.hdf5")
    with h5py.File(path, "r+") as f:  # a flat obs, but not one row per frame
        f["data/demo_0"].create_dataset("obs", data=np.zeros((3, 2)))
    with pytest.raises(IngestError, match=r"noobs.hdf5: /data/demo_0/obs is a flat dataset of shape \(3, 2\)"):
        ingest_recording(path, tmp_path / "o.hdf5")


def test_flat_policy_obs_is_one_state_feature_on_every_path(tmp_path, capsys):
    """``concatenate_terms=True``: /data/demo_k/obs is one (T, D) dataset. inspect, ingest, convert, MimicGen's
    source reader and augmentation's merge read it as the state feature ``obs`` and keep the layout."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from robodata.augment.merge import Variant, merge_variants
    from robodata.mimicgen.config import SubtaskConfig
    from robodata.mimicgen.errors import MimicGenError
    from robodata.mimicgen.source import load_sources

    path = write_isaaclab_recording(tmp_path / "flat.hdf5", flat_obs=True, cameras=False, datagen=False)
    raw = demo_data(23, seed=1, flat_obs=True)["obs"]
    width = sum(int(np.prod(demo_data(2, 0)["obs"][k].shape[1:])) for k in POLICY_TERMS)
    assert raw.shape == (23, width)
    with EpisodeStore(path) as es:
        assert [(f.name, f.role, f.shape) for f in es.schema.features] == [("obs", "state", (width,)),
                                                                            ("actions", "action", (7,))]
        assert np.array_equal(es.read("demo_1").states, raw)
    assert "obs" in format_inspection(inspect_path(path))
    out = tmp_path / "c.hdf5"
    report = ingest_recording(path, out)
    assert [e.frames for e in report.episodes] == [20, 23]
    src, dst = leaves(path, "demo_1"), leaves(out, "demo_1")
    assert set(src) <= set(dst) and all(np.array_equal(dst[p], src[p]) for p in src)  # obs stays one dataset
    with h5py.File(out) as f:
        assert isinstance(f["data/demo_1/obs"], h5py.Dataset)
    assert cli(["convert", str(path), str(tmp_path / "lr")]) == 0
    capsys.readouterr()
    ds = LeRobotDataset(repo_id="local/flat", root=tmp_path / "lr", video_backend="pyav")
    assert len(ds) == 43 and np.allclose(ds[20 + 5]["observation.state"].numpy(), raw[5])
    merged = merge_variants(out, tmp_path / "aug.hdf5", [Variant("demo_0", 0, 1, "local", {})])
    assert not merged.failed and np.array_equal(leaves(tmp_path / "aug.hdf5", "demo_2")["obs"], leaves(out)["obs"])
    with pytest.raises(MimicGenError, match="flat.hdf5"):  # no datagen_info in a flat obs: a named refusal
        load_sources(path, [SubtaskConfig(name="grasp", object_ref="cube")])


def test_quaternion_columns_say_where_quaternions_are(recorder_file, tmp_path, capsys):
    """obs/object is position + quaternion: the name rule misses it, ``quaternion_columns`` names it; a wrong
    entry is one error naming the file and the feature."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from robodata.config import SourceConfig
    from robodata.formats.isaaclab import EpisodeStoreError

    raw = leaves(recorder_file)["obs/object"]
    with EpisodeStore(recorder_file) as es:
        assert es.unconverted_quaternions == {"object": [3]}
        assert np.array_equal(es.feature("demo_0", "object"), raw)
    with EpisodeStore(recorder_file, quaternion_columns={"object": [3]}) as es:
        assert es.unconverted_quaternions == {} and es.schema.extra["quaternion_columns"]["object"] == [3]
        assert np.array_equal(es.feature("demo_0", "object")[:, 3:], reorder(raw[:, 3:], "wxyz", "xyzw"))
        assert not any("not converted" in n for n in es.notes)
    with EpisodeStore(recorder_file, quaternion_columns={"eef_quat": []}) as es:  # "holds none" beats the name
        assert "eef_quat" not in es.schema.extra.get("quaternion_columns", {})
        assert es.unconverted_quaternions == {"object": [3]}  # said to hold none: not flagged either
    for bad, what in (({"nope": [0]}, "names 'nope', which is no state feature"),
                      ({"object": [5]}, "'object': starts [5] do not fit")):
        with pytest.raises(EpisodeStoreError, match=re.escape(f"dataset.hdf5: quaternion_columns {what}")):
            EpisodeStore(recorder_file, quaternion_columns=bad)
    assert SourceConfig(pattern="*.hdf5", quaternion_columns={"object": [3]}).hdf5_options() == {
        "quaternion_columns": {"object": [3]}}
    assert SourceConfig().hdf5_options() == {}
    # robodata convert: the same options as ingest, and the store's reading notes printed
    assert cli(["convert", str(recorder_file), str(tmp_path / "lr"), "--fps", "50", "--quaternion-order", "wxyz",
                "--quaternion-column", "object:3"]) == 0
    err = capsys.readouterr().err
    assert "frames are 50 Hz apart (set)" in err and "quaternions wxyz (setting)" in err and "object[3]" in err
    ds = LeRobotDataset(repo_id="local/q", root=tmp_path / "lr", video_backend="pyav")
    with EpisodeStore(recorder_file) as es:
        sl = es.schema.slices("state")["object"]
    assert ds.meta.fps == 50
    assert np.allclose(ds[0]["observation.state"].numpy()[sl[0] + 3:sl[1]], reorder(raw[0, 3:], "wxyz", "xyzw"))
    assert cli(["convert", str(recorder_file), str(tmp_path / "lr2")]) == 0
    err = capsys.readouterr().err
    assert "30 Hz apart (assumed" in err and "'object' looks like it holds a quaternion" in err
    assert cli(["convert", str(recorder_file), str(tmp_path / "lr3"), "--quaternion-column", "object"]) == 2
    assert "expected FEATURE:START" in capsys.readouterr().err


def test_robomimic_filter_keys_and_control_freq_survive_ingest(tmp_path):
    """A robomimic dataset: its rate is env_kwargs.control_freq (not 30 assumed) and its /mask filter keys are kept,
    in the names ingest gives the demos (robosuite's demo_1.. become demo_0..)."""
    path = write_robomimic_dataset(tmp_path / "lift.hdf5", demos=3)
    with EpisodeStore(path) as es:
        assert es.schema.fps == 20 and es.fps_source == "env_args env_kwargs.control_freq"
        assert es.schema.extra["filter_keys"] == {"train": ["demo_1", "demo_2"], "valid": ["demo_3"]}
        assert any("20 Hz apart (from env_args env_kwargs.control_freq)" in n for n in es.notes)
    out = tmp_path / "c.hdf5"
    report = ingest_recording(path, out)
    assert report.fps == 20 and [e.frames for e in report.episodes] == [12, 13, 14]
    with h5py.File(out) as f:
        mask = {k: [v.decode() for v in f[f"mask/{k}"][()]] for k in f["mask"]}
        assert mask == {"train": ["demo_0", "demo_1"], "valid": ["demo_2"]}
        assert len(f["data/demo_2/actions"]) == 14  # the valid demo is the 14-frame one
        assert np.allclose(np.diff(f["data/demo_0/timestamps"][()]), 1 / 20)
    again = tmp_path / "again.hdf5"  # the canonical store ingests to the same keys
    ingest_recording(out, again)
    with h5py.File(again) as f:
        assert [v.decode() for v in f["mask/valid"][()]] == ["demo_2"]
    with EpisodeStore(write_robomimic_dataset(tmp_path / "nofreq.hdf5", control_freq=None, masks={})) as es:
        assert es.schema.fps == 30 and es.fps_source == "assumed" and "filter_keys" not in es.schema.extra
    bad = write_robomimic_dataset(tmp_path / "badmask.hdf5", masks={"train": ["demo_9"]})
    with pytest.raises(IngestError, match=r"badmask.hdf5: /mask/train names demos the file lacks \(\['demo_9'\]\)"):
        ingest_recording(bad, tmp_path / "o.hdf5")


def test_demo_data_follows_the_recorder_shapes():
    """The fixture itself: initial_state leaves are one row, as a one-env recorder writes them."""
    d = demo_data(12, seed=0)
    assert d["initial_state"]["articulation"]["robot"]["root_pose"].shape == (1, 7)
    assert d["states"]["articulation"]["robot"]["joint_position"].shape == (12, 9)
    assert d["obs"]["datagen_info"]["subtask_term_signals"]["grasp"].dtype == bool


@pytest.mark.slow
def test_platform_ingest_of_a_recorder_file(tmp_path, capsys):
    """``robodata ingest FILE`` through Dagster (land, register, raw_teleop): the path that died with a TypeError
    on nested groups. The config's source options say the file's frame rate."""
    import yaml

    from robodata.config import load_config
    from robodata.registry import Registry

    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(tmp_path / "proj"), "ray": {"num_cpus": 1},
        "sources": [{"pattern": "*.hdf5", "fps": 50, "quaternion_order": "wxyz"}],
    }))
    path = write_isaaclab_recording(tmp_path / "robot-isaac" / "lift.hdf5", demos=2, frames=24)
    assert cli(["--config", str(cfg_file), "ingest", str(path)]) == 0, capsys.readouterr()
    cfg = load_config(cfg_file)
    (rec,) = [r for p in Registry(cfg.registry_url).partitions() for r in Registry(cfg.registry_url).in_partition(p)]
    (out,) = Registry(cfg.registry_url).outputs("raw_teleop", [rec.key]).values()
    assert out.status == "published"
    profile = out.summary["profile"]  # the recording's profiling report, beside its episodes
    assert profile["episodes"] == 2 and Path(profile["profile_path"]).read_text().startswith("<!DOCTYPE html>")
    stored = Path(out.path) if Path(out.path).is_absolute() else Path(cfg.storage_url) / out.path
    with EpisodeStore(stored) as es:
        assert len(es) == 2 and np.allclose(np.diff(es.timestamps("demo_0")), 1 / 50)
        assert es.schema.extra["sim_state_quaternion_order"] == "wxyz"
        assert es.group("demo_1")["states/rigid_object/cube/root_pose"].shape == (27, 7)


def _annotated_output(tmp_path, name="gen.hdf5"):
    """A recorder file as Isaac Lab Mimic writes its output (obs/datagen_info), the gripper recorded as its finger
    opening (obs/gripper_pos): open, then closed from frame 8 on; the eef 10 cm above the cube throughout."""
    path = write_isaaclab_recording(tmp_path / name, demos=2, frames=20, cameras=False)
    with h5py.File(path, "r+") as f:
        for d in ("demo_0", "demo_1"):
            n = f[f"data/{d}/actions"].shape[0]
            del f[f"data/{d}/obs/gripper_pos"]
            f[f"data/{d}/obs"].create_dataset("gripper_pos", data=np.where(np.arange(n)[:, None] >= 8, 0.0, 0.04)
                                              * np.ones((1, 2)), compression="gzip")
    return path


def test_mimic_invariant_compares_the_eef_with_the_object_it_holds(tmp_path):
    """Isaac Lab Mimic's output: while the gripper is closed on the cube, the eef pose in the cube's frame holds;
    a slip fails naming demo, subtask and frame; no gripper is "not evaluated", never passed; MimicGen's
    per-subtask provenance (src_demo_inds / src_demo_labels) is read into the details."""
    from robodata.mimicgen.config import SubtaskConfig
    from robodata.mimicgen.isaaclab import invariant_check

    subtasks = [SubtaskConfig(name="grasp", object_ref="cube", term_signal="grasp"),
                SubtaskConfig(name="lift", object_ref="cube")]
    good = _annotated_output(tmp_path)
    with h5py.File(good, "r+") as f:
        f["data/demo_0"].create_dataset("src_demo_inds", data=np.array([3, 1]))
        f["data/demo_0"].create_dataset("src_demo_labels", data=np.repeat([3, 1], [11, 9])[:, None])
    check = invariant_check(good, subtasks)
    assert check.passed and check.evaluated, check.message
    assert check.details["grasp"]["demos_grasp_evaluated"] == ["demo_0", "demo_1"]
    row = check.details["grasp"]["grasp_drift"]["demo_1"]["grasp"]
    assert row["object"] == "cube" and row["max_drift_pos_m"] < 1e-5
    assert check.details["provenance"] == {"demo_0": {"src_demo_inds": [3, 1],
                                                      "src_demo_labels": [[0, 11, 3], [11, 20, 1]]}}

    slip = _annotated_output(tmp_path, "slip.hdf5")
    with h5py.File(slip, "r+") as f:  # the cube drops 5 cm out of the hand at frame 15 (eef and target stay)
        T = f["data/demo_1/obs/datagen_info/object_pose/cube"][()]
        T[15:, 2, 3] -= 0.05
        f["data/demo_1/obs/datagen_info/object_pose/cube"][...] = T
    check = invariant_check(slip, subtasks)
    assert check.evaluated and not check.passed
    assert "demo_1 subtask grasp (eef franka holding cube, frame 15" in check.message and "0.05 m" in check.message
    assert "demo_0" not in check.message

    nogrip = _annotated_output(tmp_path, "nogrip.hdf5")
    with h5py.File(nogrip, "r+") as f:
        for d in ("demo_0", "demo_1"):
            del f[f"data/{d}/obs/gripper_pos"]
    check = invariant_check(nogrip, subtasks)
    assert not check.passed and not check.evaluated
    assert "no gripper action or state recorded" in check.message and "no per-subtask source provenance" in check.message
    assert not invariant_check(good, []).passed  # no subtasks: which object a grasp holds is unknown
