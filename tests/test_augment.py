"""The augmentation library on a tiny real sim recording: frame-exact MP4s, controls, local engine, merge, checks."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from robodata.augment.checks import CHECKS, check_store
from robodata.augment.clips import load_mask, process_clip
from robodata.augment.config import AugmentedVideosConfig, LocalEngineConfig
from robodata.augment.errors import AugmentError
from robodata.augment.local import LocalAugmenter, draw_params, variant_seed
from robodata.augment.merge import merge_variants
from robodata.augment.pipeline import masks_of, plan, run_clips, variants_from
from robodata.augment.video import count_frames, read_clip
from robodata.formats.isaaclab import EpisodeSchema, EpisodeStore, EpisodeStoreWriter, FeatureSpec

HW = (48, 64)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    from robodata.sim.recorder import record_session

    d = tmp_path_factory.mktemp("aug")
    return record_session(d, "sess", n_episodes=2, seed=3, image_hw=HW, formats=["hdf5"])["hdf5"]


@pytest.fixture(scope="module")
def exported(rec, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips")
    cfg = AugmentedVideosConfig(variants=2)
    clips = plan(rec, cfg)
    run = run_clips(rec, out, clips, cfg, use_ray=False)
    return {"out": out, "cfg": cfg, "clips": clips, "run": run}


def test_export_is_frame_exact_with_controls_from_the_sim(rec, exported):
    rep = exported["run"].reports["demo_0/front"]
    assert not exported["run"].failed
    assert rep["control_source"] == "sim-replay"
    assert set(rep["files"]) == {"video", "depth", "seg", "edge", "mask"}
    with EpisodeStore(rec) as es:
        src = es.group("demo_0")["obs/front"][()]
        ts_src = es.timestamps("demo_0")
    ts, frames = read_clip(rep["files"]["video"])
    assert len(frames) == len(src) == rep["frames"]
    np.testing.assert_allclose(ts, ts_src - ts_src[0], atol=1e-5)  # pts from the episode clock
    own = np.abs(frames.astype(int) - src).mean(axis=(1, 2, 3))
    assert own.max() < 4  # every frame decodes close to its source frame
    ahead = np.abs(frames[:-1].astype(int) - src[1:]).mean(axis=(1, 2, 3))
    behind = np.abs(frames[1:].astype(int) - src[:-1]).mean(axis=(1, 2, 3))
    assert own[:-1].mean() < ahead.mean() and own[1:].mean() < behind.mean()  # and in order (none shifted)
    for kind in ("depth", "seg", "edge"):
        assert count_frames(rep["files"][kind]) == len(src)
    mask = load_mask(rep["files"]["mask"])
    assert mask.shape == src.shape[:3] and 0.02 < mask.mean() < 0.6  # the robot and cube are in view


def test_local_engine_is_deterministic_and_temporally_consistent(rec):
    cfg = LocalEngineConfig(device="cpu")
    with EpisodeStore(rec) as es:
        frames = es.group("demo_0")["obs/front"][:20]
    seed = variant_seed(0, "demo_0", 0)
    assert draw_params(cfg, seed) == draw_params(cfg, seed)
    assert draw_params(cfg, seed) != draw_params(cfg, variant_seed(0, "demo_0", 1))
    aug = LocalAugmenter(cfg, draw_params(cfg, seed), HW)
    a = aug.apply(frames, None)
    b = np.concatenate([aug.apply(frames[:7], None, 0), aug.apply(frames[7:], None, 7)])  # other batch split
    assert np.array_equal(a, b)
    assert np.array_equal(a, LocalAugmenter(cfg, draw_params(cfg, seed), HW).apply(frames, None))
    other = LocalAugmenter(cfg, draw_params(cfg, variant_seed(0, "demo_0", 1)), HW).apply(frames, None)
    assert np.abs(a.astype(int) - other).mean() > 3
    ratio = a.reshape(20, -1).mean(1) / frames.reshape(20, -1).mean(1)  # one draw per clip: no flicker
    assert ratio.std() < 0.03


def test_merge_back_keeps_low_dim_and_passes_checks(rec, exported, tmp_path):
    variants, failed = variants_from(exported["clips"], exported["run"], "local")
    assert not failed and len(variants) == 4  # 2 demos x 2 variants
    out = tmp_path / "aug.hdf5"
    rep = merge_variants(rec, out, variants)
    assert not rep.failed and rep.originals == 2 and list(rep.written) == ["demo_2", "demo_3", "demo_4", "demo_5"]
    with EpisodeStore(out) as es:
        a = es.attrs("demo_3")
        assert (a["augmented_from"], a["augment_engine"], a["augment_variant"]) == ("demo_0", "local", 1)
        assert a["augment_seed"] == variant_seed(0, "demo_0", 1) and "gain" in a["augment_params"]
        assert np.array_equal(es.group("demo_3")["actions"][()], es.group("demo_0")["actions"][()])
    checks = check_store(out, masks_of(exported["run"]))
    assert all(checks[c].passed for c in CHECKS), {c: checks[c].failures for c in CHECKS}
    assert checks["augmented_variants_differ_but_keep_robot_and_object"].measures["min_distance"] > 4


def test_checks_catch_a_moved_scene_and_changed_low_dim(rec, exported, tmp_path):
    variants, _ = variants_from(exported["clips"], exported["run"], "local")
    out = tmp_path / "aug.hdf5"
    merge_variants(rec, out, variants[:1])
    with h5py.File(out, "r+") as f:
        g = f["data/demo_2"]
        g["obs/front"][...] = np.roll(g["obs/front"][()], 12, axis=2)  # the scene moved
        g["actions"][0] += 1.0
    checks = check_store(out, masks_of(exported["run"]))
    assert not checks["augmented_variants_differ_but_keep_robot_and_object"].passed
    assert not checks["augmented_low_dim_unchanged"].passed


def test_bad_inputs_fail_per_clip(rec, exported, tmp_path):
    with pytest.raises(AugmentError, match="no camera 'side'"):
        process_clip(rec, "demo_0", "side", tmp_path, AugmentedVideosConfig())
    variants, _ = variants_from(exported["clips"], exported["run"], "local")
    corrupt, short = tmp_path / "corrupt.mp4", tmp_path / "short.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video" * 20)
    ts, frames = read_clip(variants[1].videos["front"])
    from robodata.augment.video import video_settings, write_clip

    write_clip(short, [frames[:-1]], ts[:-1], 30, video_settings())
    variants[1].videos["front"] = str(corrupt)
    variants[2].videos["front"] = str(short)
    rep = merge_variants(rec, tmp_path / "aug.hdf5", variants)
    assert len(rep.written) == 2 and len(rep.failed) == 2
    msgs = dict((f"{v.demo} v{v.variant}", e) for v, e in rep.failed)
    assert "corrupt.mp4" in msgs["demo_0 v1"] and "frames" in msgs["demo_1 v0"]


def test_store_outside_the_sim_gets_estimated_masks_and_edges(tmp_path):
    schema = EpisodeSchema([FeatureSpec("cam", "image", (32, 48, 3), "uint8"), FeatureSpec("q", "state", (2,)),
                            FeatureSpec("a", "action", (2,))], fps=10)
    n = 24
    frames = np.full((n, 32, 48, 3), 90, np.uint8)
    for i in range(n):  # a static scene with a bright block moving across it
        frames[i, 10:20, 2 + i : 12 + i] = 230
    with EpisodeStoreWriter(tmp_path / "real.hdf5", schema, env_name="my_real_robot") as w:
        d = w.begin_episode()
        d.extend(np.arange(n) / 10, {"cam": frames, "q": np.zeros((n, 2)), "a": np.zeros((n, 2))})
        d.close()
    rep = process_clip(tmp_path / "real.hdf5", "demo_0", "cam", tmp_path / "out", AugmentedVideosConfig(), [(0, 1)])
    assert rep["control_source"] == "estimated" and "depth" not in rep["files"]
    assert {"video", "seg", "edge", "mask"} <= set(rep["files"]) and count_frames(rep["variants"][0]) == n
    mask = load_mask(rep["files"]["mask"])
    assert mask[5, 15, 10] and not mask[5, 2, 40]
    ts, dec = read_clip(rep["files"]["video"])  # every frame unique: the order survives exactly
    assert [int(np.argmax((dec[i, 15] > 160).any(-1))) for i in range(n)] == [2 + i for i in range(n)]
    np.testing.assert_allclose(ts, np.arange(n) / 10, atol=1e-5)
