"""The quality layer in the Python API, as in the platform: dedup through robodata.dedup (exact copies excluded,
near copies and augmented visual variants told apart and reported), the project's robot model on every
recording, drift against a reference dataset as a validator, and a profile written with the output.

Inputs are simulator recordings changed the way another tool would change them (h5py on the file: images
restyled, trajectories re-recorded with noise, a joint driven past its limit, an offset planted), not
robodata's writers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import robodata

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
HW = (24, 32)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    from robodata.sim.recorder import record_session

    out = tmp_path_factory.mktemp("sim")
    return record_session(out, "demo", n_episodes=3, seed=11, image_hw=HW, formats=("hdf5",))["hdf5"]


def _copy(src: Path, dst: Path, change=None) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    if change is not None:
        with h5py.File(dst, "r+") as f:
            for demo in f["data"]:
                change(f["data"][demo])
    return dst


def _restyle(g: h5py.Group) -> None:  # the same demonstration, other images (an augmented variant)
    for cam in ("front", "wrist"):
        ds = g[f"obs/{cam}"]
        ds[...] = 255 - ds[...]


def _rerecord(g: h5py.Group) -> None:  # the same demonstration re-recorded: a little noise on every signal
    rng = np.random.default_rng(len(g.name))
    for key in ("actions", "obs/joint_pos"):
        ds = g[key]
        ds[...] = ds[...] + rng.normal(0, 0.002, ds.shape).astype(ds.dtype)


def test_dedup_excludes_copies_reports_near_copies_and_keeps_visual_variants(recorded, tmp_path):
    src = tmp_path / "in"
    _copy(recorded, src / "a.hdf5")
    _copy(recorded, src / "a_copy.hdf5")  # the same bytes under another name: exact
    _copy(recorded, src / "b_restyled.hdf5", _restyle)
    _copy(recorded, src / "c_rerecorded.hdf5", _rerecord)
    res = robodata.pipeline(str(src), str(tmp_path / "out")).run()  # default: exclude exact copies only
    assert res.published and res.episodes_in == 12
    kinds = {d["episode_id"]: d["kind"] for d in res.duplicates}
    assert set(kinds.values()) == {"exact"} and len(kinds) == 3
    assert all(e.startswith("a_copy") for e in kinds) and all(d["twin"].startswith("a-") for d in res.duplicates)
    kept = {d["episode_id"].split("-")[0]: d["kind"] for d in res.kept_duplicates}
    assert kept == {"b_restyled": "visual-variant", "c_rerecorded": "near-trajectory"}, res.kept_duplicates
    assert res.episodes_out == 9  # variants and near copies stay: the policy excludes exact copies
    assert "kept duplicates:" in res.summary() and "visual-variant twin of" in res.summary()

    strict = robodata.pipeline(str(src), str(tmp_path / "out_all"), dedup="exclude_all").run()
    gone = {d["episode_id"].split("-")[0] for d in strict.duplicates}
    assert gone == {"a_copy", "c_rerecorded"} and strict.episodes_out == 6  # a variant is never a duplicate
    assert {d["kind"] for d in strict.kept_duplicates} == {"visual-variant"}

    off = robodata.pipeline(str(src), str(tmp_path / "out_off"), dedup=False).run()
    assert off.episodes_out == 12 and not off.duplicates and not off.kept_duplicates


def test_the_project_robot_model_checks_every_recording(recorded, tmp_path):
    from robodata.robot.model import gymnasium_robotics_mjcf

    src = tmp_path / "in"
    _copy(recorded, src / "good.hdf5")
    bad = _copy(recorded, src / "planted.hdf5")
    with h5py.File(bad, "r+") as f:
        f["data/demo_0/obs/joint_pos"][10:20, 3] = 2.5  # far past that Fetch joint's limit
    model = {"path": str(gymnasium_robotics_mjcf()), "positions": ["joint_pos"], "name_prefix": "robot0:"}
    for blocking in (False, True):
        cfg = tmp_path / f"robodata-{blocking}.yaml"
        cfg.write_text(yaml.safe_dump({"home": str(tmp_path / "home"),
                                       "quality": {"robot_model": {**model, "blocking": blocking}}}))
        res = robodata.pipeline(str(src), str(tmp_path / f"out-{blocking}"), config=str(cfg), dedup=False).run()
        if blocking:  # the planted recording is not published; the good one is
            assert res.published and res.episodes_out == 3
            (fail,) = res.failed
            assert fail["source"].endswith("planted.hdf5") and "joints_within_robot_model_limits" in fail["error"]
        else:  # a warning naming the recording, the joint and the frames; everything published
            assert res.published and res.episodes_out == 6 and not res.failed
            found = [f for f in res.findings if f["check"] == "joints_within_robot_model_limits"]
            assert found and all(f["where"].startswith(str(bad)) for f in found)
            assert any("frames 10-19" in f["message"] for f in found), found


def test_release_drift_against_a_reference_warns_or_blocks_and_a_profile_is_written(recorded, tmp_path):
    ref = tmp_path / "reference"
    assert robodata.pipeline(str(recorded), str(ref)).run().published

    def offset(g: h5py.Group) -> None:
        ds = g["obs/joint_pos"]
        ds[:, 2] = ds[:, 2] + 0.5

    drifted = _copy(recorded, tmp_path / "in" / "drifted.hdf5", offset)
    warn = robodata.pipeline(str(drifted), str(tmp_path / "warn"), profile=True,
                             validators=[{"type": "release_drift", "reference": str(ref)}]).run()
    assert warn.published
    found = [f for f in warn.findings if f["check"] == "release_drift"]
    assert found and all(f["severity"] == "warning" for f in found)
    assert any("observation.state" in f["message"] and str(ref) in f["message"] for f in found), found
    report = tmp_path / "warn" / "meta" / "robodata_drift" / "drift_report.md"
    assert report.is_file() and "observation.state" in report.read_text()
    page = Path(warn.profile["report"])
    assert page.is_file() and page.read_text().startswith("<!DOCTYPE html>") and warn.profile["episodes"] == 3

    block = robodata.pipeline(str(drifted), str(tmp_path / "block"), validators=[
        {"type": "release_drift", "reference": str(ref), "on_drift": "block"}]).run()
    assert not block.published and not (tmp_path / "block").exists() and block.quarantine
    same = robodata.pipeline(str(recorded), str(tmp_path / "same"), validators=[
        {"type": "release_drift", "reference": str(ref), "on_drift": "block"}]).run()
    assert same.published and not [f for f in same.findings if f["check"] == "release_drift"]
    info = json.loads((tmp_path / "same" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 3
