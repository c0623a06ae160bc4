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


def test_fleet_partition_from_the_landed_path():
    import datetime as dt

    from robodata.partitions import fleet_partition

    now = dt.datetime(2026, 12, 1, 15, tzinfo=dt.UTC).timestamp()
    mtime = dt.datetime(2026, 11, 20, 23, 59, tzinfo=dt.UTC).timestamp()

    def part(rel, prefixes=("",), m=mtime):
        return fleet_partition(rel, m, prefixes=list(prefixes), start_date="2026-01-01", default_robot="default",
                               now=now)

    assert part("robot-17/2026-12-01/run 3.mcap").key == "2026-12-01|robot-17"
    assert part("2026-11-30/robot-3/bag_a/").key == "2026-11-30|robot-3"  # date first, a ROS 2 bag folder
    assert part("fleet/arm 9/2026/11/02/x.bag", ("fleet",)).key == "2026-11-02|arm-9"  # YYYY/MM/DD, prefix off
    assert part("r1/rosbag2_2026_10_03-12_00_00/").key == "2026-10-03|r1"  # rosbag2's default bag name
    assert part("r1/20261004/x.mcap").key == "2026-10-04|r1"
    # no date in the path: the day the file was last written (UTC); no robot folder: the default robot
    assert part("loose.mcap").key == "2026-11-20|default"
    assert part("robot-2/notes/x.mcap").key == "2026-11-20|robot-2"
    # outside the daily dimension (before start_date, a clock far ahead): the day it landed, said in the note
    old = part("r1/2019-01-01/x.mcap")
    assert old.key == "2026-12-01|r1" and "2019-01-01" in old.note and "landing.start_date" in old.note
    assert part("r1/x.mcap", m=now + 10 * 86400).key == "2026-12-01|r1"
    assert part("r1/2026-12-02/x.mcap").note == ""  # tomorrow is a partition (a robot ahead of UTC)
    assert part("r1/2026-02-30/x.mcap").key == "2026-11-20|r1"  # not a date: the mtime's day


def test_registry_made_before_partitions_gets_the_column(tmp_path):
    import sqlalchemy as sa

    from robodata.registry import RECORDINGS, Registry

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:  # the recordings table as it was before robot x day partitions
        c.execute(sa.text("CREATE TABLE robodata_recordings (key VARCHAR(256) PRIMARY KEY, zone VARCHAR(1024) NOT "
                          "NULL, path VARCHAR(2048) NOT NULL, size BIGINT NOT NULL, mtime FLOAT NOT NULL, etag "
                          "VARCHAR(256) NOT NULL, registered_at FLOAT NOT NULL, tick INTEGER NOT NULL, status "
                          "VARCHAR(16) NOT NULL, digest VARCHAR(64), duplicate_of VARCHAR(256), note VARCHAR(2048) "
                          "NOT NULL)"))
        c.execute(sa.text("INSERT INTO robodata_recordings VALUES ('k', 'z', 'p', 1, 1.0, '', 1.0, 1, 'ingested', "
                          "NULL, NULL, '')"))
    eng.dispose()
    reg = Registry(url)
    assert {c["name"] for c in sa.inspect(reg.engine).get_columns(RECORDINGS.name)} >= {"partition_key"}
    assert reg.lookup("k").partition_key == "" and reg.partitions() == {}
