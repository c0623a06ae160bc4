"""Partition keys for awkward file names, and the atomic data store."""

from __future__ import annotations

import pytest

from robodata.partitions import is_valid_key, recording_key, slugify
from robodata.storage import DataStore


@pytest.mark.parametrize(
    "name",
    ["my bag (1).mcap", "über…teleop,run.bag", "../../etc/passwd.db3", "...", " \t\x01weird\n.h5", "ロボット.mcap"],
)
def test_keys_are_safe(tmp_path, name):
    f = tmp_path / "x.bin"
    f.write_bytes(name.encode())
    key = recording_key(tmp_path / "x.bin").replace("x-bin", slugify(name))
    assert is_valid_key(key), key
    for bad in ("...", ",", " ", "/", "\n", "\x01"):
        assert bad not in key


def test_same_content_same_key(tmp_path):
    a, b = tmp_path / "a.mcap", tmp_path / "b"
    a.write_bytes(b"hello")
    b.mkdir()
    assert recording_key(a) == recording_key(a)
    c = tmp_path / "c.mcap"
    c.write_bytes(b"hellp")
    assert recording_key(a).split("-")[-1] != recording_key(c).split("-")[-1]


def test_atomic_write_keeps_old_on_failure(tmp_path):
    store = DataStore(tmp_path / "store")
    with store.write_path("tier/out.txt") as p:
        p.write_text("v1")
    assert store.local_path("tier/out.txt").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with store.write_path("tier/out.txt") as p:
            p.write_text("half")
            raise RuntimeError("crash mid-write")
    assert store.local_path("tier/out.txt").read_text() == "v1"
    assert [x.name for x in (tmp_path / "store" / "tier").iterdir()] == ["out.txt"]  # no partial left behind
    # Folders are replaced atomically too.
    with store.write_path("tier/ds") as p:
        p.mkdir()
        (p / "a").write_text("1")
    with store.write_path("tier/ds") as p:
        p.mkdir()
        (p / "b").write_text("2")
    assert sorted(x.name for x in store.local_path("tier/ds").iterdir()) == ["b"]


def test_fsspec_memory_store():
    store = DataStore("memory://robodata-test")
    with store.write_path("x/y.txt") as p:
        p.write_text("remote")
    assert store.exists("x/y.txt")
    with store.read_path("x/y.txt") as p:
        assert p.read_text() == "remote"
