"""The data store: a local folder or any fsspec URL, with atomic (temp-then-rename) writes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec

from robodata.atomic import partial_name, publish_path, remove_path
from robodata.errors import RobodataError, TransientError, is_transient

QUARANTINE = "quarantine"  # failed outputs, with their findings: never where downstream looks


class StorageError(RobodataError):
    """The data store cannot be read or written."""


class StorageUnavailable(StorageError, TransientError):
    """A remote data store kept failing with a transient fault (timeouts, dropped connections, throttling):
    the tier's step is retried (its Dagster ``RetryPolicy``)."""


# A call on a remote store that hits a transient fault is tried again in-process, this many times in all, the
# waits doubling from STORAGE_RETRY_WAIT_S: a blip of the network costs a second, not a retry of the whole step.
# A plain loop: fsspec has no retry option common to every backend, and s3fs's own (``retries``) covers only
# some of botocore's errors.
STORAGE_ATTEMPTS = 3
STORAGE_RETRY_WAIT_S = 0.5


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _strip_file(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url


STORAGE_OPTIONS_ENV = "ROBODATA_STORAGE_OPTIONS"


def storage_options() -> dict[str, Any]:
    """fsspec options for remote stores and landing zones from ``$ROBODATA_STORAGE_OPTIONS`` (JSON, e.g.
    ``{"client_kwargs": {"endpoint_url": "https://minio:9000"}, "key": "...", "secret": "..."}``): credentials
    and endpoints stay in the environment, out of the config and out of every run's stored config."""
    raw = os.environ.get(STORAGE_OPTIONS_ENV, "").strip()
    if not raw:
        return {}
    try:
        opts = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StorageError(f"${STORAGE_OPTIONS_ENV}: not JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(opts, dict):
        raise StorageError(f"${STORAGE_OPTIONS_ENV}: must be a JSON object of fsspec options")
    return opts


class DataStore:
    """A root (folder or fsspec URL) under which tiers write their outputs.

    Local roots are written in place through a temporary sibling and ``os.replace``; remote roots are
    written to a local temporary file first, uploaded under a temporary key, then moved into place, so a
    reader never sees a half-written object under its final name.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = str(root).rstrip("/")
        self.local = _is_local(self.root)
        if self.local:
            self.root = str(Path(_strip_file(self.root)).resolve())
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self.fs = fsspec.filesystem("file")
        else:
            self.fs, _ = fsspec.core.url_to_fs(self.root, **storage_options())

    def __repr__(self) -> str:
        return f"DataStore({self.root!r})"

    def url(self, rel: str) -> str:
        return f"{self.root}/{rel.lstrip('/')}"

    def rel(self, url: str) -> str:
        """The store-relative path of ``url`` (a URL this store returned)."""
        prefix = self.root + "/"
        if not url.startswith(prefix):
            raise StorageError(f"{url} is not inside the store {self.root}")
        return url[len(prefix):]

    def local_path(self, rel: str) -> Path:
        """The local path of ``rel`` (local stores only)."""
        if not self.local:
            raise StorageError(f"{self.root} is not a local store; use local_copy() to read {rel}")
        return Path(self.root) / rel

    def _call(self, what: str, url: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; on a remote store tried again after a transient fault (:data:`STORAGE_ATTEMPTS`
        in all), then one :class:`StorageUnavailable` naming the operation and the URL. Other errors go up as
        they are; a local store is never retried (its faults are not the network's)."""
        attempts = 1 if self.local else max(1, STORAGE_ATTEMPTS)
        for attempt in range(1, attempts + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as err:
                if self.local or not is_transient(err):
                    raise
                if attempt == attempts:
                    why = " ".join(str(err).split()) or "no message"
                    raise StorageUnavailable(f"the data store at {url}: {what} failed {attempts} times with a "
                                             f"transient fault ({type(err).__name__}: {why})") from err
                time.sleep(STORAGE_RETRY_WAIT_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def exists(self, rel: str) -> bool:
        return bool(self._call("checking", self.url(rel), self.fs.exists, self.url(rel)))

    def size(self, rel: str) -> int:
        if not self.exists(rel):
            return 0
        return int(self._call("measuring", self.url(rel), self.fs.du, self.url(rel), total=True))

    def remove(self, rel: str) -> None:
        if self.exists(rel):
            self._call("removing", self.url(rel), self.fs.rm, self.url(rel), recursive=True)

    def listdir(self, rel: str = "") -> list[str]:
        url = self.url(rel) if rel else self.root
        if not self._call("checking", url, self.fs.exists, url):
            return []
        return sorted(os.path.basename(p.rstrip("/")) for p in self._call("listing", url, self.fs.ls, url, detail=False))

    @contextlib.contextmanager
    def staged(self, rel: str) -> Iterator[Path]:
        """Yield a local staging path for ``rel`` (a hidden ``.NAME.partial-*`` sibling for local stores, a
        local temporary otherwise); it is removed when the block ends unless :meth:`publish` or
        :meth:`quarantine` took it. Nothing downstream ever looks at a staging path."""
        tmp_dir = Path(self.root) / Path(rel).parent if self.local else Path(tempfile.mkdtemp(prefix="robodata-"))
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = partial_name(tmp_dir / Path(rel).name)
        try:
            yield tmp
        finally:
            if tmp.exists():
                remove_path(tmp)
            if not self.local:
                shutil.rmtree(tmp_dir, ignore_errors=True)

    def publish(self, staged: Path, rel: str) -> str:
        """Make the staged file or folder ``rel``, atomically for readers: old content or new, never half.

        Locally a file is one ``os.replace``; a folder over an existing one is two renames (the old one moved
        aside, then removed). Remote stores get an upload under a hidden key, then a move into place.
        """
        if not staged.exists():
            raise StorageError(f"nothing was written for {self.url(rel)}")
        if self.local:
            final = self.local_path(rel)
            final.parent.mkdir(parents=True, exist_ok=True)
            publish_path(staged, final)
        else:
            tmp_key = self.url(str(partial_name(rel)))
            try:
                self._call("uploading", tmp_key, self.fs.put, str(staged), tmp_key, recursive=staged.is_dir())
                if staged.is_dir() and self.exists(rel):
                    # an object store has no folder rename: readers of a replaced folder may see it missing in
                    # between, so the tiers readers depend on publish folders under new, versioned names
                    # (shards: <key>@<digest>; releases: their content id) and never replace them
                    self._call("replacing", self.url(rel), self.fs.rm, self.url(rel), recursive=True)
                # one object: the copy onto an existing key replaces it at once (readers see old or new)
                self._call("publishing", self.url(rel), self.fs.mv, tmp_key, self.url(rel),
                           recursive=staged.is_dir())
            except BaseException:
                # a failed upload or move leaves no hidden temporary behind for the step's retry to step over
                with contextlib.suppress(Exception):
                    if self.fs.exists(tmp_key):
                        self.fs.rm(tmp_key, recursive=True)
                raise
        return self.url(rel)

    def quarantine(self, staged: Path, rel: str, findings: list[dict]) -> str:
        """Keep a staged output that failed a blocking check under ``quarantine/`` with its findings (never
        where downstream looks); returns the quarantine URL."""
        stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:6]}"
        qrel = f"{QUARANTINE}/{rel}/{stamp}"
        with self.staged(f"{qrel}.findings.json") as tmp:
            tmp.write_text(json.dumps({"output": rel, "findings": findings}, indent=1, default=str))
            self.publish(tmp, f"{qrel}.findings.json")
        return self.publish(staged, qrel)

    @contextlib.contextmanager
    def write_path(self, rel: str) -> Iterator[Path]:
        """Yield a local temporary path; on success it becomes ``rel`` atomically, on error it is removed.

        Works for files and folders alike (whatever the body creates at the yielded path).
        """
        with self.staged(rel) as tmp:
            yield tmp
            self.publish(tmp, rel)

    def local_copies(self, rels: list[str], tmp: Path) -> list[Path]:
        """Local paths of ``rels``: themselves in a local store, copies downloaded under ``tmp`` otherwise."""
        out = []
        for i, rel in enumerate(rels):
            if self.local:
                out.append(self.local_path(rel))
                continue
            dst = tmp / f"{i:06d}"
            self._get(rel, dst)
            out.append(dst)
        return out

    @contextlib.contextmanager
    def read_path(self, rel: str) -> Iterator[Path]:
        """Yield a local path holding ``rel`` (the file itself for local stores, a downloaded copy otherwise)."""
        if not self.exists(rel):
            raise StorageError(f"{self.url(rel)} does not exist")
        if self.local:
            yield self.local_path(rel)
            return
        tmp_dir = Path(tempfile.mkdtemp(prefix="robodata-"))
        try:
            dst = tmp_dir / Path(rel).name
            self._get(rel, dst)
            yield dst
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def _get(self, rel: str, dst: Path) -> None:
        """Download ``rel`` to ``dst``; a try cut short by a fault leaves nothing at ``dst`` for the next one."""
        def once() -> None:
            try:
                self.fs.get(self.url(rel), str(dst), recursive=True)
            except BaseException:
                if dst.is_dir():
                    shutil.rmtree(dst, ignore_errors=True)
                else:
                    dst.unlink(missing_ok=True)
                raise

        self._call("reading", self.url(rel), once)
