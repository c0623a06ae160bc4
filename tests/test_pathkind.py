"""``robodata.pathkind``: one detection of what a path is, and the readers, ingest, inspect and convert agree with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robodata.errors import RobodataError
from robodata.ingest import IngestError, ingest_recording, is_hdf5
from robodata.pathkind import (
    HDF5_SUFFIXES,
    KINDS,
    RECORDINGS,
    PathKind,
    PathKindError,
    detect,
    find_rosbag2_folder,
    kind_of,
    require,
)
from robodata.readers import RecordingError, is_recording, open_recording

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
R2 = REALDATA / "rosbag2"


@pytest.fixture
def paths(tmp_path):
    """One path of every kind (and some that are none), made of empty files and marker files."""
    def touch(rel: str, text: str = "") -> Path:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    touch("bagdir/metadata.yaml")
    touch("bagdir/bagdir_0.db3")
    touch("bagdir/bagdir_1.mcap")
    touch("lerobot/meta/info.json", json.dumps({"codebase_version": "v2.1", "fps": 30}))
    touch("broken_lerobot/meta/info.json", "{not json")
    (tmp_path / "plain").mkdir()
    (tmp_path / "dir.mcap").mkdir()
    return {
        "run.mcap": (touch("run.mcap"), PathKind.MCAP),
        "run.bag": (touch("run.bag"), PathKind.ROS1_BAG),
        "bagdir": (tmp_path / "bagdir", PathKind.ROS2_BAG),
        "bagdir/bagdir_0.db3": (tmp_path / "bagdir" / "bagdir_0.db3", PathKind.ROS2_BAG),
        "bagdir/bagdir_1.mcap": (tmp_path / "bagdir" / "bagdir_1.mcap", PathKind.MCAP),  # the file, as MCAP
        "lone.db3": (touch("lone.db3"), PathKind.ROS2_BAG),
        "demos.hdf5": (touch("demos.hdf5"), PathKind.ISAACLAB_HDF5),
        "demos.H5": (touch("demos.H5"), PathKind.ISAACLAB_HDF5),
        "demos.he5": (touch("demos.he5"), PathKind.ISAACLAB_HDF5),
        "lerobot": (tmp_path / "lerobot", PathKind.LEROBOT),
        "broken_lerobot": (tmp_path / "broken_lerobot", PathKind.LEROBOT),
        "RUN.MCAP": (touch("RUN.MCAP"), None),  # recording suffixes are matched as the ROS tools write them
        "notes.txt": (touch("notes.txt"), None),
        "plain": (tmp_path / "plain", None),
        "dir.mcap": (tmp_path / "dir.mcap", None),
        "missing.bag": (tmp_path / "missing.bag", None),
    }


def test_every_kind_is_told_apart(paths):
    got = {name: kind_of(p) for name, (p, _) in paths.items()}
    assert got == {name: kind for name, (_, kind) in paths.items()}


def test_lerobot_reports_its_codebase_version(paths):
    assert detect(paths["lerobot"][0]).codebase_version == "v2.1"
    assert detect(paths["broken_lerobot"][0]).codebase_version is None  # the reader of the dataset says why
    assert detect(paths["run.bag"][0]).codebase_version is None


def test_the_table_tries_mcap_files_before_bag_folders():
    order = list(KINDS)
    assert order.index(PathKind.MCAP) < order.index(PathKind.ROS2_BAG)
    assert set(order) == set(PathKind) and RECORDINGS == {PathKind.MCAP, PathKind.ROS1_BAG, PathKind.ROS2_BAG}
    assert HDF5_SUFFIXES == (".hdf5", ".h5", ".he5")


def test_detect_among_tests_only_those_kinds(paths):
    assert detect(paths["demos.hdf5"][0], RECORDINGS) is None
    assert detect(paths["bagdir"][0], [PathKind.ROS2_BAG]).kind is PathKind.ROS2_BAG


def test_bag_folder_of_a_storage_file(paths):
    folder = paths["bagdir"][0]
    assert find_rosbag2_folder(folder) == folder
    assert find_rosbag2_folder(folder / "bagdir_0.db3") == folder
    assert find_rosbag2_folder(paths["lone.db3"][0]) is None


def test_require_names_the_path_and_what_was_expected(paths):
    with pytest.raises(PathKindError, match=r"missing.bag: no such file or folder$"):
        require(paths["missing.bag"][0])
    with pytest.raises(PathKindError) as e:
        require(paths["notes.txt"][0])
    assert str(e.value) == (
        f"{paths['notes.txt'][0]}: not something robodata reads (expected a .mcap file, a ROS 1 .bag, a ROS 2 bag "
        "folder, an Isaac Lab .hdf5 episode store, or a LeRobot dataset folder with meta/info.json)"
    )
    with pytest.raises(PathKindError) as e:
        require(paths["plain"][0])
    assert str(e.value) == (
        f"{paths['plain'][0]}: a folder, but not a ROS 2 bag folder (it has no metadata.yaml) "
        "nor a LeRobot dataset folder (it has no meta/info.json)"
    )
    with pytest.raises(PathKindError, match=r"demos.hdf5: not a recording \(expected a .mcap file, a ROS 1 .bag, or a"):
        require(paths["demos.hdf5"][0], RECORDINGS, what="a recording")
    with pytest.raises(PathKindError, match=r"notes.txt: not a store \(expected an Isaac Lab .hdf5 episode store\)$"):
        require(paths["notes.txt"][0], [PathKind.ISAACLAB_HDF5], what="a store")
    assert issubclass(PathKindError, RobodataError)
    info = require(paths["bagdir"][0], RECORDINGS)
    assert info.kind is PathKind.ROS2_BAG and info.is_recording and info.path == paths["bagdir"][0]


def test_size_of_a_folder_counts_every_file_under_it(paths):
    (paths["lerobot"][0] / "data" / "chunk-000").mkdir(parents=True)
    (paths["lerobot"][0] / "data" / "chunk-000" / "file-000.parquet").write_bytes(b"x" * 100)
    info = detect(paths["lerobot"][0])
    assert info.size_bytes == 100 + len(json.dumps({"codebase_version": "v2.1", "fps": 30}))


def test_readers_and_ingest_agree_with_the_table(paths, tmp_path):
    for name, (p, kind) in paths.items():
        assert is_recording(p) == (kind in RECORDINGS), name
        assert is_hdf5(p) == (kind is PathKind.ISAACLAB_HDF5), name
        if kind not in RECORDINGS:
            with pytest.raises(RecordingError) as e:
                open_recording(p)
            assert str(e.value).startswith(str(p)), e.value
        if kind is None or kind is PathKind.LEROBOT:
            with pytest.raises(IngestError) as e:
                ingest_recording(p, tmp_path / "out.hdf5")
            assert str(e.value).startswith(str(p)), e.value


def test_ingest_of_a_file_of_no_known_kind_says_what_it_takes(paths, tmp_path):
    with pytest.raises(IngestError) as e:
        ingest_recording(paths["notes.txt"][0], tmp_path / "o.hdf5")
    assert str(e.value) == (
        f"{paths['notes.txt'][0]}: not something robodata can ingest (expected a .mcap file, a ROS 1 .bag, "
        "a ROS 2 bag folder, or an Isaac Lab .hdf5 episode store)"
    )


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (REALDATA / "rosbag_js" / "example.bag", PathKind.ROS1_BAG),
        (R2 / "rosbag2_py/test/resources/mcap/wbag", PathKind.ROS2_BAG),
        (R2 / "rosbag2_py/test/resources/sqlite3/talker", PathKind.ROS2_BAG),
        (R2 / "rosbag2_py/test/resources/mcap/talker/talker.mcap", PathKind.MCAP),
        (REALDATA / "lerobot_v3_so101", PathKind.LEROBOT),
    ],
    ids=["ros1", "ros2-mcap", "ros2-sqlite3", "mcap", "lerobot"],
)
def test_real_recordings_and_datasets(path, kind):
    info = require(path)
    assert info.kind is kind
    if kind is PathKind.LEROBOT:
        assert info.codebase_version == "v3.0"
