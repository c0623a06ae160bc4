"""The video source tier on a small corpus built here: MuJoCo renders of the Fetch scene and procedural clips,
encoded with PyAV (H.264 MP4, VP9 WebM, MKV), with planted cuts, duplicates, bad shots and bad files."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageFilter

from robodata.video.config import VideoCorpusConfig
from robodata.video.corpus import CorpusResult, list_corpus, scan_corpus
from robodata.video.hashing import ShotIndex
from robodata.video.scenes import cut_accuracy, detect_cuts
from tests.conftest import moto_server, s3_filesystem

HW = (120, 160)
N = 60
FPS = 30
CAMERAS = {
    "a": {"lookat": [1.3, 0.75, 0.45], "distance": 1.6, "azimuth": 150, "elevation": -25},
    "b": {"lookat": [1.3, 0.75, 0.45], "distance": 1.2, "azimuth": 60, "elevation": -45},
    "c": {"lookat": [1.2, 0.7, 0.5], "distance": 2.0, "azimuth": 230, "elevation": -15},
}


def encode(path: Path, frames: np.ndarray, codec: str = "libx264", crf: int = 20, fps: int = FPS,
           options: dict[str, str] | None = None, container: dict[str, str] | None = None) -> Path:
    """Encode ``(T, H, W, 3)`` uint8 frames with PyAV (not robodata's writers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = {"crf": str(crf), **(options or {})}
    if codec == "libvpx-vp9":
        opts.setdefault("b", "0")
    with av.open(str(path), "w", options=container or {}) as out:
        s = out.add_stream(codec, rate=fps, options=opts)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
    return path


def procedural(seed: int, n: int = N, hw: tuple[int, int] = HW) -> np.ndarray:
    """Moving shapes over a smooth noise texture (different for every seed)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    base = np.asarray(Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3), np.uint8)).resize((w, h),
                      Image.Resampling.NEAREST), np.uint8)  # sharp-edged blocks: detail for the blur filter
    out = np.repeat(base[None], n, axis=0).copy()
    for _ in range(3):
        color = rng.integers(0, 256, 3)
        size = int(rng.integers(h // 6, h // 3))
        y0, x0 = int(rng.integers(0, h - size)), int(rng.integers(0, w - size))
        vy, vx = rng.uniform(-1.5, 1.5, 2)
        for i in range(n):
            y = int(np.clip(y0 + vy * i, 0, h - size))
            x = int(np.clip(x0 + vx * i, 0, w - size))
            out[i, y:y + size, x:x + size] = color
    return out


def resize(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize((hw[1], hw[0]), Image.Resampling.BILINEAR)) for f in frames])


def crop(frames: np.ndarray, border: float) -> np.ndarray:
    h, w = frames.shape[1:3]
    dy, dx = round(h * border), round(w * border)
    return frames[:, dy:h - dy, dx:w - dx]


@pytest.fixture(scope="module")
def renders() -> dict[str, np.ndarray]:
    from robodata.sim.fetch import FetchPickPlace
    from robodata.sim.teleop import ScriptedTeleop

    out = {}
    with FetchPickPlace(image_hw=HW, cameras=CAMERAS) as sim:
        for seed, cam in enumerate(CAMERAS):
            sim.reset(seed)
            op = ScriptedTeleop(seed)
            op.begin_episode(sim)
            frames = []
            for _ in range(N):
                frames.append(sim.render(cam))
                sim.step(op.act(sim).action)
            out[cam] = np.stack(frames)
    return out


def build_corpus(root: Path, r: dict[str, np.ndarray]) -> None:
    a, b, c = r["a"], r["b"], r["c"]
    p1, p2 = procedural(1), procedural(2)
    encode(root / "pick.mp4", a)
    (root / "pick.txt").write_text("pick up the black cube and place it at the red target\n")
    encode(root / "pick_reencoded.webm", a, codec="libvpx-vp9", crf=45)  # another codec and quality
    encode(root / "pick_crop.mp4", resize(crop(a, 0.1), (96, 128)), crf=30)  # 10 % border cropped, smaller
    encode(root / "sub" / "cut.mkv", np.concatenate([b, c, p1]))  # cuts at frames 60 and 120
    (root / "sub" / "cut.json").write_text(json.dumps({
        "caption": "the robot reaches for the cube", "layer": "generated", "source_demo": "demo_3",
        "control_video": "demo_3/segmentation.mp4", "seed": 7, "engine": "cosmos-transfer"}))
    encode(root / "static.mp4", np.repeat(a[:1], N, axis=0))
    rng = np.random.default_rng(0)
    encode(root / "black.mp4", rng.integers(0, 6, (N, *HW, 3), np.uint8))
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(3))) for f in p2])
    encode(root / "blurred.mp4", blurred)
    canvas = procedural(3, 1, (HW[0] + 24, HW[1] + 24))[0]
    offs = rng.integers(0, 25, (N, 2))
    encode(root / "shaky.mp4", np.stack([canvas[y:y + HW[0], x:x + HW[1]] for y, x in offs]))
    encode(root / "short.mp4", p1[:15])
    encode(root / "tiny.mp4", resize(p2, (48, 64)))
    with av.open(str(root / "audio_only.mp4"), "w") as out:
        s = out.add_stream("aac", rate=16000)
        t = 0
        for _ in range(20):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, t
            t += 1024
            out.mux(s.encode(af))
        out.mux(s.encode(None))
    (root / "empty.mp4").write_bytes(b"")
    whole = encode(root.parent / "whole.mp4", p2).read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) * 2 // 3])
    fast = encode(root.parent / "fast.mp4", p1, container={"movflags": "faststart"}).read_bytes()
    (root / "truncated_faststart.mp4").write_bytes(fast[: len(fast) // 2])
    (root / "notes.mp4").write_text("this is a text file, not a video\n")
    (root / "orphan.json").write_text(json.dumps({"caption": "a caption whose clip never arrived"}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, renders) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "clips"
    build_corpus(root, renders)
    return root


@pytest.fixture(scope="module")
def scanned(corpus, tmp_path_factory) -> tuple[CorpusResult, Path]:
    db = tmp_path_factory.mktemp("index") / "shots.sqlite"
    return scan_corpus([str(corpus)], VideoCorpusConfig(), index=ShotIndex(db)), db  # on Ray Data


def by_file(res: CorpusResult) -> dict[str, list]:
    out: dict[str, list] = {}
    for x in [*res.shots, *res.rejections]:
        out.setdefault(Path(x.clip).name, []).append(x)
    return out


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_corpus_shots_rejections_and_findings(scanned, corpus):
    res, _ = scanned
    files = by_file(res)
    # accepted: the original and the three shots of the cut clip, with their captions and provenance
    assert sorted(s.id.replace(str(corpus) + "/", "") for s in res.shots) == \
        ["pick.mp4#0", "sub/cut.mkv#0", "sub/cut.mkv#1", "sub/cut.mkv#2"]
    pick = files["pick.mp4"][0]
    assert pick.caption == "pick up the black cube and place it at the red target" and pick.layer == "internet"
    assert (pick.start_frame, pick.end_frame, pick.fps, pick.width, pick.height, pick.codec) == (0, N, 30, 160, 120, "h264")
    assert pick.phash != 0
    cut = sorted(files["cut.mkv"], key=lambda s: s.index)
    assert [(s.start_frame, s.end_frame) for s in cut] == [(0, 60), (60, 120), (120, 180)]
    for s in cut:
        assert s.caption == "the robot reaches for the cube" and s.layer == "generated"
        assert s.provenance == {"source_demo": "demo_3", "control_video": "demo_3/segmentation.mp4", "seed": 7,
                                "engine": "cosmos-transfer"}
    # duplicates: the re-encode (VP9) and the crop + resize, both twins of the first seen
    for name in ("pick_reencoded.webm", "pick_crop.mp4"):
        (d,) = files[name]
        assert d.reason == "duplicate" and d.twin == pick.id, (name, d)
    # quality filters, with the measured value in the detail
    reasons = {name: [(x.index, x.reason) for x in xs] for name, xs in files.items()
               if name not in ("pick.mp4", "cut.mkv", "pick_reencoded.webm", "pick_crop.mp4")}
    assert reasons == {"static.mp4": [(0, "static")], "black.mp4": [(0, "black")], "blurred.mp4": [(0, "blurred")],
                       "shaky.mp4": [(0, "shaky")], "short.mp4": [(-1, "too_short")],
                       "tiny.mp4": [(-1, "low_resolution")]}
    assert "64x48" in files["tiny.mp4"][0].detail
    # files that are no clip: one finding each, naming the file
    problems = {Path(f.path).name: f.problem for f in res.findings}
    assert set(problems) == {"audio_only.mp4", "empty.mp4", "truncated.mp4", "truncated_faststart.mp4",
                             "notes.mp4", "orphan.json"}, problems
    assert problems["audio_only.mp4"].startswith("audio only")
    assert problems["empty.mp4"].startswith("empty file")
    assert problems["truncated.mp4"].startswith("truncated")
    assert "truncated" in problems["truncated_faststart.mp4"]
    assert problems["notes.mp4"].startswith("not a readable video")
    assert problems["orphan.json"].startswith("caption file without a clip")
    assert res.counts == {"accepted": 4, "clips": 8, "findings": 6, "black": 1, "blurred": 1, "duplicate": 2,
                          "low_resolution": 1, "shaky": 1, "static": 1, "too_short": 1}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_scene_cuts_are_found_where_planted(scanned):
    res, _ = scanned
    tp = fp = fn = 0
    for c in res.clips:
        truth = [60, 120] if c.clip.endswith("cut.mkv") else []
        t, f, n = cut_accuracy(c.cuts, truth)
        tp, fp, fn = tp + t, fp + f, fn + n
    assert (tp, fp, fn) == (2, 0, 0)  # recall 1, precision 1 over every analysed clip (shaky ones included)
    # the detector alone: a hard cut among smooth motion, and a flash too short to be a shot
    scores = [0.0] + [2.0] * 29 + [60.0] + [2.0] * 29 + [70.0, 65.0] + [2.0] * 30
    assert detect_cuts(scores) == [30, 60]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_later_scan_dedups_against_the_index(scanned, corpus, renders, tmp_path):
    res, db = scanned
    # a later upload: the original at another resolution (upscaled), and a new scene
    encode(tmp_path / "later" / "pick_hd.mp4", resize(renders["a"], (240, 320)), crf=28)
    encode(tmp_path / "later" / "new.mp4", procedural(9))
    later = scan_corpus(str(tmp_path / "later"), index=ShotIndex(db), use_ray=False, source="release-2")
    (dup,) = [r for r in later.rejections if r.reason == "duplicate"]
    assert dup.clip.endswith("pick_hd.mp4") and dup.twin == str(corpus / "pick.mp4") + "#0"
    assert [Path(s.clip).name for s in later.shots] == ["new.mp4"]
    # scanning the first corpus again against the same index: its kept shots are not duplicates of themselves
    again = scan_corpus(str(corpus), index=ShotIndex(db), use_ray=False)
    assert [s.id for s in again.shots] == [s.id for s in res.shots]
    assert sorted(r.clip for r in again.rejections if r.reason == "duplicate") == \
        sorted(r.clip for r in res.rejections if r.reason == "duplicate")


def test_index_keeps_its_settings(tmp_path):
    from robodata.dedup import DedupError

    ShotIndex(tmp_path / "i.sqlite", VideoCorpusConfig())
    with pytest.raises(DedupError, match=r"i.sqlite: built with"):
        ShotIndex(tmp_path / "i.sqlite", VideoCorpusConfig(bands=3))


def test_missing_corpus_is_one_error(tmp_path):
    from robodata.video.corpus import VideoCorpusError

    with pytest.raises(VideoCorpusError, match=r"nowhere: no such folder"):
        list_corpus(str(tmp_path / "nowhere"))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_corpus_in_a_bucket(renders, tmp_path, monkeypatch):
    with moto_server() as env:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        fs = s3_filesystem(env)
        fs.mkdir("bucket")
        fs.put(str(encode(tmp_path / "pick.mp4", renders["a"])), "bucket/videos/pick.mp4")
        fs.put(str(encode(tmp_path / "pick_copy.webm", renders["a"], codec="libvpx-vp9", crf=40)),
               "bucket/videos/pick_copy.webm")
        (tmp_path / "pick.json").write_text(json.dumps({"task": "pick the cube", "source": "web"}))
        fs.put(str(tmp_path / "pick.json"), "bucket/videos/pick.json")
        fs.put(str(tmp_path / "pick.json"), "bucket/videos/lonely.json")
        res = scan_corpus("s3://bucket/videos/", use_ray=False)
    (shot,) = res.shots
    assert shot.clip == "s3://bucket/videos/pick.mp4" and shot.caption == "pick the cube"
    assert shot.provenance == {"source": "web"}
    (dup,) = res.rejections
    assert dup.clip == "s3://bucket/videos/pick_copy.webm" and dup.reason == "duplicate" and dup.twin == shot.id
    assert [(f.path, f.problem.split(" (")[0]) for f in res.findings] == \
        [("s3://bucket/videos/lonely.json", "caption file without a clip")]


def test_takes_of_one_robot_cell_are_not_duplicates(tmp_path):
    """The simulator's clips (``robodata record --format mp4``): one fixed camera, one scene, different takes (the
    cube and goal move). They look alike, but only a copy of the same take is a duplicate."""
    import shutil

    from robodata.sim.recorder import TASK, record_session

    # Sessions 0 and 1: session 1's first take and session 0's second come out 7 bits apart (a copy: under 3).
    clips = [p for i in range(2) for p in record_session(tmp_path / "clips", f"cell{i}", n_episodes=2, seed=i,
                                                        formats=["mp4"])["clips"]]
    names = ["cell0_ep00.mp4", "cell0_ep01.mp4", "cell1_ep00.mp4", "cell1_ep01.mp4"]
    assert [p.name for p in clips] == names
    shutil.copy(clips[1], tmp_path / "clips" / "reupload.mp4")  # one take uploaded twice
    res = scan_corpus(str(tmp_path / "clips"), use_ray=False)
    dups = [(Path(r.clip).name, Path(str(r.twin)).name.split("#")[0]) for r in res.rejections if r.reason == "duplicate"]
    assert dups == [("reupload.mp4", "cell0_ep01.mp4")]
    assert sorted(Path(s.clip).name for s in res.shots) == names
    assert all(s.caption == TASK and s.provenance == {} for s in res.shots)  # the .txt caption beside each clip
