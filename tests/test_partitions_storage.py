"""Partition keys for awkward file names, and the atomic data store."""

from __future__ import annotations

import pytest

from robodata.partitions import HASH_LEN, MAX_SLUG, content_digest, is_valid_key, recording_key, slugify
from robodata.storage import DataStore


@pytest.mark.parametrize(
    "name",
    ["my bag (1).mcap", "über…teleop,run.bag", "../../etc/passwd.db3", "...", " \t\x01weird\n.h5", "ロボット.mcap",
     "robot-17/2026-12-01/run 3.mcap", "a" * 200 + "/" + "b" * 200 + ".mcap"],
)
def test_keys_are_safe(name):
    key = recording_key(name, (123, 4.5, ""))
    assert is_valid_key(key), key
    assert len(key) <= MAX_SLUG + 1 + HASH_LEN
    for bad in ("...", ",", " ", "/", "\n", "\x01"):
        assert bad not in key


def test_keys_follow_the_landed_identity():
    k = recording_key("robot-1/a.mcap", (10, 1.0, ""))
    assert k == recording_key("robot-1/a.mcap", (10, 1.0, ""))  # deterministic: a re-landed file is found again
    assert k.startswith("robot-1-a-mcap-")
    others = {recording_key("robot-1/a.mcap", (11, 1.0, "")), recording_key("robot-1/a.mcap", (10, 2.0, "")),
              recording_key("robot-1/a.mcap", (10, 1.0, "etag")), recording_key("robot-2/a.mcap", (10, 1.0, "")),
              recording_key("robot-1/a.mcap", (10, 1.0, ""), salt=1)}
    assert k not in others and len(others) == 5
    assert slugify("x" * 100, keep_end=True) == "x" * MAX_SLUG


def test_content_digest_is_128_bits_over_bytes_and_names(tmp_path):
    a, c = tmp_path / "a.mcap", tmp_path / "c.mcap"
    a.write_bytes(b"hello")
    c.write_bytes(b"hellp")
    assert len(content_digest(a)) == 32 and content_digest(a) == content_digest(a)
    assert content_digest(a) != content_digest(c)
    bag1, bag2 = tmp_path / "bag1", tmp_path / "bag2"
    for d, name in ((bag1, "x_0.mcap"), (bag2, "y_0.mcap")):
        d.mkdir()
        (d / name).write_bytes(b"same")
    assert content_digest(bag1) != content_digest(bag2)  # a folder's digest covers its files' names too


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
