"""The landing zone at fleet scale: nested prefixes, metadata-only ticks, bounded state, content claims.

These drive :class:`robodata.landing.Scanner` (what the ``new_recordings`` sensor runs each tick) against a
real folder, a real S3-compatible server and a real SQLite registry; ``now`` is passed explicitly so that
"settled" never depends on the machine's speed.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from robodata.config import LandingConfig
from robodata.landing import LandingZone, Scanner
from robodata.registry import DUPLICATE, FAILED, INGESTED, REGISTERED, SUPERSEDED, Registry
from tests.conftest import moto_server, s3_filesystem
from tests.recordings import make_mcap


def _scanner(tmp_path: Path, zone_url: str | None = None, **settings) -> Scanner:
    zone = LandingZone(zone_url or str(tmp_path / "landing"), prefixes=settings.pop("prefixes", None))
    reg = Registry(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    return Scanner(zone, reg, LandingConfig(**settings))


def _put(root: Path, rel: str, data: bytes = b"", age: float = 60.0) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    t = time.time() - age
    os.utime(p, (t, t))
    return p


class Ticks:
    """Consecutive ticks of one scanner, as the sensor's cursor numbers them."""

    def __init__(self, sc: Scanner):
        self.sc, self.n = sc, 0

    def __call__(self, *, full: bool = False, now: float | None = None):
        self.n += 1
        return self.sc.scan(self.n, full=full, now=now)


def _mcap_bytes(tmp_path: Path, frames: int = 20) -> bytes:
    return make_mcap(tmp_path / f"src{frames}.mcap", frames).read_bytes()


def test_nested_prefixes_two_ticks_then_once(tmp_path):
    sc = _scanner(tmp_path, prefixes=["robot-01", "robot-02"])
    root = sc.zone.local_root
    data = _mcap_bytes(tmp_path)
    _put(root, "robot-01/2026-12-01/a.mcap", data)
    _put(root, "robot-02/2026-12-01/deep/b.mcap", data + b"")  # same bytes: the tick cannot tell, the run will
    _put(root, "robot-99/2026-12-01/c.mcap", data)  # not a watched prefix
    _put(root, "robot-01/2026-12-01/notes.txt", b"hello")
    tick = Ticks(sc)
    first = tick()
    assert first.new == [] and sorted(first.writing) == ["robot-01/2026-12-01/a.mcap",
                                                         "robot-02/2026-12-01/deep/b.mcap"]
    second = tick()
    assert sorted(r.path for r in second.new) == ["robot-01/2026-12-01/a.mcap", "robot-02/2026-12-01/deep/b.mcap"]
    keys = [r.key for r in second.new]
    assert len(set(keys)) == 2 and all(k.startswith("robot-0") for k in keys)
    third = tick()
    assert third.new == [] and third.writing == []
    assert third.folders_listed == 0 and third.folders_skipped >= 4  # nothing changed: no folder listed
    # a new file lists only its own folder
    _put(root, "robot-02/2026-12-02/d.mcap", data)
    fourth = tick()
    assert fourth.writing == ["robot-02/2026-12-02/d.mcap"] and fourth.folders_listed == 2  # robot-02 and the new day
    assert [r.path for r in tick().new] == ["robot-02/2026-12-02/d.mcap"]
    assert sc.registry.counts() == {REGISTERED: 3}


def test_growing_file_waits_until_unchanged_and_complete(tmp_path):
    sc = _scanner(tmp_path)
    root = sc.zone.local_root
    data = _mcap_bytes(tmp_path)
    p = _put(root, "r/a.mcap", data[:1000])
    tick = Ticks(sc)
    now = time.time()
    assert tick(now=now).writing == ["r/a.mcap"]
    assert tick(now=now).writing == ["r/a.mcap"]  # unchanged but no MCAP footer: still being written
    with open(p, "ab") as fh:  # the writer resumes after a long pause
        fh.write(data[1000:])
    t = now - 60
    os.utime(p, (t, t))
    assert tick(now=now).writing == ["r/a.mcap"]  # the size changed since the last tick
    assert [r.path for r in tick(now=now).new] == ["r/a.mcap"]
    # an incomplete file untouched for longer than stale_seconds is a crashed recorder: taken
    q = _put(root, "r/crashed.mcap", data[:500], age=3600)
    assert tick(now=now).writing == ["r/crashed.mcap"]
    assert [r.path for r in tick(now=now).new] == ["r/crashed.mcap"]
    assert q.exists()


def test_ros1_bag_and_hdf5_completeness(tmp_path, realdata):
    import h5py
    import numpy as np

    sc = _scanner(tmp_path)
    root = sc.zone.local_root
    bag = (realdata / "rosbag_js" / "example.bag").read_bytes()
    # rosbag writes index_pos = 0 in the header until it closes the bag
    i = bag.index(b"index_pos=") + len(b"index_pos=")
    open_bag = bag[:i] + struct.pack("<Q", 0) + bag[i + 8:]
    _put(root, "writing.bag", open_bag)
    _put(root, "done.bag", bag)
    h5 = root / "done.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("x", data=np.arange(10))
    _put(root, "half.h5", h5.read_bytes()[:200])
    t = time.time() - 60
    os.utime(h5, (t, t))
    tick = Ticks(sc)
    tick()
    rep = tick()
    assert sorted(r.path for r in rep.new) == ["done.bag", "done.h5"]
    assert sorted(rep.writing) == ["half.h5", "writing.bag"]


def test_links_special_files_and_hidden_names_are_refused_not_read(tmp_path):
    sc = _scanner(tmp_path)
    root = sc.zone.local_root
    root.mkdir(parents=True, exist_ok=True)
    (root / "zero.mcap").symlink_to("/dev/zero")
    outside = _put(tmp_path / "elsewhere", "secret.mcap", _mcap_bytes(tmp_path))
    (root / "outside.mcap").symlink_to(outside)
    os.mkfifo(root / "pipe.bag")
    _put(root, ".hidden.mcap", _mcap_bytes(tmp_path))
    _put(root, ".x.mcap.partial-0a1b2c3d.mcap", b"ours, in progress")  # silently skipped
    tick = Ticks(sc)
    rep = tick()
    assert rep.new == [] and rep.writing == []
    reasons = "\n".join(rep.refused)
    assert "zero.mcap: a symbolic link" in reasons and "outside.mcap: a symbolic link" in reasons
    assert "pipe.bag: not a regular file" in reasons
    assert ".hidden.mcap: hidden name" in reasons and "partial" not in reasons
    again = tick()  # refused once, said once; `robodata landing status` lists them
    assert again.refused == [] and again.new == []
    assert sc.registry.landed_counts(sc.zone.url)["refused"] == 4


def test_changed_in_place_is_superseded_and_vanished_is_dropped(tmp_path):
    sc = _scanner(tmp_path)
    root = sc.zone.local_root
    data = _mcap_bytes(tmp_path)
    p = _put(root, "a.mcap", data)
    _put(root, "gone.mcap", data[:10])
    tick = Ticks(sc)
    tick()
    (old,) = tick().new
    (root / "gone.mcap").unlink()
    rep = tick()
    assert rep.vanished == ["gone.mcap"]
    # rewritten in place with other bytes of the same size: only a full scan re-checks registered files
    p.write_bytes(_mcap_bytes(tmp_path, 25))
    t = time.time() - 60
    os.utime(p, (t, t))
    assert tick().new == []
    rep = tick(full=True)
    assert rep.changed == ["a.mcap"]
    (new,) = tick().new
    assert new.key != old.key and new.path == old.path
    assert sc.registry.lookup(old.key).status == SUPERSEDED


def test_budget_per_tick_and_no_duplicate_requests(tmp_path):
    sc = _scanner(tmp_path, max_new_per_tick=2)
    root = sc.zone.local_root
    for i in range(5):
        _put(root, f"robot-1/2026-12-01/r{i}.mcap", _mcap_bytes(tmp_path))
    tick = Ticks(sc)
    tick()
    seen: list[str] = []
    for _ in range(6):
        seen += [r.key for r in tick().new]
    assert len(seen) == 5 and len(set(seen)) == 5


def test_recent_days_skips_old_date_folders_between_full_scans(tmp_path):
    sc = _scanner(tmp_path, recent_days=2)
    root = sc.zone.local_root
    data = _mcap_bytes(tmp_path)
    import datetime as dt

    today = dt.datetime.now(dt.UTC).date()
    old, new = f"robot-1/{today - dt.timedelta(days=30)}/old.mcap", f"robot-1/{today}/new.mcap"
    _put(root, old, data)
    _put(root, new, data)
    tick = Ticks(sc)
    tick()
    assert [r.path for r in tick().new] == [new]
    tick(full=True)
    assert [r.path for r in tick(full=True).new] == [old]


def test_key_clash_is_resalted_never_merged(tmp_path, monkeypatch):
    import robodata.landing as landing_mod

    real = landing_mod.recording_key
    monkeypatch.setattr(landing_mod, "recording_key", lambda rel, ident, salt=0: real("same", (0,), salt))
    sc = _scanner(tmp_path)
    root = sc.zone.local_root
    _put(root, "a.mcap", _mcap_bytes(tmp_path))
    _put(root, "b.mcap", _mcap_bytes(tmp_path, 30))
    tick = Ticks(sc)
    tick()
    rep = tick()
    assert len({r.key for r in rep.new}) == 2 and {r.path for r in rep.new} == {"a.mcap", "b.mcap"}


def test_content_claims(tmp_path):
    from robodata.registry import Recording

    reg = Registry(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    with reg.engine.begin() as conn:
        for k in ("k1", "k2", "k3"):
            reg.add_recording(conn, Recording(k, "zone", f"{k}.mcap", 10, 0.0, "", 0.0, 1, REGISTERED))
    assert reg.claim_content("k1", "d" * 32, 10).is_mine("k1")
    assert reg.claim_content("k1", "d" * 32, 10).is_mine("k1")  # a re-run of the owner
    c = reg.claim_content("k2", "d" * 32, 10)
    assert c.owner == "k1" and not c.is_mine("k2")
    reg.set_status("k2", DUPLICATE, duplicate_of="k1")
    reg.set_status("k1", FAILED)
    c = reg.claim_content("k3", "d" * 32, 10)  # the owner failed: the next copy takes the bytes over
    assert c.is_mine("k3") and c.taken_over
    reg.set_status("k3", INGESTED)
    assert reg.counts() == {FAILED: 1, DUPLICATE: 1, INGESTED: 1}


@pytest.mark.slow
def test_s3_landing_nested_listing_and_etags(tmp_path):
    with moto_server() as env:
        os.environ.update(env)
        try:
            fs = s3_filesystem(env)
            fs.mkdir("fleet")
            data = _mcap_bytes(tmp_path)
            src = tmp_path / "x.mcap"
            src.write_bytes(data)
            for rel in ("robot-07/2026-12-01/a.mcap", "robot-07/2026-12-01/b.mcap", "robot-08/2026-12-01/c.mcap"):
                fs.put(str(src), f"fleet/landing/{rel}")
            sc = _scanner(tmp_path, "s3://fleet/landing", settle_seconds=0)
            tick = Ticks(sc)
            assert len(tick().writing) == 3
            rep = tick()
            assert sorted(r.path for r in rep.new) == ["robot-07/2026-12-01/a.mcap", "robot-07/2026-12-01/b.mcap",
                                                       "robot-08/2026-12-01/c.mcap"]
            assert all(r.etag for r in rep.new)  # the store's checksum is part of the identity
            assert tick().new == []
            # an object replaced under the same name (new ETag): a full scan supersedes the old recording
            src.write_bytes(_mcap_bytes(tmp_path, 33))
            fs.put(str(src), "fleet/landing/robot-07/2026-12-01/a.mcap")
            assert tick(full=True).changed == ["robot-07/2026-12-01/a.mcap"]
            (new,) = tick().new
            assert new.path == "robot-07/2026-12-01/a.mcap"
            # a bucket that cannot be listed: one clear error naming it; the registry is untouched
            rep = Scanner(LandingZone("s3://no-such-bucket/landing"), sc.registry,
                          LandingConfig(settle_seconds=0)).scan(100, full=True)
            assert rep.new == [] and len(rep.errors) == 1
            assert "s3://no-such-bucket/landing" in rep.errors[0] and "retried next tick" in rep.errors[0]
        finally:
            for k in env:
                os.environ.pop(k, None)


def test_full_scan_spans_ticks_and_resumes(tmp_path):
    sc = _scanner(tmp_path)
    root = sc.zone.local_root
    for r in range(3):
        for d in range(3):
            _put(root, f"robot-{r}/2026-11-0{d + 1}/a.mcap", b"\x89MCAP0\r\n")
    tick = Ticks(sc)
    tick()
    assert len(tick().new) == 9
    # a full scan with no time at all does one folder per tick and resumes where it stopped
    points, rep = [], None
    for _ in range(40):
        rep = sc.scan(100, full=True, resume_after=points[-1] if points else "", deadline_s=1e-9)
        if not rep.resume_point:
            break
        points.append(rep.resume_point)
    assert rep is not None and not rep.more and rep.folders_listed == 1  # the last tick finished the last folder
    assert points[0] == "." and len(points) == len(set(points)) == 12  # 13 folders: the root, 3 robots, 9 days
    assert points == sorted(points, key=lambda p: () if p == "." else tuple(p.split("/")))


def test_landing_status_lists_every_object_not_taken(tmp_path, capsys):
    import yaml

    from robodata.cli import main
    from robodata.config import load_config
    from robodata.landing import landing_zone

    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({"home": str(tmp_path / "proj")}))
    cfg = load_config(cfg_file)
    zone = landing_zone(cfg)
    sc = Scanner(zone, Registry(cfg.registry_url), cfg.landing)
    _put(zone.local_root, "robot-1/2026-12-01/ok.mcap", _mcap_bytes(tmp_path))
    _put(zone.local_root, "robot-1/2026-12-01/half.mcap", b"\x89MCAP0\r\n partial")
    (zone.local_root / "robot-1" / "2026-12-01" / "link.mcap").symlink_to("/dev/zero")
    sc.scan(1, full=True)
    sc.scan(2, full=False)
    assert main(["--config", str(cfg_file), "landing", "status"]) == 0
    out = capsys.readouterr().out
    assert "1 registered" in out and "1 waiting" in out and "1 refused" in out
    assert "robot-1/2026-12-01/half.mcap" in out and "robot-1/2026-12-01/link.mcap  (a symbolic link" in out
    assert "partitions:     1 robot x day (1 robots, 2026-12-01 .. 2026-12-01)" in out
    (rec,) = Registry(cfg.registry_url).recordings()
    assert rec.partition_key == "2026-12-01|robot-1"  # decided at registration, from the path


def test_ros2_bag_folder_is_one_recording_once_rosbag2_closes_it(tmp_path, realdata):
    import shutil

    sc = _scanner(tmp_path)
    root = sc.zone.local_root
    src = realdata / "rosbag2" / "rosbag2_tests" / "resources" / "mcap" / "cdr_test"  # a real rosbag2 bag
    bag = root / "robot-3" / "2026-12-01" / src.name
    bag.mkdir(parents=True)
    for f in src.iterdir():
        if f.name != "metadata.yaml":
            shutil.copy2(f, bag / f.name)
    tick = Ticks(sc)
    said = []
    for _ in range(3):  # storage files complete, metadata.yaml not written yet: a bag still being recorded
        rep = tick()
        assert rep.new == []
        said += rep.writing
    assert any("ROS 2 bag still being recorded" in w for w in said)
    shutil.copy2(src / "metadata.yaml", bag / "metadata.yaml")
    t = time.time() - 60
    for f in [*bag.iterdir(), bag]:
        os.utime(f, (t, t))
    tick()
    (rec,) = tick().new
    assert rec.path == f"robot-3/2026-12-01/{src.name}"
    assert sc.registry.counts() == {REGISTERED: 1}


def test_ingest_run_hashes_claims_and_names_a_vanished_file(tmp_path):
    import yaml

    from robodata.config import load_config
    from robodata.landing import LandingError, landing_zone
    from robodata.stages.recordings import ingest_registered
    from tests.recordings import SMALL_TOPIC_MAP

    (tmp_path / "map.yaml").write_text(yaml.safe_dump(SMALL_TOPIC_MAP))
    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({"home": str(tmp_path / "proj"),
                                        "sources": [{"pattern": "*.mcap", "topic_map": "map.yaml"}]}))
    cfg = load_config(cfg_file)
    zone = landing_zone(cfg)
    reg = Registry(cfg.registry_url)
    sc = Scanner(zone, reg, cfg.landing)
    data = _mcap_bytes(tmp_path, 30)
    _put(zone.local_root, "robot-1/2026-12-01/a.mcap", data)
    _put(zone.local_root, "robot-2/2026-12-01/b.mcap", data)
    _put(zone.local_root, "robot-3/2026-12-01/gone.mcap", _mcap_bytes(tmp_path, 31))
    sc.scan(1, full=True)
    keys = {r.path.split("/")[0]: r.key for r in sc.scan(2, full=False).new}
    outcome, summary = ingest_registered(cfg, keys["robot-1"])
    assert outcome is not None and outcome.published and len(summary["digest"]) == 32
    assert reg.lookup(keys["robot-1"]).status == INGESTED
    outcome, summary = ingest_registered(cfg, keys["robot-2"])  # the same bytes from another robot
    assert outcome is None and summary["duplicate_of"] == keys["robot-1"]
    assert reg.lookup(keys["robot-2"]).status == DUPLICATE
    (zone.local_root / "robot-3/2026-12-01/gone.mcap").unlink()  # vanished between the tick and the run
    with pytest.raises(LandingError, match=r"robot-3/2026-12-01/gone\.mcap: the landed recording is gone"):
        ingest_registered(cfg, keys["robot-3"])
    assert reg.lookup(keys["robot-3"]).status == FAILED
