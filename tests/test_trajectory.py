"""Trajectory extraction on simulator recordings: idle planted at the ends of an episode is trimmed, gripper
events and pauses planted in it cut it into segments, and the written store carries the provenance."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from robodata.api.episodes import batch_of, episode_rows, rows_of
from robodata.api.errors import PipelineError
from robodata.formats.isaaclab import EpisodeStore, EpisodeStoreWriter
from robodata.trajectory import (
    TrajectoryConfig,
    TrajectoryError,
    extract_store,
    find_idle,
    gripper_events,
    speed,
    write_report,
)
from robodata.trajectory_api import IdleFraction, SegmentEpisodes, TrimIdle

HW = (24, 32)
FPS = 30.0
GRIPPER = 3  # the Fetch action is (dx, dy, dz, gripper): +1 open, -1 closed


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A real simulator session: three scripted pick-and-place episodes, the canonical store only."""
    from robodata.sim.recorder import record_session

    out = tmp_path_factory.mktemp("traj-session")
    return record_session(out, "demo", n_episodes=3, seed=11, image_hw=HW, formats=("hdf5",))["hdf5"]


def _hold(a: np.ndarray, head: int, tail: int) -> np.ndarray:
    """``a`` with its first row repeated ``head`` times before it and its last ``tail`` times after it."""
    return np.concatenate([np.repeat(a[:1], head, axis=0), a, np.repeat(a[-1:], tail, axis=0)])


def plant(src: Path, out: Path, *, head: dict[str, int] | None = None, tail: dict[str, int] | None = None,
          pause: dict[str, tuple[int, int]] | None = None, gripper: dict[str, list[tuple[int, float]]] | None = None,
          still: tuple[str, ...] = (), action_noise: dict[str, float] | None = None) -> Path:
    """A copy of the store ``src`` with the robot held still where asked: ``head``/``tail`` frames before and
    after a demo (every per-frame value repeated, actions commanding no motion), a ``pause`` of ``(at, frames)``
    inside one, a whole demo ``still``; ``gripper`` rewrites the gripper command from each ``(frame, value)``
    on; ``action_noise`` adds white noise of that std to a demo's motion actions (a jerky operator)."""
    head, tail, pause, gripper, action_noise = head or {}, tail or {}, pause or {}, gripper or {}, action_noise or {}
    rng = np.random.default_rng(0)
    with EpisodeStore(src) as es, EpisodeStoreWriter(out, es.schema, env_kwargs={"fps": FPS}) as w:
        for demo in es.demo_names:
            b = next(es.batches(demo, batch=10**6))
            h, t = head.get(demo, 0), tail.get(demo, 0)

            def edit(a: np.ndarray, is_action: bool = False, demo: str = demo, h: int = h, t: int = t) -> np.ndarray:
                a = np.asarray(a)
                if demo in still:
                    a = np.repeat(a[:1], len(a), axis=0)
                if demo in pause:
                    at, k = pause[demo]
                    a = np.concatenate([a[:at], np.repeat(a[at : at + 1], k, axis=0), a[at:]])
                out = _hold(a, h, t)
                if is_action:
                    moving = np.ones(len(out), bool)
                    moving[:h] = False
                    moving[len(out) - t :] = False
                    if demo in pause:
                        moving[h + pause[demo][0] : h + pause[demo][0] + pause[demo][1]] = False
                    if demo in still:
                        moving[:] = False
                    out = out.copy()
                    out[~moving, :GRIPPER] = 0.0
                return out

            obs = {k: edit(v) for k, v in b.obs.items()}
            actions = edit(b.actions, is_action=True)
            if demo in gripper:
                for frame, value in gripper[demo]:
                    actions[frame:, GRIPPER] = value
            if demo in action_noise:
                actions[:, :GRIPPER] += rng.normal(0, action_noise[demo], actions[:, :GRIPPER].shape)
            n = len(actions)
            d = w.begin_episode(attrs={"planted": True, "task": "pick up the cube"})
            d.extend(np.arange(n) / FPS, obs, actions, states=None if b.states is None else edit(b.states),
                     datagen={k: {m: edit(a) for m, a in v.items()} for k, v in b.datagen.items()} or None)
            d.close(success=bool(es.attrs(demo).get("success")))
    return out


def test_find_idle_and_gripper_events_on_arrays():
    ts = np.arange(100) / 10.0
    x = np.concatenate([np.zeros(30), np.linspace(0, 5, 40), np.full(30, 5.0)])[:, None]
    v = speed(x, ts)
    idle = find_idle(v, ts, threshold=0.01, min_idle_s=1.0)
    assert [(s.start, s.stop) for s in idle] == [(0, 30), (70, 100)]
    assert find_idle(v, ts, threshold=0.01, min_idle_s=3.5) == []
    rng = np.random.default_rng(1)
    g = np.concatenate([np.ones(20), -np.ones(30), np.ones(20)]) + rng.normal(0, 0.05, 70)
    assert gripper_events(g) == [(20, "closes"), (50, "opens")]
    assert gripper_events(g, closed="high") == [(20, "opens"), (50, "closes")]
    assert gripper_events(np.ones(10)) == []  # a gripper that never moves has no events


def test_trim_idle_removes_the_planted_still_frames(recorded, tmp_path):
    planted = plant(recorded, tmp_path / "planted.hdf5", head={"demo_0": 60}, tail={"demo_0": 75})
    out = tmp_path / "trimmed.hdf5"
    report = extract_store(planted, out, TrajectoryConfig(trim_idle="both", keep_idle_s=0, min_idle_s=1.0))
    with EpisodeStore(recorded) as src, EpisodeStore(planted) as pl, EpisodeStore(out) as es:
        n0 = src.num_samples("demo_0")
        plan = report.plans[0]
        assert plan.demo == "demo_0" and plan.frames == n0 + 135
        assert 60 <= plan.trimmed_start <= 63 and 75 <= plan.trimmed_end <= 78, plan.to_json()
        assert plan.idle_s >= (60 + 75) / FPS - 0.1
        for p in report.plans[1:]:  # the operator starts at once and the recorder stops soon after the place
            assert p.trimmed_start == 0 and p.trimmed_end == 0, p.to_json()
        # the written store: one demo per source demo, trimmed, with provenance, clock from 0
        assert es.demo_names == ["demo_0", "demo_1", "demo_2"]
        a = es.attrs("demo_0")
        assert a["segment_of"] == "demo_0" and a["segment_index"] == 0
        s, e = a["segment_frames"]
        assert (s, e) == (plan.kept.start, plan.kept.stop) and es.num_samples("demo_0") == e - s
        assert a["trimmed_start"] == plan.trimmed_start and a["planted"] and a["success"] == src.attrs("demo_0")["success"]
        assert es.timestamps("demo_0")[0] == 0.0
        np.testing.assert_array_equal(es.feature("demo_0", "eef_pose"), pl.feature("demo_0", "eef_pose", s, e))
        np.testing.assert_array_equal(es.feature("demo_0", "front"), pl.feature("demo_0", "front", s, e))
        np.testing.assert_array_equal(es.group("demo_0")["actions"][()], pl.group("demo_0")["actions"][s:e])
        assert es.datagen("demo_0")["eef_pose"], "MimicGen's datagen_info is carried, cut to the segment"
        assert es.num_samples("demo_1") == src.num_samples("demo_1")
    doc = report.to_json()
    assert doc["frames_trimmed"] == plan.trimmed_start + plan.trimmed_end
    assert "trimmed" in report.lines()[0] and str(plan.trimmed_start) in report.lines()[0]
    assert write_report(report, tmp_path / "report.json").read_text().startswith("{")


def test_trim_only_the_start_when_asked(recorded, tmp_path):
    planted = plant(recorded, tmp_path / "planted.hdf5", head={"demo_1": 45}, tail={"demo_1": 45})
    report = extract_store(planted, tmp_path / "start.hdf5", TrajectoryConfig(trim_idle="start", keep_idle_s=0.5))
    plan = report.plans[1]
    assert 45 - 15 <= plan.trimmed_start <= 45 - 15 + 3  # half a second of idle kept before the motion
    assert plan.trimmed_end == 0


def test_gripper_events_cut_segments(recorded, tmp_path):
    with EpisodeStore(recorded) as es:
        n = es.num_samples("demo_2")
    events = [(0, 1.0), (40, -1.0), (90, 1.0)]  # open, close at 40, open again at 90
    planted = plant(recorded, tmp_path / "grip.hdf5", gripper={"demo_2": events})
    out = tmp_path / "segments.hdf5"
    report = extract_store(planted, out, TrajectoryConfig(segment_by="gripper", trim_idle="none"))
    plan = report.plans[2]
    assert [(s.start, s.stop) for s in plan.segments] == [(0, 40), (40, 90), (90, n)]
    assert "gripper closes at frame 40" in plan.segments[0].reason
    assert "gripper opens at frame 90" in plan.segments[2].reason
    assert report.gripper == "action[3]"
    names = report.written["demo_2"]
    with EpisodeStore(out) as es:
        assert len(es.demo_names) == sum(len(p.segments) for p in report.plans)
        got = [(es.attrs(d)["segment_of"], es.attrs(d)["segment_index"], es.attrs(d)["segment_frames"]) for d in names]
        assert got == [("demo_2", 0, [0, 40]), ("demo_2", 1, [40, 90]), ("demo_2", 2, [90, n])]
        assert [es.num_samples(d) for d in names] == [40, 50, n - 90]
        g = es.group(names[1])["actions"][:, GRIPPER]
        assert (g == -1.0).all()  # the middle segment is the grasp
        assert "closes" in es.attrs(names[0])["segment_reason"]


def test_short_segments_merge_into_their_neighbour(recorded, tmp_path):
    planted = plant(recorded, tmp_path / "blip.hdf5", gripper={"demo_0": [(0, 1.0), (30, -1.0), (33, 1.0)]})
    report = extract_store(planted, tmp_path / "merged.hdf5",
                           TrajectoryConfig(segment_by="gripper", trim_idle="none", min_segment_frames=10))
    # a close undone 3 frames later is a blip, not a grasp: no cut at all
    assert [(s.start, s.stop) for s in report.plans[0].segments] == [(0, report.plans[0].frames)]
    planted = plant(recorded, tmp_path / "short.hdf5", gripper={"demo_0": [(0, 1.0), (4, -1.0)]})
    report = extract_store(planted, tmp_path / "merged2.hdf5",
                           TrajectoryConfig(segment_by="gripper", trim_idle="none", min_segment_frames=10))
    segs = report.plans[0].segments  # a 4-frame first segment joins the next one
    assert [(s.start, s.stop) for s in segs] == [(0, report.plans[0].frames)]
    assert segs[0].reason == "start of the episode -> end of the episode"


def test_velocity_segments_cut_at_a_planted_pause(recorded, tmp_path):
    planted = plant(recorded, tmp_path / "pause.hdf5", pause={"demo_1": (50, 30)})
    report = extract_store(planted, tmp_path / "vel.hdf5",
                           TrajectoryConfig(segment_by="velocity", trim_idle="none", min_pause_s=0.5))
    segs = report.plans[1].segments
    assert len(segs) >= 2
    cuts = [s.start for s in segs[1:]]
    assert any(50 <= c <= 80 for c in cuts), [s.to_json() for s in segs]
    assert any("pause of" in s.reason for s in segs)


def test_an_episode_idle_throughout_is_dropped_and_reported(recorded, tmp_path):
    planted = plant(recorded, tmp_path / "still.hdf5", still=("demo_1",))
    report = extract_store(planted, tmp_path / "dropped.hdf5", TrajectoryConfig(idle_speed=0.005))
    assert report.plans[1].dropped and report.written["demo_1"] == []
    assert "idle from start to end: dropped" in report.lines()[1]
    assert report.as_metadata()["episodes_dropped_idle"] == 1
    with EpisodeStore(tmp_path / "dropped.hdf5") as es:
        assert [es.attrs(d)["segment_of"] for d in es.demo_names] == ["demo_0", "demo_2"]
    kept = extract_store(planted, tmp_path / "kept.hdf5", TrajectoryConfig(idle_speed=0.005, drop_idle_episodes=False))
    assert kept.written["demo_1"] == ["demo_1"]


def test_config_errors_name_the_problem(recorded, tmp_path):
    with pytest.raises(ValueError, match="gripper_dim needs gripper_feature"):
        TrajectoryConfig(gripper_dim=1)
    with pytest.raises(ValueError, match="segment_by"):
        TrajectoryConfig(segment_by="elbow")  # type: ignore[arg-type]
    with pytest.raises(TrajectoryError, match="gripper_dim 9 is outside feature 'action'"):
        extract_store(recorded, tmp_path / "x.hdf5",
                      TrajectoryConfig(segment_by="gripper", gripper_feature="action", gripper_dim=9))
    assert not (tmp_path / "x.hdf5").exists()
    with pytest.raises(PipelineError, match="min_idle_s"):
        TrimIdle(min_idle_s=-1)


def _rows(store: Path) -> list[dict]:
    return episode_rows(store, key="rec", source=str(store), rel="rec/demo.hdf5")


def test_api_stages_and_metric_on_episode_rows(recorded, tmp_path):
    planted = plant(recorded, tmp_path / "planted.hdf5", head={"demo_0": 60}, tail={"demo_0": 60},
                    gripper={"demo_2": [(0, 1.0), (40, -1.0), (90, 1.0)]}, still=("demo_1",))
    rows = _rows(planted)
    n0 = rows[0]["num_frames"]
    # the speed of observation.state (joints, gripper, goal) of one row alone
    trim = TrimIdle(idle_speed=0.002, keep_idle_s=0)
    out = trim.process_episode(dict(rows[0]))
    assert out is not None
    s, e = (int(x) for x in out["_frames"])
    assert 60 <= s <= 63 and n0 - 63 <= e <= n0 - 60
    assert out["num_frames"] == e - s == len(out["action"]) == len(out["observation.state"])
    np.testing.assert_array_equal(out["action"], rows[0]["action"][s:e])
    assert out["episode_id"] == rows[0]["episode_id"] and out["trimmed_start"] == s
    assert trim.process_episode(dict(rows[1])) is None  # idle throughout: dropped
    again = trim.process_episode(out)  # a second pass finds nothing more, and _frames composes
    assert again is not None and list(again["_frames"]) == [s, e]

    seg = SegmentEpisodes(min_segment_frames=5)
    got = rows_of(seg.process_batch(batch_of([rows[2]])))
    assert [r["episode_id"] for r in got] == [f"{rows[2]['episode_id']}/segment_{i}" for i in range(3)]
    assert [list(map(int, r["_frames"])) for r in got] == [[0, 40], [40, 90], [90, rows[2]["num_frames"]]]
    assert all(r["segment_of"] == rows[2]["episode_id"] for r in got)
    assert "closes" in got[0]["segment_reason"]

    metric = IdleFraction(idle_speed=0.002)
    m0, m1 = metric.compute(rows[0]), metric.compute(rows[1])
    assert m1["idle_fraction"] == pytest.approx(1.0) and m1["idle_segments"] == 1
    assert 120 / FPS - 0.2 <= m0["idle_s"] <= 120 / FPS + 0.2
    assert 0 < m0["idle_fraction"] < 1
