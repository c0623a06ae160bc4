"""Scan a corpus of clips (folders or buckets): probe, split at scene cuts, filter by quality, hash, dedup.

:func:`list_corpus` finds the clips (``.mp4 .webm .mkv .mov``) under each URL and their sidecar captions
(``clip.txt``: the text; ``clip.json``: ``{"caption": ...}`` or ``{"task": ...}``, every other key kept as
provenance, e.g. a Cosmos output's ``source_demo``, ``control_video``, ``seed``, ``engine``; ``"layer"``
overrides the corpus's layer). :func:`analyze_clip` does one clip: probe, one decode at low resolution
(:class:`~robodata.video.filters.ClipAnalyzer`), cuts (:mod:`robodata.video.scenes`), a verdict per shot, and
the shot's hashes. :func:`scan_corpus` runs it as a streaming Ray Data ``map`` over the clip list (each worker
holds one clip's scalars at a time: memory is flat in corpus size), then dedups the small hash records on the
driver against the batch and a :class:`~robodata.video.hashing.ShotIndex` of earlier scans and releases.

A file that is not a usable clip (does not decode, empty, audio only, truncated, zero frames) and a caption
without a clip are :class:`~robodata.video.shots.ClipFinding`\\ s; the rest of the corpus goes on.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import fsspec

from robodata.errors import RobodataError
from robodata.parallel import start_ray_data
from robodata.storage import storage_options
from robodata.video.config import VideoCorpusConfig
from robodata.video.filters import ClipAnalyzer, judge_shot
from robodata.video.hashing import ShotHashes, ShotIndex, dedup_shots, majority_hash, slot_frames
from robodata.video.probe import ClipUnusable, probe_clip
from robodata.video.scenes import detect_cuts, shot_spans
from robodata.video.shots import ClipFinding, Rejection, Shot

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov")
CAPTION_EXTENSIONS = (".txt", ".json")
CAPTION_KEYS = ("caption", "task")
_DECODE_SLACK = 2  # frames a decoder may drop at the end (a last B-frame) before a clip counts as truncated


class VideoCorpusError(RobodataError):
    """A corpus URL cannot be listed (the message names it)."""


@dataclass(frozen=True)
class ClipItem:
    """A clip found by :func:`list_corpus` and its sidecar caption files."""

    url: str
    sidecars: tuple[str, ...] = ()
    layer: str = "internet"


@dataclass
class ClipSummary:
    """One decoded clip: its probe, where it was cut, how many shots it gave."""

    clip: str
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    cuts: list[int]
    shots: int
    seconds: float  # worker time: download, probe, decode, analysis, hashing


@dataclass
class CorpusResult:
    """What a scan found: accepted shots (deduplicated), rejections with reasons, findings on files."""

    shots: list[Shot] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    findings: list[ClipFinding] = field(default_factory=list)
    clips: list[ClipSummary] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: list, analyze, dedup, total

    @property
    def counts(self) -> dict[str, int]:
        """Per rejection reason, plus ``accepted`` shots, ``clips`` analysed and ``findings``."""
        c = Counter(r.reason for r in self.rejections)
        return {"accepted": len(self.shots), "clips": len(self.clips), "findings": len(self.findings),
                **dict(sorted(c.items()))}

    def to_markdown(self, limit: int = 50) -> str:
        lines = [f"**Video corpus**: {len(self.clips)} clips analysed, {len(self.shots)} shots accepted, "
                 f"{len(self.rejections)} rejected, {len(self.findings)} files unusable.", ""]
        counts = {k: v for k, v in self.counts.items() if k not in ("accepted", "clips", "findings")}
        if counts:
            lines += ["| reason | shots |", "|---|---|", *[f"| {k} | {v} |" for k, v in counts.items()], ""]
        for f in self.findings[:limit]:
            lines.append(f"- {f.path}: {f.problem}")
        return "\n".join(lines)


# -- listing ------------------------------------------------------------------------------------------------


def _filesystem(url: str) -> tuple[Any, str]:
    if "://" not in url or url.startswith("file://"):
        p = url[len("file://"):] if url.startswith("file://") else url
        return fsspec.filesystem("file"), str(Path(p).resolve())
    try:
        return fsspec.core.url_to_fs(url, **storage_options())
    except (ImportError, ValueError) as err:
        raise VideoCorpusError(f"video corpus {url}: cannot open its file system ({err})") from None


def list_corpus(urls: str | Sequence[str], layer: str = "internet") -> tuple[list[ClipItem], list[ClipFinding]]:
    """The clips under ``urls`` (folders, buckets or single clips), sorted, with their sidecars; a caption file
    without a clip beside it is a finding. Hidden files are skipped."""
    items: list[ClipItem] = []
    findings: list[ClipFinding] = []
    for url in [urls] if isinstance(urls, str) else list(urls):
        fs, root = _filesystem(url)
        local = isinstance(fs, fsspec.implementations.local.LocalFileSystem)
        try:
            if fs.isdir(root):
                files = sorted(fs.find(root))
            elif fs.isfile(root):
                files = [root]
            else:
                raise VideoCorpusError(f"video corpus {url}: no such folder, bucket prefix or file")
        except OSError as err:
            raise VideoCorpusError(f"video corpus {url}: cannot be listed ({err})") from None

        def name(p: str, fs: Any = fs, local: bool = local) -> str:
            return p if local else fs.unstrip_protocol(p)

        groups: dict[str, dict[str, list[str]]] = {}
        for p in files:
            base = p.rsplit("/", 1)[-1]
            stem, dot, ext = base.rpartition(".")
            if base.startswith(".") or not dot:
                continue
            ext = "." + ext.lower()
            kind = "clip" if ext in VIDEO_EXTENSIONS else "caption" if ext in CAPTION_EXTENSIONS else None
            if kind:
                groups.setdefault(p[: len(p) - len(base)] + stem, {"clip": [], "caption": []})[kind].append(p)
        for g in sorted(groups):
            clips, caps = groups[g]["clip"], groups[g]["caption"]
            if not clips:
                findings += [ClipFinding(name(c), "caption file without a clip (no "
                                         f"{'/'.join(e for e in VIDEO_EXTENSIONS)} of the same name beside it)")
                             for c in caps]
            items += [ClipItem(name(c), tuple(name(s) for s in caps), layer) for c in clips]
    return items, findings


def read_sidecars(sidecars: Sequence[str]) -> tuple[str | None, dict[str, Any], str | None, list[ClipFinding]]:
    """(caption, provenance, layer, findings) from a clip's ``.txt`` / ``.json`` sidecars (JSON wins)."""
    caption: str | None = None
    prov: dict[str, Any] = {}
    layer: str | None = None
    findings: list[ClipFinding] = []
    for url in sorted(sidecars, key=lambda u: u.endswith(".json")):
        fs, path = _filesystem(url)
        try:
            with fs.open(path, "rb") as f:
                raw = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            findings.append(ClipFinding(url, f"caption file cannot be read ({err})"))
            continue
        if url.lower().endswith(".txt"):
            caption = raw.strip() or caption
            continue
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as err:
            findings.append(ClipFinding(url, f"caption file is not JSON ({err.msg} at line {err.lineno})"))
            continue
        if not isinstance(doc, dict):
            findings.append(ClipFinding(url, "caption file must be a JSON object ({\"caption\": ...})"))
            continue
        for k in CAPTION_KEYS:
            if isinstance(doc.get(k), str) and doc[k].strip():
                caption = doc[k].strip()
                break
        if isinstance(doc.get("layer"), str):
            layer = doc["layer"]
        prov.update({k: v for k, v in doc.items() if k not in (*CAPTION_KEYS, "layer")})
    return caption, prov, layer, findings


# -- one clip -----------------------------------------------------------------------------------------------


def _local_copy(url: str, tmp: Path) -> Path:
    fs, path = _filesystem(url)
    if isinstance(fs, fsspec.implementations.local.LocalFileSystem):
        return Path(path)
    dst = tmp / path.rsplit("/", 1)[-1]
    fs.get(path, str(dst))
    return dst


def analyze_clip(item: ClipItem, config: VideoCorpusConfig | None = None) -> dict[str, Any]:
    """Probe, split, filter and hash one clip; a JSON-able record (shots, hashes, rejections, findings)."""
    cfg = config or VideoCorpusConfig()
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"clip": item.url, "summary": None, "shots": [], "hashes": [], "rejections": [],
                           "findings": []}
    caption, prov, layer, side_findings = read_sidecars(item.sidecars)
    rec["findings"] += [asdict(f) for f in side_findings]
    tmp = Path(tempfile.mkdtemp(prefix="robodata-clip-"))
    try:
        try:
            path = _local_copy(item.url, tmp)
            pr = probe_clip(path)
        except ClipUnusable as err:
            rec["findings"].append(asdict(ClipFinding(item.url, str(err))))
            return rec
        except OSError as err:
            rec["findings"].append(asdict(ClipFinding(item.url, f"cannot be read ({err})")))
            return rec
        if pr.width < cfg.min_width or pr.height < cfg.min_height:
            rec["rejections"].append(asdict(Rejection(item.url, -1, "low_resolution", f"{pr.width}x{pr.height}, "
                                                      f"below {cfg.min_width}x{cfg.min_height}")))
            return rec
        if pr.duration < cfg.min_shot_seconds:
            rec["rejections"].append(asdict(Rejection(item.url, -1, "too_short", f"{pr.duration:.2f} s, below "
                                                      f"{cfg.min_shot_seconds:g} s")))
            return rec
        an = ClipAnalyzer(cfg, pr.fps, pr.width, pr.height)
        problem = _decode_into(path, an, cfg)
        if problem is None and an.frames < pr.frames - _DECODE_SLACK:
            problem = f"truncated: {an.frames} of its {pr.frames} frames decode"
        if problem is not None:
            rec["findings"].append(asdict(ClipFinding(item.url, problem)))
            return rec
        cuts = detect_cuts(an.scores, cfg)
        spans = shot_spans(an.frames, cuts)
        for k, (a, b) in enumerate(spans):
            verdict = judge_shot(an, a, b)
            if verdict is not None:
                rec["rejections"].append(asdict(Rejection(item.url, k, *verdict)))
                continue
            pos = slot_frames(an.hashed_in(a, b), an.hash_frames, a, b, cfg.hash_slots)
            slots = [an.hashes[p] for p in pos]
            shot = Shot(item.url, k, a / pr.fps, b / pr.fps, a, b, pr.fps, pr.width, pr.height, pr.codec, caption,
                        layer or item.layer, dict(prov), majority_hash(s[0] for s in slots))
            rec["shots"].append(shot.to_dict())
            rec["hashes"].append(asdict(ShotHashes(shot.id, item.url, shot.duration, slots)))
        rec["summary"] = asdict(ClipSummary(item.url, pr.codec, pr.width, pr.height, pr.fps, an.frames,
                                            an.frames / pr.fps, cuts, len(spans), 0.0))
        return rec
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if rec["summary"] is not None:
            rec["summary"]["seconds"] = time.perf_counter() - t0


def _decode_into(path: Path, an: ClipAnalyzer, cfg: VideoCorpusConfig) -> str | None:
    """Decode every frame of ``path`` into ``an`` (frame threads, low-resolution conversion); the problem if the
    stream breaks off."""
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            if cfg.decode_threads:
                s.codec_context.thread_count = cfg.decode_threads
            for frame in c.decode(s):
                an.push(frame)
    except (av.error.FFmpegError, OSError, ValueError) as err:
        return f"truncated or corrupt: decoding stopped after frame {an.frames} ({err})"
    return None


def _analyze_row(config_json: str, row: dict[str, Any]) -> dict[str, Any]:
    cfg = VideoCorpusConfig.model_validate_json(config_json)
    item = ClipItem(row["url"], tuple(json.loads(row["sidecars"])), row["layer"])
    try:
        rec = analyze_clip(item, cfg)
    except Exception as err:  # noqa: BLE001 - one clip's surprise is that clip's finding, the corpus goes on
        rec = {"clip": item.url, "summary": None, "shots": [], "hashes": [], "rejections": [],
               "findings": [asdict(ClipFinding(item.url, f"cannot be analysed ({type(err).__name__}: {err})"))]}
    return {"record": json.dumps(rec)}


# -- the corpus ---------------------------------------------------------------------------------------------


def scan_corpus(urls: str | Sequence[str], config: VideoCorpusConfig | None = None, *, index: ShotIndex | None = None,
                ray_address: str | None = None, layer: str = "internet", use_ray: bool = True,
                source: str = "") -> CorpusResult:
    """Scan the clips under ``urls``: per clip (a Ray Data ``map``, streaming) probe, split, filter, hash; then
    dedup the accepted shots on the driver, in clip order, against ``index`` (earlier scans and releases;
    the kept shots are added to it, labelled ``source``) and each other. ``use_ray=False`` runs in-process."""
    cfg = config or VideoCorpusConfig()
    t0 = time.perf_counter()
    items, findings = list_corpus(urls, layer)
    res = CorpusResult(findings=list(findings))
    res.timings["list"] = time.perf_counter() - t0
    rows = [{"url": it.url, "sidecars": json.dumps(list(it.sidecars)), "layer": it.layer} for it in items]
    fn = functools.partial(_analyze_row, cfg.model_dump_json())
    t1 = time.perf_counter()
    records: list[dict[str, Any]] = []
    if use_ray and rows:
        import ray

        start_ray_data(ray_address)
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4096)).map(fn)
        records = [json.loads(r["record"]) for r in ds.iter_rows()]
    else:
        records = [json.loads(fn(r)["record"]) for r in rows]
    res.timings["analyze"] = time.perf_counter() - t1
    records.sort(key=lambda r: str(r["clip"]))
    shots: list[Shot] = []
    hashes: list[ShotHashes] = []
    for r in records:
        res.findings += [ClipFinding(**f) for f in r["findings"]]
        res.rejections += [Rejection(**x) for x in r["rejections"]]
        if r["summary"] is not None:
            res.clips.append(ClipSummary(**r["summary"]))
        shots += [Shot(**s) for s in r["shots"]]
        hashes += [ShotHashes(**{**h, "source": source}) for h in r["hashes"]]
    t2 = time.perf_counter()
    twins = {t.shot_id: t for t in dedup_shots(hashes, index, config=cfg)}
    for s in shots:
        t = twins.get(s.id)
        if t is None:
            res.shots.append(s)
        else:
            where = f" in {t.twin_source}" if t.twin_source else ""
            res.rejections.append(Rejection(s.clip, s.index, "duplicate",
                                            f"near copy of {t.twin}{where} ({t.distance:.1f} bits apart)", t.twin))
    res.timings["dedup"] = time.perf_counter() - t2
    res.findings.sort(key=lambda f: f.path)
    res.rejections.sort(key=lambda r: (r.clip, r.index))
    res.timings["total"] = time.perf_counter() - t0
    return res
