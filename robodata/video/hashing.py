"""Near-duplicate shots across a corpus and against earlier releases: perceptual hashes in an LSH index.

Each shot keeps ``hash_slots`` frames at fixed normalised times, and per frame the 64-bit pHash
(:func:`robodata.dedup.phash`) of centre crops at ``hash_scales`` (1.0, 0.9, 0.8 of width and height): a
re-upload has the same hashes, a re-encode (other codec, CRF) or another resolution moves a few bits of each,
and a copy with 10 % (or 20 %) of its border cropped away hashes, full frame, like the original's 0.9 (0.8)
crop. The :class:`ShotIndex` (SQLite or PostgreSQL through SQLAlchemy, like :class:`robodata.dedup.DedupIndex`,
whose episode signatures carry trajectories that shots have not) stores each kept shot's hashes and their
band keys: bit-sampling LSH for the Hamming distance, ``bands`` fixed random samples of ``band_bits`` of the
64 bits per hash, so two hashes ``d`` bits apart share a band with probability ``1 - (1 - (1 - d/64)^bits)^bands``
(d = 6: 0.94 per hash, and a shot has ``slots x scales`` of them; unrelated frames, d ~ 32: ~1e-7).

A candidate is verified by the share of its slots that match (some pair of scales within ``hash_radius`` bits,
the other shot's slot up to ``slot_shift`` away: a trimmed re-upload) against ``match_fraction``, and by
duration. :func:`dedup_shots` walks shots in order: the first seen (an indexed one, from an earlier scan or
release, before any of this batch) is kept and is the twin of every later copy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from robodata.dedup import DedupError, index_engine, phash
from robodata.video.config import VideoCorpusConfig


def frame_hashes(img: np.ndarray, scales: Sequence[float]) -> list[int]:
    """The pHash of each centre crop of ``img`` (grey or RGB; fractions of its width and height)."""
    h, w = img.shape[:2]
    out = []
    for s in scales:
        ch, cw = max(1, round(h * s)), max(1, round(w * s))
        y, x = (h - ch) // 2, (w - cw) // 2
        out.append(phash(img[y:y + ch, x:x + cw]))
    return out


def majority_hash(hashes: Iterable[int]) -> int:
    """The bitwise majority of 64-bit hashes (a shot's one-number summary)."""
    hs = list(hashes)
    if not hs:
        return 0
    bits = np.unpackbits(np.array(hs, ">u8").view(np.uint8)).reshape(len(hs), 64)
    return int(np.packbits(bits.sum(axis=0) * 2 > len(hs)).view(">u8")[0])


@dataclass
class ShotHashes:
    """What dedup keeps of one shot."""

    shot_id: str
    clip: str
    duration: float
    slots: list[list[int]]  # hash_slots x len(hash_scales) pHashes
    source: str = ""  # the scan or release the shot came from

    def array(self) -> np.ndarray:
        return np.array(self.slots, np.uint64).reshape(len(self.slots), -1)


def slot_frames(hashed: Sequence[int], frame_at: Sequence[int], start: int, end: int, slots: int) -> list[int]:
    """For each of ``slots`` fixed normalised times in ``[start, end)``, the position (into ``hashed``) of the
    hashed frame nearest to it; ``frame_at[p]`` is the frame index of hashed position ``p``."""
    if not hashed:
        return []
    out = []
    for j in range(slots):
        t = start + (j + 0.5) / slots * (end - start)
        out.append(min(hashed, key=lambda p: (abs(frame_at[p] - t), p)))
    return out


def match(a: ShotHashes, b: ShotHashes, cfg: VideoCorpusConfig) -> float | None:
    """The mean best Hamming distance over ``a``'s slots if ``a`` is a near copy of ``b``, else ``None``."""
    longer, shorter = max(a.duration, b.duration), min(a.duration, b.duration)
    if shorter <= 0 or longer / shorter > cfg.max_duration_ratio:
        return None
    x, y = a.array(), b.array()
    d = np.bitwise_count(x[:, None, :, None] ^ y[None, :, None, :]).min(axis=(2, 3))  # (slots a, slots b)
    best = np.empty(len(x))
    for i in range(len(x)):
        lo, hi = max(0, i - cfg.slot_shift), min(len(y), i + cfg.slot_shift + 1)
        best[i] = d[i, lo:hi].min() if hi > lo else 64
    if (best <= cfg.hash_radius).mean() + 1e-9 < cfg.match_fraction or best.mean() > cfg.max_mean_distance:
        return None
    return float(best.mean())


_MD = sa.MetaData()
SHOTS = sa.Table(
    "robodata_video_shots", _MD,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("shot_id", sa.String(1024), nullable=False, unique=True),
    sa.Column("clip", sa.String(1024), nullable=False),
    sa.Column("source", sa.String(512), nullable=False),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("slots", sa.Text, nullable=False),
)
BANDS = sa.Table(
    "robodata_video_bands", _MD,
    sa.Column("key", sa.BigInteger, nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Index("robodata_video_band_key", "key"),
)
SETTINGS = sa.Table(
    "robodata_video_settings", _MD,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
_IN_CHUNK = 900  # bound parameters per IN (...): well under SQLite's limit


class ShotIndex:
    """Kept shots' hashes and band keys in a SQL database (``sqlite:///path``, a path, or ``:memory:``)."""

    def __init__(self, url: str | os.PathLike[str] = ":memory:", config: VideoCorpusConfig | None = None):
        self.config = config or VideoCorpusConfig()
        self.engine, u = index_engine(url)
        self.url = u
        mine = json.dumps(self._settings())
        try:
            _MD.create_all(self.engine)
            with self.engine.begin() as c:
                have = c.execute(sa.select(SETTINGS.c.value).where(SETTINGS.c.name == "keys")).scalar()
                if have is None:
                    c.execute(sa.insert(SETTINGS).values(name="keys", value=mine))
        except sa.exc.SQLAlchemyError as err:
            raise DedupError(f"video dedup index {u}: {str(err).splitlines()[0]}") from err
        if have is not None and have != mine:
            raise DedupError(f"video dedup index {u}: built with {have}, asked to use {mine}; use the settings "
                             "it was built with or a new index")
        rng = np.random.default_rng([self.config.seed, 64])
        self._picks = np.stack([np.sort(rng.choice(64, self.config.band_bits, replace=False))
                                for _ in range(self.config.bands)])

    def _settings(self) -> dict[str, object]:
        c = self.config
        return {"band_bits": c.band_bits, "bands": c.bands, "seed": c.seed, "hash_slots": c.hash_slots,
                "hash_scales": list(c.hash_scales)}

    def band_keys(self, s: ShotHashes) -> set[int]:
        hs = s.array().ravel()
        if not len(hs):
            return set()
        bits = np.unpackbits(hs.astype(">u8").view(np.uint8)).reshape(len(hs), 64)
        keys = set()
        for b, pick in enumerate(self._picks):
            for v in np.packbits(bits[:, pick], axis=1):
                keys.add(int.from_bytes(hashlib.blake2b(bytes([b]) + v.tobytes(), digest_size=8).digest(),
                                        "little", signed=True))
        return keys

    def __len__(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(SHOTS)).scalar() or 0)

    def add_many(self, shots: Sequence[ShotHashes]) -> None:
        """Store shots and their keys (a shot id already indexed is replaced)."""
        if not shots:
            return
        with self.engine.begin() as c:
            ids = [s.shot_id for s in shots]
            for j in range(0, len(ids), _IN_CHUNK):
                old = [r[0] for r in c.execute(sa.select(SHOTS.c.id).where(SHOTS.c.shot_id.in_(ids[j:j + _IN_CHUNK])))]
                if old:
                    c.execute(sa.delete(BANDS).where(BANDS.c.row.in_(old)))
                    c.execute(sa.delete(SHOTS).where(SHOTS.c.id.in_(old)))
            bands = []
            for s in shots:
                pk = c.execute(sa.insert(SHOTS).values(shot_id=s.shot_id, clip=s.clip, source=s.source,
                                                       duration=s.duration, slots=json.dumps(s.slots))
                               ).inserted_primary_key
                assert pk is not None
                bands += [{"key": k, "row": int(pk[0])} for k in self.band_keys(s)]
            for j in range(0, len(bands), 20_000):
                c.execute(sa.insert(BANDS), bands[j:j + 20_000])

    def candidates(self, shots: Sequence[ShotHashes]) -> tuple[list[list[int]], dict[int, ShotHashes]]:
        """Per shot the indexed rows sharing a band key (in insertion order), and those rows' hashes."""
        keys = [self.band_keys(s) for s in shots]
        by_key: dict[int, set[int]] = defaultdict(set)
        allkeys = sorted(set().union(*keys)) if keys else []
        rows: dict[int, ShotHashes] = {}
        with self.engine.connect() as c:
            for j in range(0, len(allkeys), _IN_CHUNK):
                q = sa.select(BANDS.c.key, BANDS.c.row).where(BANDS.c.key.in_(allkeys[j:j + _IN_CHUNK]))
                for k, row in c.execute(q):
                    by_key[k].add(row)
            cands = [sorted(set().union(*(by_key.get(k, set()) for k in ks))) if ks else [] for ks in keys]
            need = sorted({r for cs in cands for r in cs})
            for j in range(0, len(need), _IN_CHUNK):
                for r in c.execute(sa.select(SHOTS).where(SHOTS.c.id.in_(need[j:j + _IN_CHUNK]))):
                    rows[r.id] = ShotHashes(r.shot_id, r.clip, r.duration, json.loads(r.slots), r.source)
        return cands, rows


@dataclass(frozen=True)
class ShotTwin:
    shot_id: str
    twin: str  # the kept shot's id
    twin_source: str
    distance: float  # mean best Hamming bits over the slots


def dedup_shots(shots: Sequence[ShotHashes], index: ShotIndex | None = None, *, add: bool = True,
                config: VideoCorpusConfig | None = None) -> list[ShotTwin]:
    """The shots of ``shots`` (in order) that copy an indexed shot or an earlier one of the batch, each with its
    twin: the earliest matching kept shot (indexed ones first). With ``add`` the kept ones are indexed."""
    index = index if index is not None else ShotIndex(config=config)
    cfg = config or index.config
    cands, rows = index.candidates(shots)
    kept_by_key: dict[int, list[int]] = defaultdict(list)
    twins: list[ShotTwin] = []
    kept: list[ShotHashes] = []
    for i, s in enumerate(shots):
        found: ShotTwin | None = None
        for r in cands[i]:
            other = rows[r]
            if other.shot_id == s.shot_id:
                continue  # the same shot scanned again
            d = match(s, other, cfg)
            if d is not None:
                found = ShotTwin(s.shot_id, other.shot_id, other.source, d)
                break
        keys = index.band_keys(s)
        if found is None:
            for j in sorted({j for k in keys for j in kept_by_key.get(k, ())}):
                d = match(s, shots[j], cfg)
                if d is not None:
                    found = ShotTwin(s.shot_id, shots[j].shot_id, shots[j].source, d)
                    break
        if found is not None:
            twins.append(found)
            continue
        kept.append(s)
        for k in keys:
            kept_by_key[k].append(i)
    if add:
        index.add_many(kept)
    return twins
