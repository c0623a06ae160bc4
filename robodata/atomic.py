"""Atomic publish: write into a hidden temporary sibling, then move it over the destination in one step.

Every file or folder robodata publishes (episode stores, LeRobot datasets, clips, annotated copies) goes
through this one mechanism, so a reader, a sensor or a resumed run never sees a half-written output under
its final name::

    with atomic_path(dest) as tmp:        # tmp = dest's folder / ".<name>.partial-<hex>"
        write_everything_to(tmp)          # a file or a folder, whatever the body creates
    # here dest is the new content; had the body raised, dest would be untouched and tmp gone

The rules:

* The temporary path is a sibling of ``dest`` (same folder, hence same filesystem, so the final move is a
  rename and never a copy) named ``.<name>.partial-<hex>``: hidden, never the final name, and easy for
  listings and sensors to skip (anything containing ``.partial-`` is work in progress).
* A **file** replaces ``dest`` with one ``os.replace``: readers see the old file or the new one, nothing
  between, even if the process dies at any point.
* A **folder** cannot be renamed over a non-empty folder, so when ``dest`` already exists the two are
  swapped in one step (Linux ``renameat2(RENAME_EXCHANGE)``) and the old content, now at the temporary
  name, is deleted: readers see the old folder or the new one, never nothing. Where the system cannot swap,
  it is two renames: the old ``dest`` moves aside to ``.<name>.old-<owner>-<hex>``, the new folder moves to
  ``dest``, then the old one is deleted; between the two ``dest`` is briefly absent (never half-written), and
  a process killed exactly there leaves the previous content under the ``.old-`` name, which ``robodata
  doctor --fix`` moves back. When ``dest`` does not exist yet, a folder is published with a single rename.
* On an exception inside the block, the temporary path is removed and ``dest`` is left as it was.
* A killed writer (SIGKILL, an out-of-memory kill, a crash) leaves only its ``.partial-`` sibling behind,
  which a later run may delete; it never leaves anything under the final name.

This gives atomicity towards readers and crashed writers, not durability against power loss: nothing is
``fsync``-ed (the data may still sit in the page cache when the rename is visible).

For writers with a longer life than one ``with`` block (an HDF5 writer opened in ``__init__`` and published
by ``commit()``), :class:`AtomicPath` offers the same mechanism as explicit :meth:`~AtomicPath.commit` and
:meth:`~AtomicPath.abort` calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from robodata.errors import RobodataError

Kind = Literal["file", "dir"]

PARTIAL_MARK = ".partial-"
OLD_MARK = ".old-"


class AtomicWriteError(RobodataError):
    """An atomic write did not produce what it promised (nothing written, or a file where a folder was due)."""


_NAME_MAX = 255  # bytes in one path component (ext4, xfs, APFS; S3 keys allow more)


def _owner_token() -> str:
    from robodata.owner import Owner

    return Owner.me().token()


def _sibling(dest: Path, mark: str, suffix: str = "") -> Path:
    """``.<name><mark><owner>-<6 hex><suffix>``, the name cut short so the whole stays a valid file name.
    The owner (host, pid, process start: :mod:`robodata.owner`) lets a later clean-up prove it dead."""
    tail = f"{mark}{_owner_token()}-{uuid.uuid4().hex[:6]}{suffix}"
    room = _NAME_MAX - len(f".{tail}".encode())
    name = dest.name.encode()[:room].decode("utf-8", "ignore")
    return dest.with_name(f".{name}{tail}")


def partial_name(dest: str | os.PathLike[str]) -> Path:
    """A fresh temporary sibling of ``dest``: ``.<name>.partial-<owner>-<6 hex><suffix>`` in the same folder.

    The suffix of ``dest`` is kept at the end (``.rec.hdf5.partial-...-1a2b3c.hdf5``) because tools that write
    the staged file themselves add theirs otherwise: Isaac Lab's recorder appends ``.hdf5`` to an output
    path without it, and would write beside the staging path instead of at it. A name too long for that
    (up to 255 bytes) is shortened, never the cause of an error."""
    dest = Path(dest)
    return _sibling(dest, PARTIAL_MARK, dest.suffix[:16])


def is_partial(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is work in progress of an atomic write (a ``.partial-`` or ``.old-`` sibling)."""
    name = Path(path).name
    return name.startswith(".") and (PARTIAL_MARK in name or OLD_MARK in name)


def remove_path(path: Path) -> None:
    """Delete a file, symlink or folder tree at ``path`` if anything is there."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one step with Linux's ``renameat2(RENAME_EXCHANGE)`` (glibc 2.28+; ext4, xfs,
    btrfs, tmpfs); False where the system or file system cannot, and the caller falls back to two renames.
    Written here because Python's os module has no renameat2."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def publish_path(tmp: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Move the finished ``tmp`` over ``dest`` (same filesystem): one ``os.replace`` for a file, two renames when
    a folder replaces an existing ``dest`` (see the module docstring).

    For callers that stage and publish in separate steps (a store that may publish a staged folder under
    another name, e.g. a quarantine); :class:`AtomicPath` calls it on :meth:`~AtomicPath.commit`.
    """
    tmp, dest = Path(tmp), Path(dest)
    if tmp.is_file() and not (dest.is_dir() and not dest.is_symlink()):
        os.replace(tmp, dest)
        return
    if not os.path.lexists(dest):
        os.replace(tmp, dest)
        return
    if _exchange(tmp, dest):  # one atomic swap (Linux): readers see the old folder or the new, never nothing
        remove_path(tmp)  # now the old content
        return
    # os.replace cannot move a folder over an existing folder (or a file over a folder): move the old one aside.
    old = _sibling(dest, OLD_MARK)
    os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old, dest)  # put the previous content back under its name
        raise
    remove_path(old)


class AtomicPath:
    """A pending atomic write of ``dest``: the body writes :attr:`tmp`; :meth:`commit` publishes it.

    Args:
        dest: the final file or folder; its parent folders are created.
        kind: ``"dir"`` creates :attr:`tmp` as an empty folder; ``"file"`` requires the body to leave a file
            there; ``None`` (default) accepts whatever the body creates.

    Used as a context manager it commits on a clean exit and aborts on an exception (``__enter__`` returns
    :attr:`tmp`); :func:`atomic_path` is the usual spelling.
    """

    def __init__(self, dest: str | os.PathLike[str], *, kind: Kind | None = None):
        if kind not in (None, "file", "dir"):
            raise ValueError(f"kind must be 'file', 'dir' or None, not {kind!r}")
        self.dest = Path(dest)
        self.kind = kind
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_name(self.dest)
        if kind == "dir":
            self.tmp.mkdir()
        self.done = False

    def commit(self) -> Path:
        """Publish :attr:`tmp` as :attr:`dest` (see the module docstring); returns ``dest``.

        Raises:
            AtomicWriteError: nothing was written at :attr:`tmp`, or a folder where ``kind="file"`` wants a file.
        """
        if self.done:
            raise AtomicWriteError(f"{self.dest}: this atomic write was already committed or aborted")
        try:
            if not os.path.lexists(self.tmp):
                raise AtomicWriteError(f"{self.dest}: nothing was written")
            if self.kind == "file" and not self.tmp.is_file():
                raise AtomicWriteError(f"{self.dest}: a file was to be written, got a folder")
            publish_path(self.tmp, self.dest)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return self.dest

    def abort(self) -> None:
        """Remove :attr:`tmp` (whatever the body left there); ``dest`` stays as it was. Safe to call twice."""
        remove_path(self.tmp)
        self.done = True

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        elif not self.done:
            self.abort()


def atomic_path(dest: str | os.PathLike[str], *, kind: Kind | None = None) -> AtomicPath:
    """Context manager yielding a temporary sibling of ``dest`` that replaces ``dest`` atomically on success.

    ``with atomic_path(dest) as tmp:`` -- write a file or a folder at ``tmp``; on a clean exit it becomes
    ``dest`` (``os.replace`` for a file; for a folder one rename, or two when ``dest`` exists), on an exception
    ``tmp`` is removed and ``dest`` is untouched. ``kind="dir"`` creates ``tmp`` as an empty folder first.
    """
    return AtomicPath(dest, kind=kind)


def atomic_write_bytes(dest: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to the file ``dest`` atomically; returns ``dest``."""
    with atomic_path(dest, kind="file") as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to the file ``dest`` atomically; returns ``dest``."""
    with atomic_path(dest, kind="file") as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(dest)


def atomic_write_json(
    dest: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = 2,
    default: Callable[[Any], Any] | None = None,
    sort_keys: bool = False,
) -> Path:
    """Write ``obj`` as JSON (and a final newline) to the file ``dest`` atomically; returns ``dest``.

    ``indent``, ``default`` and ``sort_keys`` are :func:`json.dumps`'s.
    """
    return atomic_write_text(dest, json.dumps(obj, indent=indent, default=default, sort_keys=sort_keys) + "\n")


__all__ = [
    "AtomicPath",
    "AtomicWriteError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "is_partial",
    "partial_name",
    "publish_path",
    "remove_path",
]


_DEBRIS = re.compile(r"^\.(?P<name>.*?)(?P<mark>\.partial-|\.old-)(?P<owner>[0-9a-f]{4}-[0-9a-f]+-[0-9a-f]+)-[0-9a-f]{6}")


@dataclass
class Debris:
    """A temporary a writer left behind: where, whose, and whether its owner is provably gone."""

    path: Path
    owner: str  # host-pid-start, or "" for a name from before owners were recorded
    gone: bool
    size: int
    restores: Path | None = None  # an ``.old-`` folder whose destination is missing: moved back, not deleted


def find_debris(root: str | os.PathLike[str]) -> list[Debris]:
    """Every ``.partial-`` / ``.old-`` temporary under ``root`` (not following links); the contents of one are
    not searched further."""
    from robodata.owner import Owner

    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            if not is_partial(name):
                continue
            p = Path(dirpath) / name
            m = _DEBRIS.match(name)
            owner = Owner.parse(m["owner"]) if m else None
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.lstat().st_size
            dest = p.with_name(m["name"]) if m and m["mark"] == OLD_MARK else None
            out.append(Debris(p, owner.token() if owner else "", bool(owner and owner.gone()), size,
                              dest if dest is not None and not os.path.lexists(dest) else None))
        dirnames[:] = [d for d in dirnames if not is_partial(d)]
    return out


def sweep_debris(root: str | os.PathLike[str]) -> list[Debris]:
    """Remove the temporaries under ``root`` whose owner is provably gone (an ``.old-`` folder whose
    destination is missing, a writer killed between its two renames, is moved back instead); returns them.
    Temporaries of live processes, of other hosts, or with no owner in their name are left alone."""
    done = []
    for d in find_debris(root):
        if not d.gone:
            continue
        if d.restores is not None:
            os.replace(d.path, d.restores)
        else:
            remove_path(d.path)
        done.append(d)
    return done
