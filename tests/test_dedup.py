"""Dedup on episodes the simulator recorded: exact copies under another name, re-recorded and re-exported copies
are found with their twin; different demonstrations are not; the policy's exclusions are in the report."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from robodata.dedup import (
    EXACT,
    NEAR_FRAMES,
    NEAR_TRAJECTORY,
    DedupConfig,
    DedupIndex,
    EpisodeSignature,
    dedup_episodes,
    frame_times,
    lerobot_signatures,
    phash,
    store_signatures,
)
from robodata.formats.isaaclab import EpisodeStore

HW = (48, 64)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from robodata.sim.recorder import record_session

    out = tmp_path_factory.mktemp("dedup-session")
    return record_session(out, "teleop", n_episodes=3, seed=11, image_hw=HW, formats=("hdf5",))["hdf5"]


def _jpeg(img: np.ndarray, quality: int = 40) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    h, w = img.shape[:2]
    Image.fromarray(img).resize((w * 3 // 4, h * 3 // 4)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB").resize((w, h)))


def _arrays(store, demo: str, k: int = 4):
    with EpisodeStore(store) as es:
        n = es.num_samples(demo)
        state = np.concatenate([es.feature(demo, f.name).reshape(n, -1) for f in es.schema.of_role("state")], 1)
        action = es.group(demo)["actions"][()]
        ts = es.timestamps(demo)
        frames = {c.name: [es.feature(demo, c.name, i, i + 1)[0] for i in frame_times(n, k)] for c in es.schema.cameras}
    return state.astype(np.float64), np.asarray(action, np.float64), ts, frames


def _rerecorded(state, action, ts, rng):
    """The same demonstration again: 7 % fewer samples, the first 2 % cut, sensor noise, another clock."""
    x = np.concatenate([state, action], 1)
    n = len(x)
    m = int(n * 0.93)
    pos = np.linspace(0.02 * (n - 1), n - 1, m)
    y = np.stack([np.interp(pos, np.arange(n), x[:, d]) for d in range(x.shape[1])], 1)
    y += rng.normal(0, 0.01, y.shape) * np.maximum(x.std(0), 1e-3)
    t = ts[0] + 12.3 + np.arange(m) * (ts[-1] - ts[0]) / (m - 1)
    return y[:, : state.shape[1]], y[:, state.shape[1]:], t


def test_exact_copies_under_another_file_name_are_found_with_their_twin(session, tmp_path):
    copy = tmp_path / "renamed-by-the-operator.hdf5"
    shutil.copy(session, copy)
    index = DedupIndex(tmp_path / "dedup.sqlite3")
    first = dedup_episodes(list(store_signatures(session, source="rec-a")), index)
    assert first.duplicates == []  # three different pick-and-place demonstrations: none is another's twin
    rep = dedup_episodes(list(store_signatures(copy, source="rec-b")), index)
    assert [(d.episode_id, d.twin_source, d.twin_id, d.kind) for d in rep.duplicates] == [
        (f"demo_{i}", "rec-a", f"demo_{i}", EXACT) for i in range(3)]
    assert rep.excluded == []  # policy "report" keeps them, but says so
    assert "duplicates rec-a/demo_0 (exact" in rep.duplicates[0].describe()
    assert "| rec-b/demo_0 | rec-a/demo_0 | exact |" in rep.to_markdown()


def test_rerecorded_and_reencoded_copies_are_near_duplicates_and_the_policy_excludes(session, tmp_path):
    rng = np.random.default_rng(3)
    cfg = DedupConfig(policy="exclude_exact")
    index = DedupIndex(tmp_path / "dedup.sqlite3", cfg)
    dedup_episodes(list(store_signatures(session, cfg, source="release-1")), index)
    state, action, ts, frames = _arrays(session, "demo_1")
    s2, a2, t2 = _rerecorded(state, action, ts, rng)
    reenc = {c: [_jpeg(f) for f in fs] for c, fs in frames.items()}
    new = [
        EpisodeSignature.compute("rerecorded", "new", s2, a2, t2, None, cfg),
        EpisodeSignature.compute("reexported", "new", state, action, ts, reenc, cfg),
        # re-exported with another layout (no action): only the frames can tell
        EpisodeSignature.compute("reexported-no-action", "new", state, None, ts, reenc, cfg),
        EpisodeSignature.compute("exact", "new", state, action, ts, frames, cfg),
    ]
    rep = dedup_episodes(new, index)
    got = {d.episode_id: d for d in rep.duplicates}
    assert set(got) == {"rerecorded", "reexported", "reexported-no-action", "exact"}
    # the twin is the original or an earlier copy of it (the closest one)
    assert all((d.twin_source, d.twin_id) in {("release-1", "demo_1"), ("new", "reexported")} for d in got.values()), \
        {k: (d.twin_source, d.twin_id, d.kind) for k, d in got.items()}
    assert (got["rerecorded"].twin_source, got["rerecorded"].twin_id) == ("release-1", "demo_1")
    assert got["rerecorded"].kind == NEAR_TRAJECTORY and 0 < got["rerecorded"].distance < cfg.tolerance
    assert got["reexported"].kind == NEAR_TRAJECTORY and got["reexported"].frame_distance <= cfg.frame_hamming
    assert got["reexported-no-action"].kind == NEAR_FRAMES and got["reexported-no-action"].distance is None
    assert got["exact"].kind == EXACT
    assert rep.excluded == [("new", "exact")]  # exclude_exact: the near ones are reported, kept
    assert [s.episode_id for s in rep.kept(new)] == ["rerecorded", "reexported", "reexported-no-action"]
    md = rep.to_markdown()
    assert "4 duplicates (1 exact, 2 near-trajectory, 1 near-frames), 1 excluded" in md


def test_another_demonstration_is_not_a_duplicate(session, tmp_path):
    rng = np.random.default_rng(5)
    index = DedupIndex(config=DedupConfig())
    dedup_episodes(list(store_signatures(session, source="rec-a")), index)
    # demo_0's motion replayed towards another goal: a different demonstration of the same task
    state, action, ts, _ = _arrays(session, "demo_0")
    shifted = state + rng.normal(0, 1.0, state.shape[1]) * np.maximum(state.std(0), 1e-2)
    sig = EpisodeSignature.compute("other", "rec-b", shifted, action, ts, None)
    assert index.query(sig) == []
    # and a time-warped copy far beyond the alignment window (2x the speed in the first half)
    n = len(state)
    pos = np.concatenate([np.linspace(0, 0.7 * (n - 1), n // 4), np.linspace(0.7 * (n - 1), n - 1, n - n // 4)])
    warped = np.stack([np.interp(pos, np.arange(n), state[:, d]) for d in range(state.shape[1])], 1)
    assert index.query(EpisodeSignature.compute("warped", "rec-b", warped, action, ts, None)) == []


def test_index_persists_and_finds_twins_in_an_earlier_lerobot_release(session, tmp_path):
    from robodata.lerobot import write_shard

    release = tmp_path / "release-1"
    write_shard(session, release, video_codec="libx264", crf=23)
    db = tmp_path / "index" / "dedup.sqlite3"
    dedup_episodes(list(lerobot_signatures(release, source="release-1")), DedupIndex(db))
    index = DedupIndex(db)  # reopened: the signatures, keys and scales are in the database
    assert len(index) == 3
    rep = dedup_episodes(list(store_signatures(session, source="rec-again")), index, add=False)
    assert [(d.episode_id, d.twin_id) for d in rep.duplicates] == [
        (f"demo_{i}", f"episode_{i:06d}") for i in range(3)]
    # the same arrays, frames through H.264: not byte-exact, a near duplicate at distance ~0
    assert all(d.kind == NEAR_TRAJECTORY and d.distance < 0.1 for d in rep.duplicates), rep.to_markdown()


def test_phash_survives_reencoding_and_tells_scenes_apart(session):
    _, _, _, frames = _arrays(session, "demo_0")
    _, _, _, other = _arrays(session, "demo_2")
    a = frames["front"][1]
    assert bin(phash(a) ^ phash(_jpeg(a))).count("1") <= 6
    noise = np.random.default_rng(0).integers(0, 255, a.shape, dtype=np.uint8)
    assert bin(phash(a) ^ phash(noise)).count("1") > 16
    assert phash(a) == phash(a.copy())
    assert isinstance(phash(other["wrist"][0]), int)


def test_an_augmented_variant_is_reported_as_a_visual_variant_not_a_duplicate(session, tmp_path):
    """Augmentation copies a demo's state and action exactly and changes its images: not a duplicate (the
    policy never excludes it), but said."""
    cfg = DedupConfig(policy="exclude_all")
    index = DedupIndex(config=cfg)
    dedup_episodes(list(store_signatures(session, cfg, source="rec")), index)
    state, action, ts, frames = _arrays(session, "demo_1")
    restyled = {c: [(255 - f).astype(np.uint8) for f in fs] for c, fs in frames.items()}  # other textures/colours
    rep = dedup_episodes([EpisodeSignature.compute("variant", "aug", state, action, ts, restyled, cfg)], index)
    assert rep.duplicates == [] and rep.excluded == []
    (v,) = rep.variants
    assert (v.twin_source, v.twin_id, v.kind) == ("rec", "demo_1", "visual-variant") and v.frame_distance > 6
    assert "1 visual variants" in rep.to_markdown() and rep.as_metadata()["visual_variants"] == 1
