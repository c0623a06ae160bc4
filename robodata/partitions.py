"""Recording partition keys: a safe slug of the file name plus a short content hash."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

_SAFE = re.compile(r"[^a-z0-9_-]+")
HASH_LEN = 8
MAX_SLUG = 48


def slugify(name: str) -> str:
    """ASCII, lower case, ``[a-z0-9_-]`` only: no spaces, commas, dots runs (``...``) or control characters."""
    norm = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SAFE.sub("-", norm.lower()).strip("-_")
    slug = re.sub(r"-{2,}", "-", slug)
    return (slug[:MAX_SLUG].rstrip("-_")) or "recording"


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


def content_hash(path: str | Path) -> str:
    """A short hash of a file's (or a bag folder's) bytes: the same content gives the same key."""
    return content_digest(path)[:HASH_LEN]


def recording_key(path: str | Path, digest: str | None = None) -> str:
    """The partition key of a landed recording, e.g. ``teleop-session-01-mcap-3fa2c1d0``."""
    p = Path(path)
    return f"{slugify(p.name)}-{digest or content_hash(p)}"


def is_valid_key(key: str) -> bool:
    return bool(re.fullmatch(rf"[a-z0-9][a-z0-9_-]*-[0-9a-f]{{{HASH_LEN}}}", key)) and "..." not in key
