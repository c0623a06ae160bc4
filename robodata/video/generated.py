"""Generated video as a source: Cosmos Transfer (and local augmentation) outputs listed as shots with provenance.

Two layouts are read, both recursively:

- the ``augmented_videos`` tier's clip folder (:mod:`robodata.augment.clips`)::

      <demo>/<camera>.mp4            the source clip (not listed: it is the demo, not a generated video)
      <demo>/<camera>.<control>.mp4  depth / seg / edge control videos (not listed; named in the provenance)
      <demo>/<camera>.v<k>.mp4       variant k: listed
      cosmos/specs/<demo>.<camera>.v<k>.json   the Cosmos spec of variant k: seed, prompt, control paths

- a plain folder of clips (MP4, WebM, MKV), each with an optional sidecar ``<clip>.json`` holding provenance
  keys (``source_demo``, ``camera``, ``control_video``, ``seed``, ``engine``, and ``caption`` or ``prompt``)
  and/or ``<clip>.txt`` (the caption).

Each generated clip becomes one :class:`~robodata.video.shots.Shot` (the whole clip) with ``layer="generated"``
and ``provenance = {source_demo, camera, control_video, seed, engine, ...}``, so the corpus scan filters and
deduplicates it like any clip and the release records where it came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from robodata.errors import RobodataError
from robodata.video.shots import ClipFinding, Shot

GENERATED = "generated"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")
CONTROL_KINDS = ("depth", "seg", "edge", "vis")  # Cosmos Transfer 2.5's controls
PROVENANCE_KEYS = ("source_demo", "camera", "control_video", "seed", "engine")
_VARIANT = re.compile(r"^(?P<camera>.+)\.v(?P<k>\d+)\.mp4$")
_CONTROL = re.compile(r"^(?P<camera>.+)\.(?P<kind>" + "|".join(CONTROL_KINDS) + r")\.mp4$")
SPEC_DIRS = ("cosmos/specs", "specs")  # where the tier keeps the Cosmos specs, relative to the listed folder


class GeneratedVideoError(RobodataError):
    """A folder of generated video cannot be listed (missing, empty)."""


@dataclass
class GeneratedListing:
    """The generated clips of a folder as shots, and the files that could not be used (one finding each)."""

    shots: list[Shot] = field(default_factory=list)
    findings: list[ClipFinding] = field(default_factory=list)

    def provenance_of(self) -> dict[str, dict[str, Any]]:
        """Provenance by clip URL (to attach to the shots the corpus scan accepted)."""
        return {s.clip: dict(s.provenance) for s in self.shots}


def _fs(url: str) -> tuple[Any, str, str]:
    import fsspec

    from robodata.storage import storage_options

    remote = "://" in url and not url.startswith("file://")
    fs, root = fsspec.core.url_to_fs(url, **(storage_options() if remote else {}))
    proto = url.split("://", 1)[0] + "://" if remote else ""
    return fs, root.rstrip("/"), proto


def _read_json(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        with fs.open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _read_text(fs: Any, path: str) -> str | None:
    try:
        with fs.open(path, "rb") as f:
            return f.read().decode("utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _spec(fs: Any, root: str, files: set[str], demo: str, camera: str, k: int) -> tuple[str | None, dict | None]:
    from robodata.augment.cosmos import spec_name

    for d in SPEC_DIRS:
        p = f"{root}/{d}/{spec_name(demo, camera, k)}.json"
        if p in files:
            return p, _read_json(fs, p)
    return None, None


def _tier_provenance(fs: Any, root: str, files: set[str], proto: str, path: str) -> tuple[dict[str, Any], str | None]:
    """Provenance and caption of ``<demo>/<camera>.v<k>.mp4`` from its siblings and its Cosmos spec."""
    p = PurePosixPath(path)
    m = _VARIANT.match(p.name)
    assert m is not None
    demo, camera, k = p.parent.name, m.group("camera"), int(m.group("k"))
    controls = {kind: proto + str(p.parent / f"{camera}.{kind}.mp4") for kind in CONTROL_KINDS
                if str(p.parent / f"{camera}.{kind}.mp4") in files}  # fmt: skip
    spec_path, spec = _spec(fs, root, files, demo, camera, k)
    caption = None
    seed = None
    if spec is not None:
        seed = spec.get("seed")
        caption = spec.get("prompt")
        for kind in CONTROL_KINDS:
            ctl = spec.get(kind)
            if isinstance(ctl, dict) and ctl.get("control_path"):
                controls[kind] = str(ctl["control_path"])
    primary = next((controls[c] for c in ("edge", "depth", "seg", "vis") if c in controls), None)
    source = str(p.parent / f"{camera}.mp4")
    prov: dict[str, Any] = {
        "source_demo": demo, "camera": camera, "control_video": primary, "seed": seed,
        "engine": "cosmos" if spec is not None else "local", "variant": k, "controls": controls,
        "source_video": proto + source if source in files else None,
    }  # fmt: skip
    if spec_path:
        prov["spec"] = proto + spec_path
    parent = PurePosixPath(root)
    if parent.parent.name == "augmented_videos":  # the tier's folder: augmented_videos/<recording key>/
        prov["recording"] = parent.name
    return prov, caption


def _sidecar_provenance(fs: Any, root: str, files: set[str], path: str) -> tuple[dict[str, Any], str | None]:
    p = PurePosixPath(path)
    stem = str(p.with_suffix(""))
    doc = _read_json(fs, stem + ".json") if stem + ".json" in files else None
    if doc is None:  # a raw Cosmos output named like its spec (<demo>.<camera>.v<k>.mp4)
        for d in SPEC_DIRS:
            q = f"{root}/{d}/{p.stem}.json"
            if q in files:
                spec = _read_json(fs, q) or {}
                doc = {"seed": spec.get("seed"), "prompt": spec.get("prompt"), "engine": "cosmos",
                       "source_video": spec.get("video_path"), "spec": q,
                       "control_video": next((spec[c]["control_path"] for c in ("edge", "depth", "seg")
                                              if isinstance(spec.get(c), dict) and spec[c].get("control_path")), None)}
                break
    doc = dict(doc or {})
    caption = doc.pop("caption", None) or doc.pop("prompt", None)
    if caption is None and stem + ".txt" in files:
        caption = _read_text(fs, stem + ".txt")
    prov = {k: doc.pop(k, None) for k in PROVENANCE_KEYS}
    prov["engine"] = prov["engine"] or "cosmos"
    prov.update(doc)  # any other key of the sidecar travels along
    return prov, str(caption) if caption else None


def _is_generated(name: str, siblings: set[str]) -> bool:
    """A video file that is a generated clip (not a source clip or a control video beside its variants)."""
    if not name.lower().endswith(VIDEO_SUFFIXES):
        return False
    if _VARIANT.match(name):
        return True
    stem = name.rsplit(".", 1)[0]
    if any(_VARIANT.match(s) and s.startswith(stem + ".v") for s in siblings):
        return False  # <camera>.mp4 beside <camera>.v<k>.mp4: the source clip
    m = _CONTROL.match(name)
    if m and (f"{m.group('camera')}.mp4" in siblings or any(s.startswith(m.group("camera") + ".v") for s in siblings)):
        return False  # a control video
    return True


def generated_shot(url: str, provenance: dict[str, Any], caption: str | None) -> Shot:
    """One shot covering the whole clip at ``url`` (probed by demuxing: frames, fps, size, codec)."""
    from robodata.lerobot.video import probe
    from robodata.video.episodes import local_clip

    with local_clip(url) as path:
        pr = probe(path)
    if pr.frames == 0 or pr.fps <= 0:
        from robodata.lerobot.errors import LeRobotError

        raise LeRobotError(f"{url}: no video frames")
    return Shot(url, 0, 0.0, pr.frames / pr.fps, 0, pr.frames, pr.fps, pr.width, pr.height, pr.codec,
                caption=caption, layer=GENERATED, provenance=provenance)  # fmt: skip


def list_generated(url: str) -> GeneratedListing:
    """The generated clips under ``url`` (the tier's clip folder or a plain folder, any fsspec URL) as shots.

    A clip that does not open or has no frames is a finding naming the file; the others are listed.

    Raises:
        GeneratedVideoError: ``url`` does not exist or holds no video file.
    """
    from robodata.lerobot.errors import LeRobotError

    fs, root, proto = _fs(url)
    if not fs.exists(root):
        raise GeneratedVideoError(f"{url}: no such folder of generated video")
    found = sorted(str(p) for p in (fs.find(root) if fs.isdir(root) else [root]))
    files = set(found)
    by_dir: dict[str, set[str]] = {}
    for p in found:
        d, _, name = p.rpartition("/")
        by_dir.setdefault(d, set()).add(name)
    out = GeneratedListing()
    for p in found:
        d, _, name = p.rpartition("/")
        if any(part.startswith(".") for part in PurePosixPath(p[len(root):]).parts) or not _is_generated(name, by_dir[d]):
            continue
        if _VARIANT.match(name):
            prov, caption = _tier_provenance(fs, root, files, proto, p)
        else:
            prov, caption = _sidecar_provenance(fs, root, files, p)
        try:
            out.shots.append(generated_shot(proto + p, prov, caption))
        except LeRobotError as err:
            out.findings.append(ClipFinding(proto + p, str(err)))
    if not out.shots and not out.findings:
        raise GeneratedVideoError(f"{url}: no generated video clips ({', '.join(VIDEO_SUFFIXES)}) here or below")
    return out


__all__ = ["GENERATED", "GeneratedListing", "GeneratedVideoError", "PROVENANCE_KEYS", "generated_shot",
           "list_generated"]
