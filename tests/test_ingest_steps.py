"""The streaming ingest's steps, one at a time, on small synthetic streams (the real classes, real arrays).

EpisodeSplitter (ticks -> episodes), CameraMatcher (frames -> nearest frame per tick, decided before
decoding), LowDimStreams (samples -> in sync? aligned values) and EpisodeCloser (an episode -> a written demo
or none). ``tests/test_ingest.py`` runs them together on whole recordings.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from robodata.formats.isaaclab import EpisodeSchema, EpisodeStore, EpisodeStoreWriter, FeatureSpec
from robodata.ingest import (
    CameraMatcher,
    EpisodeCloser,
    EpisodeSplitter,
    IngestError,
    IngestReport,
    LowDimStreams,
    OpenEpisode,
)
from robodata.topicmap import FeatureMap, SyncPolicy

SOURCE = Path("/recordings/run_7.mcap")


# ---- EpisodeSplitter -------------------------------------------------------------------------------------


def test_whole_recording_is_one_episode():
    split = EpisodeSplitter("whole")
    assert [split.tick(t) for t in (0.0, 5.0, 100.0)] == [0, 0, 0]
    assert split.outside == 0


def test_gap_longer_than_gap_s_starts_the_next_episode():
    split = EpisodeSplitter("gap", gap_s=0.5)
    ticks = [0.0, 0.125, 0.25, 0.75, 1.5, 1.625, 3.0]  # 0.25 -> 0.75 is exactly gap_s: no split
    assert [split.tick(t) for t in ticks] == [0, 0, 0, 0, 1, 1, 2]


def test_markers_open_and_close_episodes_and_ticks_outside_are_counted():
    split = EpisodeSplitter("marker")
    assert split.tick(0.0) is None and split.success_episode == 0  # before the first start
    split.marker("start")
    assert [split.tick(t) for t in (1.0, 1.1)] == [0, 0]
    split.marker("  END of demo ")
    assert split.tick(2.0) is None
    split.marker("Stop")  # a second end changes nothing
    assert split.tick(2.1) is None
    split.marker("go")  # any other marker starts the next episode
    assert split.tick(3.0) == 1 and split.success_episode == 1
    split.marker("end")
    assert split.success_episode == 1  # a success message after the end still belongs to episode 1
    assert split.outside == 3


# ---- CameraMatcher -----------------------------------------------------------------------------------------


def cam(name: str, topic: str) -> FeatureMap:
    return FeatureMap(name=name, topic=topic, role="image")


def test_nearest_frame_per_camera_once_all_candidates_arrived():
    front, wrist = cam("front", "/front"), cam("wrist", "/wrist")
    m = CameraMatcher([front, wrist], {"front": 0.01, "wrist": 0.01}, tolerance=0.02, slack=0.25)
    for k in range(10):
        m.add_frame("/front", k / 30, f"front-{k}")
        m.add_frame("/wrist", k / 30 + 0.004, f"wrist-{k}")
    m.add_tick(0.1, episode=0)
    m.add_tick(0.2, episode=0)
    # Not before the log clock is past tick + tolerance + slack (later frames might still be nearer).
    assert list(m.ready(0.1 + 0.02 + 0.25)) == []
    first, second = list(m.ready(0.2 + 0.27 + 1e-9))
    assert (first.tick, first.episode, first.in_sync) == (0.1, 0, True)
    assert [(c.name, msg) for c, msg in first.picks] == [("front", "front-3"), ("wrist", "wrist-3")]
    offsets = dict(first.offsets)
    assert offsets["front"] == pytest.approx(0.0) and offsets["wrist"] == pytest.approx(0.004)
    assert [msg for _, msg in second.picks] == ["front-6", "wrist-6"]
    assert list(m.ready(math.inf)) == []  # each tick is matched exactly once


def test_a_camera_out_of_tolerance_or_silent_makes_the_tick_out_of_sync():
    front, wrist = cam("front", "/front"), cam("wrist", "/wrist")
    m = CameraMatcher([front, wrist], {"front": 0.01, "wrist": 0.05}, tolerance=0.05, slack=0.0)
    m.add_frame("/front", 0.0, "f0")
    m.add_frame("/wrist", 0.03, "w0")
    m.add_tick(0.02, episode=4)  # front 20 ms away (> 10 ms), wrist 10 ms (<= 50 ms)
    (match,) = m.ready(1.0)
    assert not match.in_sync and dict(match.offsets)["front"] == pytest.approx(0.02)
    silent = CameraMatcher([front], {"front": 0.01}, tolerance=0.01, slack=0.0)
    silent.add_tick(0.0, episode=0)
    (match,) = silent.ready(1.0)
    assert match.picks == [(front, None)] and match.offsets == [("front", math.inf)] and not match.in_sync


def test_of_two_frames_equally_near_the_earlier_wins():
    m = CameraMatcher([cam("front", "/front")], {"front": 0.2}, tolerance=0.2, slack=0.0)
    m.add_frame("/front", 0.0, "early")
    m.add_frame("/front", 0.25, "late")
    m.add_tick(0.125, episode=0)
    (match,) = m.ready(1.0)
    assert match.picks[0][1] == "early" and match.offsets == [("front", 0.125)]


def test_two_features_of_one_camera_share_its_frame():
    rgb, rgb_half = cam("rgb", "/cam"), cam("rgb_small", "/cam")
    m = CameraMatcher([rgb, rgb_half], {"rgb": 0.01, "rgb_small": 0.01}, tolerance=0.01, slack=0.0)
    m.add_frame("/cam", 0.0, "frame")
    m.add_tick(0.0, episode=0)
    (match,) = m.ready(1.0)
    assert match.picks == [(rgb, "frame"), (rgb_half, "frame")]


def test_look_behind_buffer_stays_small_on_a_long_stream():
    m = CameraMatcher([cam("front", "/front")], {"front": 0.02}, tolerance=0.02, slack=0.25)
    longest = 0
    for k in range(3000):  # 100 s at 30 Hz, a tick per frame
        t = k / 30
        m.add_frame("/front", t, k)
        m.add_tick(t, episode=0)
        for match in m.ready(t):
            assert match.in_sync and match.picks[0][1] == round(match.tick * 30)
        m.trim(t)
        longest = max(longest, len(m.buffers["/front"]))
    assert longest <= 12  # about (tolerance + slack) * 30 Hz frames, not the whole stream
    assert len(list(m.ready(math.inf))) > 0  # the ticks still waiting at the end
    m.trim(1e9)
    assert [t for t, _ in m.buffers["/front"]] == [2999 / 30]  # the latest frame is always kept


# ---- LowDimStreams -----------------------------------------------------------------------------------------


def joints(**kw) -> FeatureMap:
    return FeatureMap(name="joints", topic="/joint_states", role="state", **kw)


def streams_of(feature: FeatureMap, policy: SyncPolicy, times, values=None, width: int = 2) -> LowDimStreams:
    s = LowDimStreams([feature], {feature.name: policy}, {feature.name: width}, source=SOURCE)
    for i, t in enumerate(times):
        v = np.array([t, -t]) if values is None else np.asarray(values[i], np.float64)
        s.add(feature.name, t, v)
    return s


def test_nearest_and_hold_decide_sync_differently():
    times = [0.0, 0.1, 0.2]
    nearest = streams_of(joints(), SyncPolicy(method="nearest", tolerance_s=0.05), times)
    hold = streams_of(joints(), SyncPolicy(method="hold", tolerance_s=0.05), times)
    # 0.16: the previous sample is 60 ms old, the next one 40 ms ahead.
    assert [nearest.in_sync(r) for r in (0.04, 0.16, 0.3)] == [True, True, False]
    assert [hold.in_sync(r) for r in (0.04, 0.16, 0.3)] == [True, False, False]


def test_no_sample_at_all_is_out_of_sync():
    empty = streams_of(joints(), SyncPolicy(), [])
    assert not empty.in_sync(0.0)
    al = empty.align(np.array([0.0, 0.1]), np.array([0.0]))
    assert al.values["joints"].shape == (1, 2) and not al.ok.any()
    ok, offsets = al.all_ticks["joints"]
    assert not ok.any() and np.isinf(offsets).all()


def test_align_gives_values_at_the_kept_ticks_and_offsets_at_all_ticks():
    times = np.arange(0, 0.5, 0.01)
    s = streams_of(joints(), SyncPolicy(method="nearest", tolerance_s=0.004), times)
    all_ticks = np.array([0.101, 0.2, 0.3055, 0.4])
    kept = all_ticks[[0, 1, 3]]
    al = s.align(all_ticks, kept)
    np.testing.assert_allclose(al.values["joints"], [[0.10, -0.10], [0.20, -0.20], [0.40, -0.40]])
    assert al.ok.tolist() == [True, True, True]
    ok, offsets = al.all_ticks["joints"]
    assert ok.tolist() == [True, True, False, True]  # 0.3055 is 4.5 ms from its nearest sample
    assert offsets[2] == pytest.approx(0.0045)


def test_default_fills_ticks_before_the_stream_starts():
    cmd = FeatureMap(name="cmd", topic="/cmd", role="action", default=[0.0, 0.0])
    s = streams_of(cmd, SyncPolicy(method="hold", tolerance_s=0.05), [1.0, 1.1], values=[[5, 6], [7, 8]])
    assert s.in_sync(0.5) and s.in_sync(1.02) and not s.in_sync(1.5)
    al = s.align(np.array([0.5, 1.02]), np.array([0.5, 1.02]))
    np.testing.assert_array_equal(al.values["cmd"], [[0, 0], [5, 6]])
    assert al.ok.all() and al.all_ticks["cmd"][1][0] == 0.0


def test_a_default_of_the_wrong_width_names_the_file_and_feature():
    cmd = FeatureMap(name="cmd", topic="/cmd", role="action", default=[0.0])
    s = streams_of(cmd, SyncPolicy(), [1.0], values=[[5, 6]])
    with pytest.raises(IngestError, match=r"^/recordings/run_7.mcap: feature 'cmd': default has 1 values"):
        s.align(np.array([0.5]), np.array([0.5]))


def test_forget_before_drops_old_samples_and_restarts_the_search():
    s = streams_of(joints(), SyncPolicy(method="hold", tolerance_s=0.5), [0.0, 1.0, 2.0, 3.0])
    assert s.in_sync(3.1)
    s.forget_before(2.0)
    assert [t for t, _ in s.samples["joints"]] == [2.0, 3.0]
    # The search restarts at the first kept sample (its old position is past the end of the shorter list).
    assert s.in_sync(2.2) and s.in_sync(3.4) and not s.in_sync(3.6)


# ---- EpisodeCloser ------------------------------------------------------------------------------------------

SCHEMA = EpisodeSchema(
    [FeatureSpec("cam", "image", (4, 5, 3), "uint8"), FeatureSpec("joints", "state", (2,)),
     FeatureSpec("cmd", "action", (1,))],
    fps=30.0,
)  # fmt: skip
JOINTS = FeatureMap(name="joints", topic="/joint_states", role="state")
CMD = FeatureMap(name="cmd", topic="/cmd", role="action")


def lowdim(t_end: float = 2.0, nan_at: float | None = None) -> LowDimStreams:
    pol = SyncPolicy(method="nearest", tolerance_s=0.02)
    s = LowDimStreams([JOINTS, CMD], {"joints": pol, "cmd": pol}, {"joints": 2, "cmd": 1}, source=SOURCE)
    for t in np.arange(0.0, t_end, 0.01):
        s.add("joints", float(t), np.array([np.sin(t), np.cos(t)]))
        s.add("cmd", float(t), np.array([math.nan if nan_at is not None and abs(t - nan_at) < 1e-9 else t]))
    return s


def closer_for(tmp_path: Path, streams: LowDimStreams, **kw) -> tuple[EpisodeCloser, EpisodeStoreWriter]:
    writer = EpisodeStoreWriter(tmp_path / "out.hdf5", SCHEMA)
    opts = {"min_frames": 2, "max_frames": 1000, "camera_tolerances": {"cam": 0.01}, "tolerance": 0.02, **kw}
    return EpisodeCloser(writer, streams, IngestReport("src", "out"), source=SOURCE, **opts), writer


def fill(ep: OpenEpisode, ticks, written=None, offset: float = 0.001) -> None:
    for i, t in enumerate(ticks):
        write = written is None or written[i]
        frame = np.full((4, 5, 3), i % 256, np.uint8)
        ep.add(float(t), [("cam", offset if write else 0.5)], {"cam": frame} if write else None)


def test_an_episode_in_sync_is_written_with_relative_times(tmp_path):
    closer, writer = closer_for(tmp_path, lowdim())
    ep = OpenEpisode.begin(3, writer, ["cam"])
    ticks = 0.5 + np.arange(20) / 30
    fill(ep, ticks)
    assert len(ep.images["cam"]) == 4  # 16 of the 20 frames already went to the file
    rep = closer.close(ep)
    assert (rep.name, rep.frames, rep.dropped_frames) == ("demo_0", 20, 0)
    assert rep.duration_s == pytest.approx(19 / 30)
    closer.mark_success({3: True, 9: False})  # episode 9 was never written: ignored
    assert rep.success is True
    writer.commit()
    with EpisodeStore(tmp_path / "out.hdf5") as es:
        demo = es.read("demo_0")
        np.testing.assert_allclose(demo.timestamps, ticks - ticks[0])
        np.testing.assert_allclose(demo.obs["joints"], np.stack([np.sin(ticks), np.cos(ticks)], 1), atol=0.006)
        assert demo.obs["cam"].shape == (20, 4, 5, 3) and demo.obs["cam"][7, 0, 0, 0] == 7
        assert demo.attrs["recording_episode"] == 3 and demo.attrs["source"] == "run_7.mcap"
        assert bool(demo.attrs["success"]) is True
    assert closer.report.misaligned["cam"]["count"] == 0


def test_ticks_out_of_sync_at_match_time_are_dropped_and_reported(tmp_path):
    closer, writer = closer_for(tmp_path, lowdim())
    ep = OpenEpisode.begin(0, writer, ["cam"])
    written = [k % 5 != 0 for k in range(20)]  # 4 of 20 ticks had no camera frame in tolerance
    fill(ep, 0.5 + np.arange(20) / 30, written)
    rep = closer.close(ep)
    assert (rep.frames, rep.dropped_frames) == (16, 4)
    assert closer.report.misaligned["cam"] == {"count": 4, "no_sample": 0, "worst_offset_ms": 500.0}
    writer.commit()
    with EpisodeStore(tmp_path / "out.hdf5") as es:
        assert es.num_samples("demo_0") == 16 and es.attrs("demo_0")["dropped_frames"] == 4


def test_low_dim_out_of_tolerance_after_matching_is_removed_from_the_demo(tmp_path):
    closer, writer = closer_for(tmp_path, lowdim(t_end=1.0))  # samples stop at 0.99 s
    ep = OpenEpisode.begin(0, writer, ["cam"])
    fill(ep, 0.8 + np.arange(10) / 30)  # the last 3 ticks are > 20 ms past the last sample
    rep = closer.close(ep)
    assert (rep.frames, rep.dropped_frames) == (7, 3)
    assert closer.report.misaligned["joints"]["count"] == 3


def test_short_episodes_are_discarded_and_counted(tmp_path):
    closer, writer = closer_for(tmp_path, lowdim(), min_frames=5)
    ep = OpenEpisode.begin(0, writer, ["cam"])
    fill(ep, [0.5, 0.53, 0.56])
    assert closer.close(ep) is None and closer.report.short_episodes_skipped == 1
    empty = OpenEpisode.begin(1, writer, ["cam"])  # an episode with no tick at all is not counted
    assert closer.close(empty) is None and closer.report.short_episodes_skipped == 1
    ep = OpenEpisode.begin(2, writer, ["cam"])
    fill(ep, 0.5 + np.arange(6) / 30, [True, False, False, True, True, True])  # 6 ticks, only 4 written
    assert closer.close(ep) is None and closer.report.short_episodes_skipped == 2
    assert closer.report.episodes == [] and writer.demos == []


def test_an_episode_over_the_limit_is_an_error_naming_it(tmp_path):
    closer, writer = closer_for(tmp_path, lowdim(), max_frames=10)
    ep = OpenEpisode.begin(5, writer, ["cam"])
    fill(ep, 0.5 + np.arange(11) / 30)
    with pytest.raises(IngestError, match=r"run_7.mcap: episode 5 has 11 frames, more than the limit of 10"):
        closer.close(ep)
    writer.abort()


def test_nan_in_a_low_dim_stream_names_topic_feature_and_time(tmp_path):
    closer, writer = closer_for(tmp_path, lowdim(nan_at=0.6))
    ep = OpenEpisode.begin(0, writer, ["cam"])
    fill(ep, 0.5 + np.arange(10) / 30)
    with pytest.raises(IngestError, match=r"topic /cmd -> feature 'cmd' holds NaN/inf values \(episode 0, t=0.100 s\)"):
        closer.close(ep)
    writer.abort()


def test_after_a_written_episode_only_the_look_behind_is_kept(tmp_path):
    streams = lowdim(t_end=10.0)
    closer, writer = closer_for(tmp_path, streams, tolerance=0.02)
    ep = OpenEpisode.begin(0, writer, ["cam"])
    fill(ep, 8.0 + np.arange(10) / 30)
    closer.close(ep)
    horizon = (8.0 + 9 / 30) - 0.02 * 4 - 1.0
    kept = [t for t, _ in streams.samples["joints"]]
    assert kept[0] >= horizon and kept[0] - horizon < 0.01 and kept[-1] == pytest.approx(9.99)
