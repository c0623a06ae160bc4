"""Atomic publish (robodata.atomic): files and folders appear complete under their final name, or not at all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robodata.atomic import (
    AtomicPath,
    AtomicWriteError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    find_debris,
    is_partial,
    partial_name,
    publish_path,
    sweep_debris,
)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_file_is_written_and_replaced(tmp_path):
    dest = tmp_path / "sub" / "out.txt"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".out.txt.partial-")
        assert not dest.exists()  # nothing under the final name while writing
        tmp.write_text("v1")
    assert dest.read_text() == "v1"
    atomic_write_text(dest, "v2")
    assert dest.read_text() == "v2"
    assert names(dest.parent) == ["out.txt"]


def test_bytes_and_json(tmp_path):
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "j.json", {"release": "r1", "n": 2})
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert json.loads((tmp_path / "j.json").read_text()) == {"release": "r1", "n": 2}
    assert (tmp_path / "j.json").read_text().endswith("\n")
    assert names(tmp_path) == ["b.bin", "j.json"]


def test_new_folder(tmp_path):
    dest = tmp_path / "ds"
    with atomic_path(dest, kind="dir") as tmp:
        assert tmp.is_dir()  # kind="dir" creates it
        (tmp / "meta").mkdir()
        (tmp / "meta" / "info.json").write_text("{}")
    assert (dest / "meta" / "info.json").read_text() == "{}"
    assert names(tmp_path) == ["ds"]


def test_replacing_an_existing_folder(tmp_path):
    dest = tmp_path / "ds"
    with atomic_path(dest) as tmp:  # kind=None: the body makes the folder
        tmp.mkdir()
        (tmp / "a").write_text("1")
    with atomic_path(dest, kind="dir") as tmp:
        (tmp / "b").write_text("2")
    assert names(dest) == ["b"]
    assert names(tmp_path) == ["ds"]  # neither the .partial- nor the moved-aside .old- folder is left


def test_a_file_may_replace_a_folder(tmp_path):
    dest = tmp_path / "x"
    dest.mkdir()
    (dest / "inner").write_text("old")
    atomic_write_text(dest, "now a file")
    assert dest.read_text() == "now a file"
    assert names(tmp_path) == ["x"]


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_an_error_in_the_block_leaves_dest_untouched(tmp_path, kind):
    dest = tmp_path / "out"
    if kind == "file":
        dest.write_text("old")
    else:
        dest.mkdir()
        (dest / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="crash mid-write"):
        with atomic_path(dest, kind=kind) as tmp:
            if kind == "file":
                tmp.write_text("half")
            else:
                (tmp / "new.txt").write_text("half")
            raise RuntimeError("crash mid-write")
    if kind == "file":
        assert dest.read_text() == "old"
    else:
        assert names(dest) == ["old.txt"] and (dest / "old.txt").read_text() == "old"
    assert names(tmp_path) == ["out"]  # no temporary debris


def test_nothing_written_or_the_wrong_kind_is_refused(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(AtomicWriteError, match=r"out\.txt: nothing was written"):
        with atomic_path(dest):
            pass
    with pytest.raises(AtomicWriteError, match=r"out\.txt: a file was to be written, got a folder"):
        with atomic_path(dest, kind="file") as tmp:
            tmp.mkdir()
    assert dest.read_text() == "old"
    assert names(tmp_path) == ["out.txt"]


def test_explicit_commit_and_abort(tmp_path):
    w = AtomicPath(tmp_path / "store.hdf5", kind="file")
    w.tmp.write_bytes(b"data")
    assert w.commit() == tmp_path / "store.hdf5"
    with pytest.raises(AtomicWriteError, match="already committed"):
        w.commit()
    w2 = AtomicPath(tmp_path / "other.hdf5", kind="file")
    w2.tmp.write_bytes(b"half")
    w2.abort()
    w2.abort()  # twice is fine
    assert names(tmp_path) == ["store.hdf5"]


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_killed_writer_leaves_only_a_partial_sibling(tmp_path, kind, existing):
    dest = tmp_path / "release"
    if existing:
        if kind == "file":
            dest.write_text("previous")
        else:
            dest.mkdir()
            (dest / "previous.txt").write_text("previous")
    script = textwrap.dedent(f"""
        import os, signal
        from robodata.atomic import atomic_path
        with atomic_path({str(dest)!r}, kind={kind!r}) as tmp:
            if {kind!r} == "file":
                f = open(tmp, "w"); f.write("half a file"); f.flush()
            else:
                (tmp / "half.txt").write_text("half a folder")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1], timeout=600)  # a hang guard
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if p.name != dest.name]
    assert len(left) == 1 and left[0].name.startswith(".release.partial-") and is_partial(left[0])
    if existing:  # the previous content is intact under the final name
        assert (dest.read_text() if kind == "file" else (dest / "previous.txt").read_text()) == "previous"
    else:  # nothing ever appeared under the final name
        assert not os.path.lexists(dest)
    # the temporary names its owner, now provably gone: the clean-up removes it, and only it
    (debris,) = find_debris(tmp_path)
    assert debris.path == left[0] and debris.gone and debris.owner.count("-") == 2
    assert sweep_debris(tmp_path)[0].path == left[0]
    assert [p.name for p in tmp_path.iterdir()] == (["release"] if existing else [])


def test_debris_of_live_writers_and_unknown_owners_is_kept(tmp_path):
    with atomic_path(tmp_path / "out.bin", kind="file") as tmp:  # this process: alive
        tmp.write_bytes(b"x")
        (tmp_path / ".old.partial-1a2b3c4d").write_text("no owner in the name (written before owners were)")
        found = {d.path.name: d for d in find_debris(tmp_path)}
        assert set(found) == {tmp.name, ".old.partial-1a2b3c4d"}
        assert not any(d.gone for d in found.values())
        assert sweep_debris(tmp_path) == []
    assert (tmp_path / "out.bin").read_bytes() == b"x"


def test_a_folder_swap_killed_between_its_renames_is_put_back(tmp_path):
    """(Where folders cannot be swapped in one step.) Killed after moving the old folder aside and before moving
    the new one in: the destination is missing,
    the previous content is under the .old- name; the clean-up moves it back rather than deleting it."""
    dest = tmp_path / "shard"
    dest.mkdir()
    (dest / "previous.txt").write_text("previous")
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from robodata import atomic
        real = os.replace
        def replace(src, dst):
            real(src, dst)
            if ".old-" in Path(dst).name:
                os.kill(os.getpid(), signal.SIGKILL)
        atomic.os.replace = replace
        atomic._exchange = lambda a, b: False  # a system without renameat2: the two-rename fallback
        with atomic.atomic_path({str(dest)!r}, kind="dir") as tmp:
            (tmp / "new.txt").write_text("new")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1], timeout=600)  # a hang guard
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists()
    (old,) = [d for d in find_debris(tmp_path) if d.restores is not None]
    assert old.restores == dest and old.gone
    sweep_debris(tmp_path)
    assert (dest / "previous.txt").read_text() == "previous" and find_debris(tmp_path) == []


def test_a_name_too_long_for_a_temporary_is_shortened(tmp_path):
    dest = tmp_path / ("n" * 250 + ".hdf5")  # 255 bytes: the longest name a file system takes
    with atomic_path(dest, kind="file") as tmp:
        assert len(tmp.name.encode()) <= 255 and tmp.name.endswith(".hdf5") and is_partial(tmp)
        tmp.write_bytes(b"ok")
    assert dest.read_bytes() == b"ok"


def test_publish_path_swaps_a_staged_folder_in(tmp_path):
    dest = tmp_path / "release"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    staged = partial_name(dest)
    staged.mkdir()
    (staged / "new.txt").write_text("new")
    publish_path(staged, dest)
    assert names(dest) == ["new.txt"]
    assert names(tmp_path) == ["release"]


def test_a_folder_replaces_another_in_one_swap(tmp_path, monkeypatch):
    """On Linux the old and new folders are exchanged in one renameat2 call: no moment without the folder,
    no .old- sibling ever made (the two-rename fallback, tested above, is what other systems get)."""
    from robodata import atomic

    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux-only")
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    assert atomic._exchange(tmp_path / "x", tmp_path / "y")  # the system can swap here
    dest = tmp_path / "shard"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    moves = []
    real = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (moves.append((a, b)), real(a, b)))
    with atomic_path(dest, kind="dir") as tmp:
        (tmp / "new.txt").write_text("new")
    assert names(dest) == ["new.txt"] and moves == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard", "x", "y"]
