"""The bare library installs and works on its own: the wheel, in a clean venv without Dagster, Ray, torch or MuJoCo,
converts a real ROS 1 bag to a LeRobot v3.0 dataset; commands of the other layers name the extra to install.

The wheel is built from a clean copy of this tree and installed with the base dependencies from PyPI (through
pip's cache), exactly as ``pip install robodata`` would. ``benchmarks/install_sizes.py`` measures each layer.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from benchmarks.install_sizes import build_wheel, make_venv, pip_install

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]
TURTLE_MAP = REPO / "tests" / "data" / "turtlesim_topic_map.yaml"
HEAVY = ("dagster", "ray", "torch", "mujoco", "lerobot", "mlflow", "great_expectations", "gymnasium")
LIBRARY = ("robodata.cli", "robodata.config", "robodata.readers", "robodata.ingest", "robodata.inspect",
           "robodata.sync", "robodata.formats", "robodata.lerobot", "robodata.lerobot.cli", "robodata.api")


class Bare:
    """The clean venv with only ``pip install robodata.whl``; commands run outside the checkout."""

    def __init__(self, root: Path):
        self.root = root
        self.venv = root / "venv"
        self.python = make_venv(self.venv)
        self.bin = self.venv / "bin"
        self.work = root / "work"
        self.work.mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "ROBODATA_HOME", "ROBODATA_CONFIG")}
        self.env.update(PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(self.venv))

    def run(self, *argv: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), cwd=cwd or self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def robodata(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin / "robodata"), *args, cwd=cwd)

    def py(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.python), "-c", code)


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Bare:
    root = tmp_path_factory.mktemp("bare")
    wheel = build_wheel(root / "wheel")
    env = Bare(root)
    proc = pip_install(env.python, str(wheel), timeout=1200)
    assert proc.returncode == 0, f"pip install {wheel.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return env


@pytest.fixture(scope="module")
def topic_map(bare: Bare) -> Path:
    """The turtlesim map on a uniform 50 Hz clock: LeRobot needs an integer fps (the pose topic runs at 62.5 Hz)."""
    tm = yaml.safe_load(TURTLE_MAP.read_text())
    tm.update(fps=50, reference={"rate_hz": 50})
    path = bare.root / "turtlesim_50hz.yaml"
    path.write_text(yaml.safe_dump(tm, sort_keys=False))
    return path


def test_the_bare_install_has_no_heavy_layer(bare):
    for mod in HEAVY:
        proc = bare.py(f"import {mod}")
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, f"{mod} is installed in the bare venv"
    # The library itself imports, from the venv (not the checkout), and pulls in none of them.
    code = (f"import importlib, json, sys; [importlib.import_module(m) for m in {list(LIBRARY)!r}]; import robodata; "
            f"print(json.dumps([robodata.__file__, sorted(m for m in sys.modules if m.split('.')[0] in {list(HEAVY)!r})]))")
    proc = bare.py(code)
    assert proc.returncode == 0, proc.stderr
    where, heavy = json.loads(proc.stdout)
    assert Path(where).is_relative_to(bare.venv) and heavy == []
    site = Path(bare.py("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    assert (site / "robodata_dagster" / "commands.py").is_file() and (site / "robodata_dagster" / "assets").is_dir()
    squatted = [name for name in ("assets", "resources", "sensors") if (site / name).exists()]
    assert squatted == [], f"the wheel installs top-level packages {squatted}"


def test_the_bare_cli_converts_a_real_bag(bare, realdata, topic_map):
    bag = realdata / "rosbag_js" / "example.bag"
    helped = bare.robodata("--help")
    assert helped.returncode == 0, helped.stderr
    assert all(c in helped.stdout for c in ("convert", "validate", "inspect", "record", "demo"))

    looked = bare.robodata("inspect", str(bag))
    assert looked.returncode == 0 and "turtlesim/msg/Pose" in looked.stdout, looked.stderr

    out = bare.work / "turtles"
    conv = bare.robodata("convert", str(bag), str(out), "--topic-map", str(topic_map))
    assert conv.returncode == 0, conv.stderr
    assert "Traceback" not in conv.stderr and "1 episodes" in conv.stdout
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50 and info["robot_type"] == "turtlesim"
    assert info["total_episodes"] == 1 and info["total_frames"] > 1000  # 21.5 s at 50 Hz, a few dropped

    checked = bare.robodata("validate", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The same conversion in the full install (this test's own environment) gives the same dataset.
    from robodata.cli import main

    full = bare.root / "turtles-full"
    assert main(["convert", str(bag), str(full), "--topic-map", str(topic_map)]) == 0
    full_info = json.loads((full / "meta" / "info.json").read_text())
    assert {k: full_info[k] for k in ("total_episodes", "total_frames", "features")} == {
        k: info[k] for k in ("total_episodes", "total_frames", "features")}


def test_the_home_is_in_the_current_folder_not_in_site_packages(bare, tmp_path):
    """With no robodata.yaml the project home is ./.robodata where the command runs, never in the package."""
    site = Path(bare.py("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()) / "robodata"
    before = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    proc = bare.robodata("landing", "status", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    home = tmp_path / ".robodata"
    assert f"landing zone {home / 'landing'}" in proc.stdout
    assert (home / "registry.sqlite3").is_file() and (home / "landing").is_dir()
    after = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == before and not (site / ".robodata").exists(), set(after) - set(before)

    # A config file elsewhere: its relative home is next to it, wherever the command runs.
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "robodata.yaml").write_text("home: h\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = bare.robodata("--config", str(proj / "robodata.yaml"), "landing", "status", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (proj / "h" / "registry.sqlite3").is_file() and list(work.iterdir()) == []


@pytest.mark.parametrize(("argv", "extra"), [
    (["record", "rec"], "sim"),
    (["augment", "in.hdf5", "out.hdf5"], "train"),
    (["demo"], "platform"),
    (["ingest", "some.bag"], "platform"),
    (["run", "pipeline.yaml"], "ray"),
], ids=["record", "augment", "demo", "ingest", "run"])
def test_commands_of_other_layers_name_the_extra(bare, realdata, topic_map, argv, extra):
    if argv[0] == "run":
        (bare.work / "pipeline.yaml").write_text(yaml.safe_dump({
            "sources": [{"path": str(realdata / "rosbag_js" / "example.bag"), "topic_map": str(topic_map)}],
            "output": str(bare.work / "pipeline-out"),
        }))
    proc = bare.robodata(*argv)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"error: robodata {argv[0]}") and f"pip install 'robodata[{extra}]'" in lines[0]
    if argv[0] == "record":
        assert lines[0] == "error: robodata record needs the simulator: pip install 'robodata[sim]'"
        assert not (bare.work / "rec").exists()
