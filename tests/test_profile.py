"""The profiling report: a real simulator recording (ingested from its MCAP, with its ingest report) and the
real LeRobot v3.0 dataset, profiled, rendered in headless Chromium and read as a person would."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from robodata.profile import (
    ProfileError,
    _Exposure,
    laplacian_variance,
    profile_lerobot,
    profile_path,
    profile_store,
)
from tests.test_trajectory import plant

HW = (48, 64)
SECTIONS = ["Headline", "Episodes", "Rate and jitter", "Idle segments", "Action smoothness", "State distributions",
            "Action distributions", "Camera exposure", "How this was measured"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A simulator session written as MCAP, ingested into a canonical store: ``(store, ingest report, session)``."""
    from robodata.ingest import ingest_recording
    from robodata.sim.recorder import record_session
    from robodata.topicmap import DEMO_TOPIC_MAP, load_topic_map

    out = tmp_path_factory.mktemp("profile-session")
    session = record_session(out, "demo", n_episodes=3, seed=5, image_hw=HW)
    store = out / "canonical.hdf5"
    report = ingest_recording(session["mcap"], store, load_topic_map(DEMO_TOPIC_MAP))
    return store, report, session


def render(html_path: Path) -> dict:
    """Open the page in headless Chromium; what a reader sees, and what the page asked the network for."""
    from tests.ui_harness import browser_page

    requests, errors = [], []
    with browser_page() as page:
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(html_path.as_uri(), wait_until="load")
        seen = page.evaluate("""() => ({
            title: document.title,
            h2: [...document.querySelectorAll('h2')].map(h => h.innerText.trim()),
            tiles: Object.fromEntries([...document.querySelectorAll('.tile')].map(
                t => [t.dataset.key, t.querySelector('.v').innerText.trim()])),
            warnings: [...document.querySelectorAll('ul.warnings li')].map(li => li.innerText.trim()),
            images: [...document.images].map(i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight,
                                                   complete: i.complete})),
            cameras: [...document.querySelectorAll('.cam')].map(c => c.dataset.camera),
            rows: [...document.querySelectorAll('#episodes table')[1].querySelectorAll('tbody tr')].map(
                r => [...r.cells].map(c => c.innerText.trim())),
            text: document.body.innerText,
            scripts: document.scripts.length,
        })""")
    seen["requests"], seen["errors"] = requests, errors
    return seen


def _looks_right(seen: dict, html_path: Path) -> None:
    assert seen["h2"] == SECTIONS
    assert seen["errors"] == []
    assert seen["requests"] == [html_path.as_uri()], "the page loads nothing but itself"
    assert seen["scripts"] == 0
    assert seen["images"] and all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in seen["images"]), seen["images"]


def test_recording_profile_with_its_ingest_report(recording, tmp_path):
    store, report, session = recording
    prof = profile_store(store, report)
    s = prof.summary()
    assert s["episodes"] == 3 and s["frames"] == report.frames
    assert s["successes"] == session["successes"] and s["success_rate"] == pytest.approx(session["successes"] / 3)
    assert s["hours"] == pytest.approx(report.duration_s / 3600, rel=0.05)
    assert s["fps"] == 30.0 and s["frame_rate_hz"] == pytest.approx(30.0, abs=0.1)
    # per topic, from the ingest: the simulator publishes joint states at 100 Hz, the cameras at 30 Hz
    rates = s["topic_rate_hz"]
    assert rates["/joint_states"] == pytest.approx(100, rel=0.1) and rates["/camera/front/image_raw"] == pytest.approx(30, rel=0.1)
    assert all(v > 0 for v in s["topic_jitter_ms"].values())  # the recorder's clock jitters, as a real one does
    assert s["dropped_frames"] == report.dropped_frames
    assert {"camera_front_brightness", "camera_wrist_clipped_pct", "camera_front_blur"} <= set(s)
    assert json.loads(json.dumps(s)) == s  # JSON-able, for asset metadata

    names = [d.name for d in prof.state]
    assert "shoulder_pan_joint" in names and "r_gripper_finger_joint" in names and "goal_x" in names
    assert [d.name for d in prof.action] == ["dx", "dy", "dz", "gripper"]
    grip = prof.action[3]
    assert grip.min == pytest.approx(-1, abs=0.2) and grip.max == pytest.approx(1, abs=0.2)
    assert sum(grip.hist) == grip.count and grip.q01 <= grip.q50 <= grip.q99
    assert prof.jerk_signal == "action (dx, dy, dz)"  # the gripper's steps are not jerk
    assert all(e.action_jerk_rms > 0 and e.eef_jerk_rms for e in prof.episodes)

    page, data = prof.write(tmp_path / "report")
    assert json.loads(data.read_text())["summary"]["episodes"] == 3
    seen = render(page)
    _looks_right(seen, page)
    assert seen["tiles"]["Episodes"] == "3" and seen["tiles"]["Frames"] == f"{report.frames:,}"
    assert seen["tiles"]["Success rate"] == f"{round(100 * session['successes'] / 3)} %"
    assert seen["cameras"] == ["front", "wrist"]
    assert "/joint_states" in seen["text"] and "shoulder_pan_joint" in seen["text"]
    assert [r[0] for r in seen["rows"]] == ["demo_0", "demo_1", "demo_2"]
    assert {i["alt"] for i in seen["images"]} >= {"episode timeline", "message timing", "action jerk per episode",
                                                   "state histograms", "action histograms", "front sampled frames"}


def test_planted_idle_and_jerk_are_flagged_in_the_headline(recording, tmp_path):
    store = recording[0]
    planted = plant(store, tmp_path / "planted.hdf5", head={"demo_0": 120}, tail={"demo_0": 120},
                    action_noise={"demo_2": 0.5})
    prof = profile_store(planted)
    s = prof.summary()
    ep0 = prof.episodes[0]
    assert ep0.idle_fraction > 0.4 and len(ep0.idle) == 2
    assert ep0.idle[0][0] == 0.0 and ep0.idle[0][1] == pytest.approx(120 / 30, abs=0.15)
    assert ep0.idle[1][1] == pytest.approx(ep0.duration_s, abs=0.05)
    assert s["episodes_idle_over_40pct"] == 1 and s["idle_s"] >= 7.9
    assert [e.name for e in prof.episodes if e.jerk_outlier] == ["demo_2"] and s["jerk_outliers"] == 1
    assert "dropped_frames" not in s and "topic_rate_hz" not in s  # no ingest report: the frame clock only
    assert any(w.startswith("1 episode idle > 40% of the time (demo_0)") for w in prof.warnings)
    page, _ = prof.write(tmp_path / "report")
    seen = render(page)
    _looks_right(seen, page)
    assert any("1 episode idle > 40% of the time (demo_0)" in w for w in seen["warnings"])
    assert any("jerky actions (demo_2)" in w for w in seen["warnings"])
    assert "demo_0" in seen["text"].split("Idle segments", 1)[1]  # where the robot stood still


def test_release_profile_of_the_real_lerobot_dataset(realdata, tmp_path):
    root = realdata / "lerobot_v3_so101"
    prof = profile_lerobot(root)
    s = prof.summary()
    info = json.loads((root / "meta" / "info.json").read_text())
    assert s["episodes"] == info["total_episodes"] == 6 and s["frames"] == info["total_frames"]
    assert s["hours"] == pytest.approx(info["total_frames"] / info["fps"] / 3600, rel=0.01)
    assert "success_rate" not in s  # the dataset records no success
    assert [d.name for d in prof.state] == ["j0", "j1", "j2", "j3", "j4", "j5"]
    # stats agree with the dataset's own meta/stats.json
    stats = json.loads((root / "meta" / "stats.json").read_text())
    np.testing.assert_allclose([d.mean for d in prof.state], stats["observation.state"]["mean"], atol=1e-4)
    np.testing.assert_allclose([d.max for d in prof.action], stats["action"]["max"], atol=1e-4)
    # this recording's arm never moves: every episode is idle throughout, and the report says so
    assert s["episodes_idle_over_40pct"] == 6 and s["idle_fraction"] == pytest.approx(1.0)
    assert s["constant_dims"] == 12
    cam = prof.cameras[0]
    assert cam.name == "wrist" and (cam.height, cam.width) == (360, 640) and cam.frames_sampled == 24
    assert 0 < cam.brightness < 255 and cam.blur > 0
    assert prof.episodes[0].task == "pick and place"
    page, _ = prof.write(tmp_path / "release")
    seen = render(page)
    _looks_right(seen, page)
    assert seen["tiles"]["Episodes"] == "6" and seen["tiles"]["Frames"] == "1,782"
    assert seen["tiles"]["Success rate"] == "unknown" and seen["tiles"]["Idle"] == "100 %"
    assert any(w.startswith("6 episodes idle > 40% of the time") for w in seen["warnings"])
    assert any("state: 6 of 6 dimensions never change" in w for w in seen["warnings"])
    assert seen["cameras"] == ["wrist"]
    assert profile_path(root).summary()["frames"] == s["frames"]


def test_exposure_numbers_on_known_frames():
    acc = _Exposure("test")
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[:, 30:] = 255  # half black, half white
    acc.add(frame)
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    blurred = np.full((40, 60), 128, np.uint8)
    assert laplacian_variance(sharp) > 100 * max(1.0, laplacian_variance(blurred))
    r = acc.result()
    assert r is not None
    assert r.dark_fraction == pytest.approx(0.5) and r.bright_fraction == pytest.approx(0.5)
    assert r.brightness == pytest.approx(127.5) and r.strip.startswith(b"\x89PNG")


def test_profile_refuses_what_is_not_a_dataset(tmp_path):
    with pytest.raises(ProfileError, match="no such file or folder"):
        profile_path(tmp_path / "missing.hdf5")
    from robodata.lerobot.errors import LeRobotError

    with pytest.raises(LeRobotError, match="info.json"):
        profile_lerobot(tmp_path)
