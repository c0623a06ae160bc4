"""Drift of a release against a reference robodata did not write (the real SO101 dataset): a shifted joint and a
darker camera are flagged with their numbers, nothing else is; a reference with other features is one clear error."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robodata.drift import DriftConfig, DriftError, check_release_drift, drift_report

DATA = "data/chunk-000/file-000.parquet"
VIDEO = "videos/observation.images.wrist/chunk-000/file-000.mp4"


@pytest.fixture()
def so101(realdata):
    return realdata / "lerobot_v3_so101"


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _shift_state(root, dim: int, by: float) -> None:
    t = pq.read_table(root / DATA)
    col = t.column("observation.state").combine_chunks()
    x = np.asarray(col.flatten().to_numpy(), np.float32).reshape(len(col), -1).copy()
    x[:, dim] += by
    arr = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1]) if pa.types.is_fixed_size_list(col.type) \
        else pa.array(list(x))
    pq.write_table(t.set_column(t.column_names.index("observation.state"), "observation.state", arr.cast(col.type)),
                   root / DATA)


def _darken(root, by: int) -> None:
    """Re-encode the camera's video with every pixel ``by`` darker (same frames, same timing)."""
    import av

    src = root / VIDEO
    tmp = src.with_suffix(".tmp.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), "w") as out:
        s_in = inp.streams.video[0]
        s = out.add_stream("libx264", rate=30, options={"crf": "18", "preset": "ultrafast", "g": "2"})
        s.width, s.height, s.pix_fmt = s_in.width, s_in.height, "yuv420p"
        s.time_base = Fraction(1, 30)
        for i, frame in enumerate(inp.decode(s_in)):
            img = np.clip(frame.to_ndarray(format="rgb24").astype(np.int16) - by, 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    tmp.replace(src)


def test_the_same_release_has_no_drift(so101):
    rep = drift_report(so101, so101, DriftConfig(image_episodes=6, frames_per_episode=2))
    assert rep.drifted == []
    assert "no drift" in rep.headline()
    names = {f.name for f in rep.features}
    assert {"observation.state[j0]", "action[j5]", "episode_length", "fps", "task_mix",
            "observation.images.wrist:brightness", "observation.images.wrist:blur"} <= names


def test_a_shifted_joint_is_flagged_and_nothing_else(so101, tmp_path):
    new = _copy(so101, tmp_path / "release-2")
    _shift_state(new, 2, 0.05)  # j2 reads 0.05 rad higher (a recalibrated encoder)
    rep = drift_report(new, so101, DriftConfig(image_episodes=0))
    assert [f.name for f in rep.drifted] == ["observation.state[j2]"]
    f = rep.feature("observation.state[j2]")
    assert f.psi > 1 and f.ks == pytest.approx(1.0) and f.new_mean - f.reference_mean == pytest.approx(0.05, abs=1e-4)
    md = rep.to_markdown()
    assert "1 of" in md and "| observation.state[j2] | psi |" in md and "moved by 0.05" in md
    paths = rep.write(tmp_path / "report")
    assert paths["drift_histograms"].read_bytes()[:4] == b"\x89PNG" and paths["drift_summary"].exists()
    assert "drift_histograms.png" in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["features"][2]["name"] == "observation.state[j2]"


def test_a_darker_camera_is_flagged_by_brightness_and_colour_not_by_joints(so101, tmp_path):
    new = _copy(so101, tmp_path / "release-2")
    _darken(new, 40)
    rep = drift_report(new, so101, DriftConfig(image_episodes=6, frames_per_episode=3))
    drifted = {f.name for f in rep.drifted}
    assert {"observation.images.wrist:brightness", "observation.images.wrist:red",
            "observation.images.wrist:green", "observation.images.wrist:blue"} <= drifted
    assert not any(f.group in ("state", "action", "episode", "rate", "task") for f in rep.drifted)
    b = rep.feature("observation.images.wrist:brightness")
    assert b.new_mean == pytest.approx(b.reference_mean - 40, abs=3)


def test_the_release_check_warns_or_blocks_by_config(so101, tmp_path):
    new = _copy(so101, tmp_path / "release-2")
    _shift_state(new, 0, -0.1)
    warn = check_release_drift(new, so101, DriftConfig(image_episodes=0), out_dir=tmp_path / "warn")
    assert (warn.passed, warn.severity, warn.blocking) == (False, "WARN", False)
    assert "observation.state[j0] psi" in warn.description
    assert warn.metadata["drifted_features"] == ["observation.state[j0]"]
    assert (tmp_path / "warn" / "drift_report.md").exists()
    block = check_release_drift(new, so101, DriftConfig(image_episodes=0, on_drift="block"))
    assert (block.passed, block.severity, block.blocking) == (False, "ERROR", True)
    # a per-feature threshold (or ignoring the feature) lets a known change through
    ok = check_release_drift(new, so101, DriftConfig(image_episodes=0, ignore=["observation.state[j0]"]))
    assert ok.passed


def test_a_reference_with_other_features_is_one_clear_error(so101, tmp_path):
    ref = _copy(so101, tmp_path / "reference")
    info_path = ref / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.state"]["shape"] = [7]
    info["features"]["observation.state"]["names"] = {"motors": [f"j{i}" for i in range(7)]}
    del info["features"]["observation.images.wrist"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DriftError) as err:
        drift_report(so101, ref)
    msg = str(err.value)
    assert msg.startswith(f"{so101 / 'meta' / 'info.json'}: features differ from the reference {info_path}")
    assert "extra observation.images.wrist" in msg and "observation.state shape [6] here but [7] in the reference" in msg
    assert "\n" not in msg
