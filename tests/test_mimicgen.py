"""MimicGen-style generation on the real Fetch simulator: annotation, transform math, determinism, a tiny run
checked from the written HDF5, and bad input."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robodata.formats.isaaclab import EpisodeStore
from robodata.mimicgen import MimicGenError, SubtaskConfig, SyntheticDemosConfig
from robodata.mimicgen.annotate import detect_signals, rising_edges, segment_ends
from robodata.mimicgen.cli import main as annotate_main
from robodata.mimicgen.generate import cached_sim, generate_demos
from robodata.mimicgen.poses import interpolate, invert, pose_error, relative_to, transform_segment
from robodata.mimicgen.source import load_sources
from robodata.mimicgen.validate import validate_generated

HW = (48, 64)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from robodata.sim.recorder import record_session

    out = tmp_path_factory.mktemp("src")
    rep = record_session(out, "src", n_episodes=2, seed=3, image_hw=HW, formats=["hdf5"])
    assert all(rep["success"])
    return rep["hdf5"]


@pytest.fixture(scope="module")
def generated(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    cfg = SyntheticDemosConfig(demos_per_source=2, datagen={"seed": 7})
    rep = generate_demos(sources, out / "gen.hdf5", cfg, workers=1)
    return cfg, rep, out / "gen.hdf5"


def _poses(rng, n):
    T = np.zeros((n, 4, 4))
    T[:, :3, :3] = Rotation.random(n, random_state=rng.integers(1 << 30)).as_matrix()
    T[:, :3, 3] = rng.uniform(-1, 1, (n, 3))
    T[:, 3, 3] = 1
    return T


def test_transform_keeps_pose_relative_to_object_exactly():
    rng = np.random.default_rng(0)
    eef = _poses(rng, 50)
    obj_src, obj_new = _poses(rng, 2)
    new = transform_segment(eef, obj_src, obj_new)
    dp, dr = pose_error(relative_to(obj_new, new), relative_to(obj_src, eef))
    assert dp.max() < 1e-12 and dr.max() < 1e-7
    assert np.allclose(invert(obj_new) @ obj_new, np.eye(4), atol=1e-12)
    # Interpolation: N poses after T0 ending exactly at T1, positions evenly spaced, rotation along one axis.
    path = interpolate(eef[0], eef[1], 4)
    assert len(path) == 4 and np.array_equal(path[-1], eef[1])
    steps = np.diff(np.concatenate([eef[:1, :3, 3], path[:, :3, 3]]), axis=0)
    assert np.allclose(steps, steps[0])
    ang = [Rotation.from_matrix(eef[0, :3, :3].T @ p[:3, :3]).magnitude() for p in path]
    assert np.allclose(np.diff(ang), ang[0], atol=1e-9)
    assert interpolate(eef[0], eef[1], 0).shape == (0, 4, 4)


def test_segment_ends_take_the_last_grasp_before_the_next_subtask():
    grasp = np.zeros(40, bool)
    grasp[5:8] = True  # a grasp that slipped
    grasp[20:] = True  # the retry that held
    ends = segment_ends({"grasp": grasp}, ["grasp", None], 40, [2, 0])
    assert ends == [23, 40]
    with pytest.raises(MimicGenError, match="never turns on"):
        segment_ends({"grasp": np.zeros(40, bool)}, ["grasp", None], 40)
    with pytest.raises(MimicGenError, match="no subtask term signal 'lift'"):
        segment_ends({"grasp": grasp}, ["lift", None], 40)


def test_detected_subtasks_match_recorded_signals(sources):
    with EpisodeStore(sources) as es:
        for name in es.demo_names:
            ep = es.read(name, images=False)
            rec = ep.datagen["subtask_term_signals"]
            det = detect_signals(ep.obs["eef_pose"][:, :3], ep.obs["object_pose"][:, :3], ep.actions[:, 3],
                                 fingers=ep.obs["gripper"], goal=ep.obs["goal"])
            for sig in ("grasp", "place"):
                assert abs(int(rising_edges(det[sig])[-1]) - int(rising_edges(rec[sig])[-1])) <= 3, (name, sig)


def test_tiny_generation_checked_from_the_written_file(sources, generated):
    cfg, rep, path = generated
    assert rep.successes == 4 and rep.trials >= 4
    assert rep.success_rate >= 0.5
    src = {s.name: s for s in load_sources(sources, cfg.subtasks)}
    with EpisodeStore(path) as es, EpisodeStore(sources) as ss:
        assert es.schema.to_json() == ss.schema.to_json()  # downstream tiers read it identically
        assert len(es.demo_names) == 4
        for name in es.demo_names:
            ep = es.read(name)
            assert ep.attrs["success"] is True
            assert ep.obs["front"].shape == (len(ep), *HW, 3) and ep.obs["front"].std() > 0
            assert set(ep.attrs["source_demos"]) == {"grasp", "place"}
            assert {"seed", "trial_index", "generation_seed"} <= set(ep.attrs)
            for k in ("actions", "states"):
                assert np.isfinite(getattr(ep, k)).all()
            # The object is at the goal at the end (Fetch's 5 cm) in the recorded poses.
            assert np.linalg.norm(ep.obs["object_pose"][-1, :3] - ep.obs["goal"][-1]) < 0.06
            # The invariant, recomputed here from raw arrays: target eef pose in the reference object's frame.
            tgt = ep.datagen["target_eef_pose"]["gripper"].astype(np.float64)
            for seg in ep.attrs["segments"]:
                s = src[seg["source"]]
                ref = "cube" if seg["subtask"] == "grasp" else "goal"
                obj_gen = ep.datagen["object_pose"][ref][seg["start"]].astype(np.float64)
                a, b = seg["transformed_start"], seg["end"]
                want = np.linalg.inv(s.objects[ref][seg["source_start"]]) @ s.eef[seg["source_start"]:seg["source_end"]]
                got = np.linalg.inv(obj_gen) @ tgt[a:b]
                assert np.abs(got - want).max() < 1e-5
    checks = validate_generated(path, sources, cfg.subtasks, sim=cached_sim(HW))
    assert all(c.passed for c in checks.values()), checks
    assert checks["kept_demos_succeed_in_sim"].details["replayed"] == 4


def test_same_seed_gives_identical_demos(sources, generated, tmp_path):
    cfg, rep, path = generated
    # Warm the cached simulator with an unrelated trial first: results must not depend on what ran before.
    generate_demos(sources, tmp_path / "other.hdf5", SyntheticDemosConfig(demos_per_source=1, datagen={"seed": 99}),
                   workers=1)
    again = generate_demos(sources, tmp_path / "again.hdf5", cfg, workers=2)
    assert again.trials == rep.trials
    with h5py.File(path, "r") as a, h5py.File(tmp_path / "again.hdf5", "r") as b:
        names = []
        a.visit(names.append)
        for n in names:
            if isinstance(a[n], h5py.Dataset):
                assert np.array_equal(a[n][()], b[n][()]), n


def test_failed_trials_kept_apart_with_reasons(sources, tmp_path):
    cfg = SyntheticDemosConfig(demos_per_source=1, datagen={"seed": 1, "num_trials": 3, "guarantee": False,
                                                             "keep_failed": True},
                               subtasks=[SubtaskConfig(name="grasp", object_ref="cube", term_signal="grasp",
                                                       action_noise=1.5),
                                         SubtaskConfig(name="place", object_ref="goal", action_noise=1.5)])
    rep = generate_demos(sources, tmp_path / "g.hdf5", cfg, failed_path=tmp_path / "f.hdf5", workers=1)
    assert rep.trials == 3 and rep.failures >= 1 and sum(rep.failure_reasons.values()) == rep.failures
    with EpisodeStore(tmp_path / "f.hdf5") as es:
        assert len(es) == rep.failures
        assert all(es.attrs(n)["success"] is False and es.attrs(n)["failure_reason"] for n in es.demo_names)


def _copy_with(sources, tmp_path, edit):
    p = tmp_path / "bad.hdf5"
    shutil.copyfile(sources, p)
    with h5py.File(p, "r+") as f:
        for name in f["data"]:
            edit(f[f"data/{name}"])
    return p


def test_bad_inputs_give_one_clear_error(sources, tmp_path):
    cfg = SyntheticDemosConfig()
    no_objects = _copy_with(sources, tmp_path, lambda g: g.__delitem__("obs/datagen_info/object_pose"))
    with pytest.raises(MimicGenError, match=r"bad.hdf5 demo_0: no object poses"):
        generate_demos(no_objects, tmp_path / "o.hdf5", cfg, workers=1)

    def no_subtasks(g):
        del g["obs/datagen_info/subtask_term_signals"]
        g["actions"][:, 3] = 1.0  # the gripper never closes

    with pytest.raises(MimicGenError, match="signal 'grasp' never turns on"):
        generate_demos(_copy_with(sources, tmp_path, no_subtasks), tmp_path / "o.hdf5", cfg, workers=1)
    mug = SyntheticDemosConfig(subtasks=[SubtaskConfig(name="grasp", object_ref="mug", term_signal="grasp"),
                                         SubtaskConfig(name="place", object_ref="goal")])
    with pytest.raises(MimicGenError, match="object 'mug'"):
        generate_demos(sources, tmp_path / "o.hdf5", mug, workers=1)
    with pytest.raises(MimicGenError, match="simulator failed to start"):
        cached_sim(HW, {"front": "no_such_camera"})
    assert not (tmp_path / "o.hdf5").exists()


def test_annotate_cli_reviews_and_corrects(sources, tmp_path, capsys):
    out = tmp_path / "annotated.hdf5"
    assert annotate_main(["annotate", str(sources), "--set", "demo_0:grasp=30", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "demo_0" in table and "grasp rec/det" in table
    with EpisodeStore(out) as es:
        assert rising_edges(es.read("demo_0", images=False).datagen["subtask_term_signals"]["grasp"]).tolist() == [30]
    assert annotate_main(["annotate", str(sources), "--set", "demo_9:grasp=3"]) == 2


# ---- Isaac Lab Mimic's output: what its own poses can tell ------------------------------------------------


def _isaaclab_output(sources, out, *extra: str):
    """The Isaac Lab stand-in's output for ``sources`` (3 demos of 20 frames), written in this process."""
    from robodata.mimicgen.isaaclab_standin import main as standin

    assert standin(["--task", "Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0", "--input_file", str(sources),
                    "--output_file", str(out), "--generation_num_trials", "3", *extra]) == 0
    return out


def test_isaaclab_invariant_is_not_evaluated_without_provenance_never_passed(sources, tmp_path):
    from robodata.mimicgen.isaaclab import isaaclab_checks
    from robodata.mimicgen.validate import CHECK_INVARIANT

    cfg = SyntheticDemosConfig()
    # no eef/target pose pair recorded: nothing to compute
    bare = isaaclab_checks(_isaaclab_output(sources, tmp_path / "bare.hdf5"), subtasks=cfg.subtasks)[CHECK_INVARIANT]
    assert not bare.passed and not bare.evaluated and bare.details["evaluated"] is False
    assert bare.message.startswith("not evaluated: ") and "no per-subtask source provenance" in bare.message
    assert "target_eef_pose" in bare.message and bare.details["demos_without_poses"] == ["demo_0", "demo_1", "demo_2"]
    # consistent poses (eef tracking its target, rigid transforms): still no provenance, so still not evaluated,
    # with the consistency that was checked in its details
    good = isaaclab_checks(_isaaclab_output(sources, tmp_path / "poses.hdf5", "--datagen_poses"),
                           subtasks=cfg.subtasks)[CHECK_INVARIANT]
    assert not good.passed and not good.evaluated and "recorded poses are consistent in 3 demos" in good.message
    assert good.details["problems"] == [] and set(good.details["per_subtask"]) == {"grasp", "place"}
    assert 0 < good.details["per_subtask"]["grasp"]["max_tracking_pos_m"] < good.details["pos_tolerance_m"]


@pytest.mark.parametrize("plant, what", [("far", "m / "), ("not_rigid", "not a rigid transform")])
def test_isaaclab_invariant_fails_on_an_inconsistent_pose_naming_demo_and_subtask(sources, tmp_path, plant, what):
    from robodata.mimicgen.isaaclab import isaaclab_checks
    from robodata.mimicgen.validate import CHECK_INVARIANT

    out = _isaaclab_output(sources, tmp_path / "gen.hdf5", "--datagen_poses")
    with h5py.File(out, "r+") as f:
        poses = f["data/demo_1/obs/datagen_info/eef_pose/right"]
        T = poses[()]
        if plant == "far":
            T[15, :3, 3] += 1.0  # a metre from its target, late in the demo: the last subtask
        else:
            T[15, :3, :3] *= 2.0  # a scaled "rotation"
        poses[...] = T
    check = isaaclab_checks(out, subtasks=SyntheticDemosConfig().subtasks)[CHECK_INVARIANT]
    assert check.evaluated and not check.passed
    assert "demo_1 subtask place (" in check.message and "frame 15" in check.message and what in check.message
    assert "demo_0" not in check.message and "demo_2" not in check.message
