"""The Python API's sources as others' files reach them: a LeRobot dataset from the wild (its gaps are findings in
the result, ``strict=True`` fails the run), an Isaac Lab recorder file read with ``fps`` / ``quaternion_order``
(the source's, over the project config's ``sources:``), options a source does not take refused by name, and a
run that prints no Ray chatter.

The LeRobot fixtures are lerobot's published v2.1 layout written with pyarrow and PyAV
(:func:`tests.test_lerobot_wild.write_published_v21`); the Isaac Lab file is laid out as Isaac Lab's recorder
writes it (:mod:`tests.isaaclab_recorder`). Neither is written with robodata's writers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import robodata
from robodata.api import PipelineError
from robodata.api.builtins import IsaacLabSource, LeRobotSource
from tests.isaaclab_recorder import write_isaaclab_recording
from tests.test_lerobot_wild import CAM, FPS, FRAMES, groot_modality, write_published_v21

REPO = Path(__file__).resolve().parents[1]
CHATTER = ("Token authentication", "Started a local Ray instance", "Progress bars")


def _wild(root: Path) -> Path:
    """Every gap at once: no MP4s shipped, no frame_index, timestamps from 3 s and 12.5 s, in GR00T's layout."""
    return write_published_v21(root, videos=False, frame_index=False, start_at={0: 3.0, 1: 12.5},
                               modality=groot_modality())


def _config(tmp_path: Path, **keys) -> str:
    """A project config whose ingest takes the fixtures' 8-frame episodes (the default minimum is 10)."""
    path = tmp_path / "robodata.yaml"
    path.write_text(yaml.safe_dump({"home": str(tmp_path / "home"), "tiers": {"raw_teleop": {"min_episode_frames": 2}},
                                    **keys}))
    return str(path)


def _note(result, start: str) -> bool:
    """Whether the result has a note starting so (the rest says how the value was chosen)."""
    return any(n.startswith(start) for n in result.notes)


def _info(out: Path) -> dict:
    return json.loads((out / "meta" / "info.json").read_text())


# ---- options a source does not take ---------------------------------------------------------------------------


def test_an_option_no_source_takes_is_refused_by_name(tmp_path):
    src = write_isaaclab_recording(tmp_path / "rec" / "a.hdf5", demos=1, cameras=False)
    with pytest.raises(PipelineError, match=r"datasource 'lerobot' \(.*\): unknown option\(s\) strikt "
                                            r"\(it takes episodes, pattern, strict, topic_map\)"):
        robodata.PipelineBuilder().source("lerobot", str(tmp_path), strikt=True).output(str(tmp_path / "o")).build()
    with pytest.raises(PipelineError, match=r"datasource 'hdf5' .*unknown option\(s\) fsp \(it takes fps, "):
        robodata.pipeline([{"type": "hdf5", "path": str(src), "options": {"fsp": 50}}], str(tmp_path / "o"))
    with pytest.raises(PipelineError, match="quaternion_order"):
        robodata.PipelineBuilder().source("hdf5", str(src), quaternion_order="zyxw").output(str(tmp_path / "o")).build()
    with pytest.raises(PipelineError, match="strict is true or false"):
        LeRobotSource(str(tmp_path), strict="yes")
    assert IsaacLabSource(str(src), fps=50, quaternion_order="xyzw").hdf5_options == {"fps": 50.0,
                                                                                     "quaternion_order": "xyzw"}


class Declared(robodata.Datasource):
    """A plugin's datasource: one option as a parameter, one read from ``self.options``."""

    suffixes = (".csv",)
    extra_options = ("delimiter",)

    def __init__(self, path: str, fps: float = 20.0, **kw):
        super().__init__(path, **kw)
        self.fps = fps


def test_a_plugin_datasource_takes_the_options_it_declares():
    d = Declared("x/", fps=5, delimiter=";", pattern="*.csv")
    assert (d.fps, d.options, d.pattern) == (5, {"delimiter": ";"}, "*.csv")
    assert Declared.option_names() == ["delimiter", "fps", "pattern", "topic_map"]
    with pytest.raises(PipelineError, match=r"datasource 'declared' \(x/\): unknown option\(s\) fsp, sep "
                                            r"\(it takes delimiter, fps, pattern, topic_map\)"):
        Declared("x/", fsp=5, sep=";")


# ---- LeRobot from the wild -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_wild_lerobot_datasets_gaps_are_findings_in_the_result(tmp_path):
    src = _wild(tmp_path / "groot")
    out = tmp_path / "out"
    res = (robodata.PipelineBuilder().source("lerobot", str(src)).output(str(out)).options(config=_config(tmp_path))
           .build().run())
    assert res.ok and res.episodes_out == 2 and res.frames_out == 2 * FRAMES, res.summary()
    mine = [f for f in res.findings if f["check"] == "lerobot"]
    assert {f["severity"] for f in mine} == {"warning"}
    by_where = {f["where"]: f["message"] for f in mine}
    # each names the dataset, the feature (or the file in it) and what is missing, and what was done about it
    assert by_where[f"{src}: {CAM}"].startswith("meta/info.json declares a video feature but none of its 2 files")
    assert by_where[f"{src}: {CAM}"].endswith("; the feature is left out")
    messages = [f"{f['where']}: {f['message']}" for f in mine]
    assert f"{src}: data: no frame_index column (all 2 episodes); made from row order" in messages
    assert f"{src}: data: all 2 episodes: timestamps start at 3 s, 12.5 s; rebased to 0" in messages
    assert f"finding: warning: lerobot: {src}: {CAM}: meta/info.json declares" in res.summary()
    assert CAM not in _info(out)["features"] and _info(out)["fps"] == FPS


@pytest.mark.slow
def test_strict_makes_the_findings_errors_and_publishes_nothing(tmp_path):
    src = _wild(tmp_path / "groot")
    work = tmp_path / "work"  # shared: the strict run after a lenient one reuses its store, and still refuses
    config = _config(tmp_path)

    def run(out: str, strict: bool):
        return (robodata.PipelineBuilder().source("lerobot", str(src), strict=strict).output(str(tmp_path / out))
                .options(work_dir=str(work), config=config).build().run())

    for lenient_first in (False, True):
        if lenient_first:
            assert run("lenient", False).published
        with pytest.raises(PipelineError) as err:
            run("strict", True)
        head, *found = str(err.value).splitlines()
        assert head == f"{src}: {len(found)} finding(s), and strict=True makes each an error; nothing published:"
        assert any(f.startswith(f"  warning: {src}: {CAM}: meta/info.json declares a video feature") for f in found)
        assert f"  warning: {src}: data: no frame_index column (all 2 episodes); made from row order" in found
        assert not (tmp_path / "strict").exists()
    clean = write_published_v21(tmp_path / "clean")  # no findings: strict publishes
    res = (robodata.PipelineBuilder().source("lerobot", str(clean), strict=True).output(str(tmp_path / "c"))
           .options(config=config).build().run())
    assert res.ok and res.episodes_out == 2 and not [f for f in res.findings if f["check"] == "lerobot"]
    assert CAM in _info(tmp_path / "c")["features"]


# ---- Isaac Lab recorder files: fps and quaternion order ---------------------------------------------------------


@pytest.mark.slow
def test_hdf5_reading_options_come_from_the_source_over_the_project_config(tmp_path):
    rec = write_isaaclab_recording(tmp_path / "rec" / "demo.hdf5", demos=1, frames=12, cameras=False)
    config = _config(tmp_path, sources=[{"pattern": "*.hdf5", "fps": 50, "quaternion_order": "wxyz"}])
    work = str(tmp_path / "work")  # one working store: a store read with other options is not reused

    def run(out: str, with_config: bool, **options):
        b = robodata.PipelineBuilder().source("hdf5", str(rec), **options).output(str(tmp_path / out))
        return b.options(work_dir=work, **({"config": config} if with_config else {})).build().run()

    plain = run("plain", False)
    assert plain.ok and _info(tmp_path / "plain")["fps"] == 30
    assert _note(plain, f"{rec}: no timestamps in the file: frames are 30 Hz apart")
    assert _note(plain, f"{rec}: quaternions wxyz (data"), plain.notes

    from_config = run("config", True)
    assert from_config.ok and _info(tmp_path / "config")["fps"] == 50
    assert _note(from_config, f"{rec}: no timestamps in the file: frames are 50 Hz apart")
    assert _note(from_config, f"{rec}: quaternions wxyz (setting)"), from_config.notes

    explicit = run("explicit", True, fps=25, quaternion_order="xyzw")  # the source's own options win
    assert explicit.ok and _info(tmp_path / "explicit")["fps"] == 25
    assert _note(explicit, f"{rec}: no timestamps in the file: frames are 25 Hz apart")
    assert _note(explicit, f"{rec}: quaternions xyzw (setting)"), explicit.notes
    assert explicit.frames_out == plain.frames_out == 12

    again = run("again", True)  # the store read with the config's options is reused, its notes with it
    assert again.ok and _info(tmp_path / "again")["fps"] == 50
    assert _note(again, f"{rec}: no timestamps in the file: frames are 50 Hz apart")
    assert len(list((tmp_path / "work" / "raw_teleop").glob("*.hdf5"))) == 3  # one store per way of reading it


# ---- quiet by default ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_python_api_run_prints_no_ray_chatter(tmp_path):
    rec = write_isaaclab_recording(tmp_path / "rec" / "demo.hdf5", demos=1, frames=12, cameras=False)
    script = ("import robodata, sys\n"
              f"r = robodata.pipeline(sources={str(rec)!r}, output=sys.argv[1]).run()\n"
              "print('published' if r.published else 'NOT published')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ROBODATA_VERBOSE", "RAY_DATA_VERBOSE", "ROBODATA_HOME", "ROBODATA_CONFIG")}
    env["PYTHONPATH"] = str(REPO)

    def run(out: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", script, str(tmp_path / out)], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=600)

    quiet = run("quiet")
    assert quiet.returncode == 0 and quiet.stdout.strip() == "published", quiet.stderr
    assert not [c for c in CHATTER if c in quiet.stderr], quiet.stderr
    log = (tmp_path / ".robodata" / "logs" / "robodata.log").read_text()  # the project home: ./.robodata here
    assert "Started a local Ray instance" in log

    loud = run("loud", RAY_DATA_VERBOSE="1")
    assert loud.returncode == 0 and loud.stdout.strip() == "published", loud.stderr
    assert "Started a local Ray instance" in loud.stderr
