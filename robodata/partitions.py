"""Recording partition keys and content digests.

A key is a safe slug of the landed path plus 16 hex digits (64 bits) of the landed object's *listing
identity* (zone, path, size, mtime, ETag): the sensor makes it without reading a byte of the recording, and
the registry's primary key makes it unique (a clash, ~1e-8 at a million recordings, is re-salted there, never
merged). Whether two recordings hold the same bytes is a separate question, answered in the ingest run by
the full 128-bit BLAKE2b :func:`content_digest`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

_SAFE = re.compile(r"[^a-z0-9_-]+")
HASH_LEN = 16
MAX_SLUG = 48


def slugify(name: str, *, keep_end: bool = False) -> str:
    """ASCII, lower case, ``[a-z0-9_-]`` only: no spaces, commas, dots runs (``...``) or control characters;
    at most MAX_SLUG characters (its start, or with ``keep_end`` its end)."""
    norm = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SAFE.sub("-", norm.lower()).strip("-_")
    slug = re.sub(r"-{2,}", "-", slug)
    slug = slug[-MAX_SLUG:] if keep_end else slug[:MAX_SLUG]
    return slug.strip("-_") or "recording"


def content_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """The 128-bit BLAKE2b digest (32 hex digits) of a file's (or a bag folder's) bytes and relative names."""
    p = Path(path)
    h = hashlib.blake2b(digest_size=16)
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def path_slug(rel: str) -> str:
    """The slug of a landed path (``robot-17/2026-12-01/run 3.mcap`` -> ``robot-17-2026-12-01-run-3-mcap``);
    a long one keeps its end, where the file's own name is."""
    return slugify(rel.strip("/").replace("/", "-"), keep_end=True)


def recording_key(rel: str, identity: tuple[object, ...], salt: int = 0) -> str:
    """The partition key of a landed object at ``rel`` whose listing identity is ``identity``, e.g.
    ``robot-17-2026-12-01-run-3-mcap-3fa2c1d09b8e7a65``. ``salt`` > 0 after a clash in the registry."""
    h = hashlib.blake2b(digest_size=HASH_LEN // 2)
    h.update(repr((rel, *identity, salt)).encode())
    return f"{path_slug(rel)}-{h.hexdigest()}"


def is_valid_key(key: str) -> bool:
    return bool(re.fullmatch(rf"[a-z0-9][a-z0-9_-]*-[0-9a-f]{{{HASH_LEN}}}", key)) and "..." not in key
