"""One release from every layer of the data pyramid: web and human video, generated video, simulation, MimicGen
and teleoperation, with mixture weights.

Layers whose episodes share a feature set (teleop, sim and MimicGen demos of one robot) are aggregated into one
LeRobot dataset; observation-only layers (video without state or action) into another, since different features
cannot share one parquet schema (GR00T trains on a mixture of datasets with weights the same way). The release::

    <release>/robot/          LeRobot dataset (v3.0, or v2.1 + meta/modality.json): the robot layers
    <release>/video/          LeRobot dataset of observation-only episodes (info.json "observation_only": true)
    <release>/mixture.json    per layer: weight, datasets, episodes, frames, hours; per dataset: its layers and
                              sampling weight; per episode: dataset, layer, provenance
    <release>/profile.html    the release's profile with its mix (and profile.json)

Every episode's ``layer`` and ``provenance`` (a JSON string) are also columns of its dataset's ``meta/episodes``
(``meta/episodes.jsonl`` in v2.1). Robot layers of different robots (features that differ) get one dataset each
(``robot``, ``robot_2``, ...). The folder is written atomically.

Loading for training: each dataset opens in lerobot on its own, and :func:`mixture_weights` says how often to draw
from each; :func:`episode_sampling_weights` gives per-episode (or per-frame) weights inside a dataset, so that a
layer's share of samples is its weight whichever dataset it lives in::

    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from torch.utils.data import WeightedRandomSampler
    from robodata.mix import episode_sampling_weights, mixture_weights

    weights = mixture_weights("release/")                       # {"robot": 0.8, "video": 0.2}
    robot = LeRobotDataset("local/robot", root="release/robot", video_backend="pyav")
    sampler = WeightedRandomSampler(episode_sampling_weights("release/", "robot", per_frame=True), len(robot))

The Python API's form, ``robodata.pipeline(sources={"internet": [...], "teleop": [...]}, weights={...},
output=...)``, builds each robot layer through the existing pipeline, each video layer through the corpus scan
(:func:`robodata.video.corpus.scan_corpus`), then cuts the release here (:class:`MixedPipeline`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from robodata.api.spec import FORMAT_VERSIONS as _API_FORMATS
from robodata.atomic import atomic_path
from robodata.config import weight_problem
from robodata.errors import RobodataError
from robodata.video.episodes import ObservationEpisodesConfig
from robodata.video.shots import ClipFinding, Rejection, Shot

MIXTURE_PATH = "mixture.json"
ROBOT_DATASET = "robot"
VIDEO_DATASET = "video"
FORMAT_VERSIONS = {**_API_FORMATS, "v3.0": "v3.0", "v2.1": "v2.1"}  # the API's format names, or the versions


class MixError(RobodataError):
    """A mixed release cannot be cut: bad weights, a layer without data, a release folder without mixture.json."""


# ---- weights and the release config ---------------------------------------------------------------------------


def normalise_weights(weights: Mapping[str, float] | None, layers: Sequence[str], where: str = "weights") -> dict[str, float]:
    """``weights`` (layer -> non-negative number) divided by their sum; none given: equal weights.

    Raises:
        MixError: a weight names a layer that is not a source, a layer has no weight, a weight is negative or not
            a number, or they sum to zero.
    """
    layers = list(layers)
    if not layers:
        raise MixError(f"{where}: the release has no layers (give sources per layer)")
    if not weights:
        return {name: 1.0 / len(layers) for name in layers}
    unknown = [k for k in weights if k not in layers]
    if unknown:
        raise MixError(f"{where}: weight for layer {unknown[0]!r}, which has no sources (layers: {', '.join(layers)})")
    missing = [k for k in layers if k not in weights]
    if missing:
        raise MixError(f"{where}: layer {missing[0]!r} has sources but no weight (give one for every layer, or none)")
    out: dict[str, float] = {}
    for k in layers:
        w = weights[k]
        if weight_problem(w):
            raise MixError(f"{where}.{k} is {w!r}: a weight is a non-negative number")
        out[k] = float(w)
    total = sum(out.values())
    if total <= 0:
        raise MixError(f"{where}: the weights sum to 0 (at least one layer needs a positive weight)")
    return {k: w / total for k, w in out.items()}


class MixConfig(BaseModel):
    """A release mixed from layers: ``sources`` per layer name (URLs or :mod:`robodata.sources` specs), ``weights``
    per layer (normalised; none: equal), the LeRobot ``format`` and how video shots become episodes."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    sources: dict[str, list[Any]] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    format: Literal["lerobot-v3", "lerobot-v2.1"] = "lerobot-v3"
    episodes: ObservationEpisodesConfig = Field(default_factory=ObservationEpisodesConfig)

    @model_validator(mode="after")
    def _check_weights(self) -> MixConfig:
        if self.sources:
            normalise_weights(self.weights, list(self.sources))
        return self

    @property
    def version(self) -> str:
        return FORMAT_VERSIONS[self.format]

    def normalised_weights(self) -> dict[str, float]:
        return normalise_weights(self.weights, list(self.sources))


def mix_config(doc: Mapping[str, Any]) -> MixConfig:
    """A :class:`MixConfig` from a mapping; a bad key or weight is one :class:`MixError` naming it."""
    try:
        return MixConfig.model_validate(dict(doc))
    except ValidationError as err:
        from robodata.topicmap import format_validation_error

        raise MixError(format_validation_error(err, "the release config")) from err


# ---- cutting the release --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerDataset:
    """A LeRobot dataset (robot episodes: state, action, cameras) going into a layer, with its provenance."""

    path: str | os.PathLike[str]
    provenance: Mapping[str, Any] = field(default_factory=dict)


LayerItem = str | os.PathLike | LayerDataset | Shot


@dataclass
class MixedRelease:
    """What :func:`cut_mixed_release` wrote: the release folder, its mixture and what was left out."""

    path: Path
    mixture: dict[str, Any]
    datasets: dict[str, Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (shot id, why): shots not written
    seconds: float = 0.0

    @property
    def weights(self) -> dict[str, float]:
        return {k: float(d["weight"]) for k, d in self.mixture["datasets"].items()}


def _split_layers(layers: Mapping[str, Sequence[LayerItem]]) -> tuple[list[tuple[str, LayerDataset]], list[Shot]]:
    robot: list[tuple[str, LayerDataset]] = []
    shots: list[Shot] = []
    for name, items in layers.items():
        if isinstance(items, (str, os.PathLike, LayerDataset, Shot)):
            items = [items]
        for it in items:
            if isinstance(it, Shot):
                shots.append(replace(it, layer=name))
            elif isinstance(it, LayerDataset):
                robot.append((name, it))
            elif isinstance(it, (str, os.PathLike)):
                robot.append((name, LayerDataset(it)))
            else:
                raise MixError(f"layer {name!r}: {it!r} is neither a LeRobot dataset folder nor a video shot")
    return robot, shots


def _robot_groups(robot: list[tuple[str, LayerDataset]]) -> list[list[tuple[str, LayerDataset, Any]]]:
    """Robot datasets grouped by fps and features (one release dataset per group), in first-seen order."""
    from robodata.lerobot.features import comparable
    from robodata.lerobot.metadata import read_meta

    groups: dict[str, list[tuple[str, LayerDataset, Any]]] = {}
    for layer, ds in robot:
        meta = read_meta(ds.path)
        if not meta.episodes:
            continue
        key = json.dumps([meta.fps, comparable(meta.features)], sort_keys=True, default=str)
        groups.setdefault(key, []).append((layer, ds, meta))
    return list(groups.values())


def _lineage(root: Path) -> dict[int, dict[str, Any]]:
    """Per episode, where the API runner's output took it from (recording, source URL, demo), if it says."""
    from robodata.api.runner import LINEAGE_PATH

    path = root / LINEAGE_PATH
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
        return {int(e["episode_index"]): {k: v for k, v in e.items() if k not in ("episode_index", "part")}
                for e in doc.get("episodes", [])}  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_robot(group: list[tuple[str, LayerDataset, Any]], out: Path, version: str) -> list[dict[str, Any]]:
    """Aggregate a group into ``out``; returns per output episode: layer, provenance, frames."""
    from robodata.lerobot.aggregate import aggregate
    from robodata.video.episodes import add_episode_columns

    rep = aggregate([g[1].path for g in group], out, version=version)
    rows: list[dict[str, Any]] = []
    for layer, ds, meta in group:
        lineage = _lineage(Path(ds.path))
        for ep in meta.episodes:
            prov = {"dataset": str(ds.path), "episode_index": ep.index, **dict(ds.provenance),
                    **lineage.get(ep.index, {})}  # fmt: skip
            rows.append({"layer": layer, "provenance": prov, "frames": ep.length})
    if len(rows) != rep.episodes:
        raise MixError(f"{out}: {rep.episodes} episodes were aggregated from {len(rows)} (the sources changed?)")
    add_episode_columns(out, [{"layer": r["layer"], "provenance": json.dumps(r["provenance"], sort_keys=True,
                                                                              default=str)} for r in rows])
    return rows


def _hours(frames: int, fps: float) -> float:
    return round(frames / fps / 3600.0, 6) if fps else 0.0


def _mixture(weights: dict[str, float], per_dataset: dict[str, dict[str, Any]], kinds: dict[str, set[str]],
             name: str, version: str) -> dict[str, Any]:
    layers: dict[str, dict[str, Any]] = {}
    for layer, w in weights.items():
        dsets = [d for d, info in per_dataset.items() if any(r["layer"] == layer for r in info["rows"])]
        eps = [(d, r) for d in dsets for r in per_dataset[d]["rows"] if r["layer"] == layer]
        frames = sum(r["frames"] for _, r in eps)
        seconds = sum(r["frames"] / per_dataset[d]["fps"] for d, r in eps)
        layers[layer] = {"weight": round(w, 6), "datasets": dsets, "episodes": len(eps), "frames": frames,
                         "hours": round(seconds / 3600.0, 6), "kind": "+".join(sorted(kinds.get(layer, set()))) or "-"}
    notes = []
    live = {k: w for k, w in weights.items() if layers[k]["episodes"] and w > 0}
    empty = [k for k in weights if not layers[k]["episodes"]]
    if empty:
        notes.append(f"no episodes in layer(s) {', '.join(empty)}: their weight is shared by the others")
    total = sum(live.values())
    if total <= 0:
        raise MixError(f"{name}: no layer with a positive weight has episodes")
    for k, lay in layers.items():
        lay["effective_weight"] = round(live.get(k, 0.0) / total, 6)
    datasets, episodes = {}, []
    for d, info in per_dataset.items():
        w = 0.0
        for k, lay in layers.items():
            if d in lay["datasets"] and lay["frames"]:
                f = sum(r["frames"] for r in info["rows"] if r["layer"] == k)
                w += lay["effective_weight"] * f / lay["frames"]
        frames = sum(r["frames"] for r in info["rows"])
        datasets[d] = {"path": d, "layers": sorted({r["layer"] for r in info["rows"]}, key=list(weights).index),
                       "weight": round(w, 6), "episodes": len(info["rows"]), "frames": frames,
                       "hours": _hours(frames, info["fps"]), "fps": info["fps"], "version": version,
                       "observation_only": info["observation_only"]}  # fmt: skip
        episodes += [{"dataset": d, "episode_index": i, "layer": r["layer"], "frames": r["frames"],
                      "provenance": r["provenance"]} for i, r in enumerate(info["rows"])]
    return {"release": name, "version": version, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "weights": {k: round(w, 6) for k, w in weights.items()}, "layers": layers, "datasets": datasets,
            "episodes": episodes, "notes": notes}  # fmt: skip


def cut_mixed_release(
    layers: Mapping[str, Sequence[LayerItem] | LayerItem],
    output: str | os.PathLike[str],
    *,
    weights: Mapping[str, float] | None = None,
    version: str = "v3.0",
    episodes: ObservationEpisodesConfig | None = None,
    profile: bool = True,
    release_name: str | None = None,
) -> MixedRelease:
    """Cut one release in ``output`` (atomically) from ``layers``: layer name -> LeRobot dataset folders (robot
    episodes; :class:`LayerDataset` to add provenance) and/or accepted :class:`~robodata.video.shots.Shot` s
    (observation-only episodes, written with ``episodes``). ``weights`` per layer are normalised (none: equal);
    ``release_name`` (default: the output folder's) is the release's name in mixture.json.

    Raises:
        MixError: bad weights, or no layer has episodes.
        LeRobotError, VideoEpisodeError: a dataset or a clip cannot be read (the message names it).
    """
    t0 = time.perf_counter()
    version = FORMAT_VERSIONS.get(version, version)
    norm = normalise_weights(weights, list(layers))
    robot, shots = _split_layers(layers)  # type: ignore[arg-type]
    kinds: dict[str, set[str]] = {}
    for layer, _ in robot:
        kinds.setdefault(layer, set()).add("robot")
    for s in shots:
        kinds.setdefault(s.layer, set()).add("observation_only")
    out = Path(output)
    per_dataset: dict[str, dict[str, Any]] = {}
    skipped: list[tuple[str, str]] = []
    with atomic_path(out, kind="dir") as tmp:
        tmp.mkdir(parents=True, exist_ok=True)  # kind="dir": the temporary folder may exist already
        for i, group in enumerate(_robot_groups(robot)):
            name = ROBOT_DATASET if i == 0 else f"{ROBOT_DATASET}_{i + 1}"
            rows = _write_robot(group, tmp / name, version)
            per_dataset[name] = {"rows": rows, "fps": float(group[0][2].fps), "observation_only": False}
        if shots:
            from robodata.video.episodes import EPISODE_COLUMNS, read_episode_columns, write_observation_episodes

            rep = write_observation_episodes(shots, tmp / VIDEO_DATASET, episodes, version=version)
            skipped = rep.skipped
            cols = read_episode_columns(tmp / VIDEO_DATASET, EPISODE_COLUMNS)
            rows = []
            for c, n in zip(cols, rep.episode_frames, strict=True):
                prov = json.loads(c["provenance"] or "{}")
                prov.update({"clip": c["source_clip"], "shot_index": c["shot_index"], "start_s": c["shot_start_s"],
                             "end_s": c["shot_end_s"], "phash": c["phash"]})
                rows.append({"layer": c["layer"], "provenance": prov, "frames": n})
            per_dataset[VIDEO_DATASET] = {"rows": rows, "fps": float(rep.fps), "observation_only": True}
        if not per_dataset:
            raise MixError(f"{out}: no layer has episodes (every dataset is empty and there are no video shots)")
        mixture = _mixture(norm, per_dataset, kinds, release_name or out.name, version)
        mixture["notes"] += [f"shot {s} left out: {why}" for s, why in skipped[:50]]
        (tmp / MIXTURE_PATH).write_text(json.dumps(mixture, indent=1, default=str) + "\n")
        if profile:
            profile_mix(tmp, mixture, source=str(out)).write(tmp)
    return MixedRelease(out, mixture, {d: out / d for d in per_dataset}, skipped, time.perf_counter() - t0)


# ---- reading a release: weights for training, the profile ----------------------------------------------------


def read_mixture(release: str | os.PathLike[str]) -> dict[str, Any]:
    """``mixture.json`` of a release folder; one :class:`MixError` naming the file when it is missing or bad."""
    path = Path(release) / MIXTURE_PATH
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise MixError(f"{path}: no mixture.json (not a mixed release)") from err
    except ValueError as err:
        raise MixError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), dict):
        raise MixError(f"{path}: lacks 'datasets'")
    return doc


def mixture_weights(release: str | os.PathLike[str]) -> dict[str, float]:
    """How often to draw from each dataset of the release (sums to 1): ``{dataset: weight}``."""
    return {k: float(d["weight"]) for k, d in read_mixture(release)["datasets"].items()}


def episode_sampling_weights(release: str | os.PathLike[str], dataset: str, *, per_frame: bool = False) -> np.ndarray:
    """Sampling weights inside ``dataset`` (sum 1) that give each layer its share: an episode of layer L with n
    frames gets ``w_L * n / frames_L``. ``per_frame``: one weight per frame in the dataset's frame order (for
    ``torch.utils.data.WeightedRandomSampler`` over a ``LeRobotDataset``), else one per episode."""
    mix = read_mixture(release)
    if dataset not in mix["datasets"]:
        raise MixError(f"{Path(release) / MIXTURE_PATH}: no dataset {dataset!r} (datasets: "
                       f"{', '.join(mix['datasets'])})")
    eps = sorted((e for e in mix["episodes"] if e["dataset"] == dataset), key=lambda e: e["episode_index"])
    layer_frames: dict[str, int] = {}
    for e in eps:
        layer_frames[e["layer"]] = layer_frames.get(e["layer"], 0) + int(e["frames"])
    lw = {k: float(v.get("effective_weight", v["weight"])) for k, v in mix["layers"].items()}
    w = np.array([lw.get(e["layer"], 0.0) * int(e["frames"]) / layer_frames[e["layer"]] for e in eps], np.float64)
    if w.sum() <= 0:
        w = np.array([float(e["frames"]) for e in eps])
    w /= w.sum()
    if not per_frame:
        return w
    return np.concatenate([np.full(int(e["frames"]), wi / int(e["frames"])) for e, wi in zip(eps, w, strict=True)])


def profile_mix(release: str | os.PathLike[str], mixture: Mapping[str, Any] | None = None, *,
                source: str | None = None) -> Any:
    """The release's :class:`~robodata.profile.Profile`: every dataset's episodes (named ``<dataset>/episode_i``)
    and cameras, state/action from the robot dataset, and the mix. Observation-only episodes have no motion, so
    no idle time is counted for them."""
    from robodata.profile import Profile, profile_lerobot

    root = Path(release)
    mix = dict(mixture or read_mixture(root))
    parts = [(name, d, profile_lerobot(root / name)) for name, d in mix["datasets"].items()]
    first = next((p for _, d, p in parts if not d.get("observation_only")), parts[0][2])
    episodes, cameras = [], []
    for name, d, p in parts:
        for e in p.episodes:
            e.name = f"{name}/{e.name}"
            if d.get("observation_only"):
                e.idle, e.idle_s = [], 0.0
            episodes.append(e)
        for c in p.cameras:
            c.name = f"{name}/{c.name}"
            cameras.append(c)
    notes = [f"mixed release of {len(parts)} datasets: " + ", ".join(n for n, _, _ in parts), *first.notes]
    return Profile("mixed release", source or str(root), first.fps, first.robot_type, episodes, first.state,
                   first.action, first.topics, cameras, first.idle_speed, first.speed_signal, first.jerk_signal,
                   settings=first.settings, notes=notes, mix=mix)  # fmt: skip


# ---- the Python API's mixed form ------------------------------------------------------------------------------


@dataclass
class MixResult:
    """What :meth:`MixedPipeline.run` did: the release, each robot layer's pipeline run, each video layer's
    scan (accepted / rejected shots, findings on files)."""

    output: str
    published: bool
    mixture: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, list[Any]] = field(default_factory=dict)  # layer -> PipelineResult per source
    rejections: list[Rejection] = field(default_factory=list)
    findings: list[ClipFinding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.published and all(r.ok for rs in self.runs.values() for r in rs)

    def summary(self) -> str:
        lines = [f"mixed release: {'published ' + self.output if self.published else 'NOT published'} "
                 f"({self.seconds:.1f} s)"]
        for name, lay in (self.mixture.get("layers") or {}).items():
            lines.append(f"  layer {name}: weight {lay['weight']:.3f}, {lay['episodes']} episodes, {lay['frames']} "
                         f"frames, {lay['hours']:.4f} h in {', '.join(lay['datasets']) or '-'}")
        lines += [f"  rejected: {r.clip}#{r.index}: {r.reason} ({r.detail})" for r in self.rejections[:20]]
        lines += [f"  finding: {f.path}: {f.problem}" for f in self.findings[:20]]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class MixedPipeline:
    """``robodata.pipeline(sources={layer: [...]}, weights={...}, output=...)``: robot layers through the
    existing pipeline (one run per source), video layers through the corpus scan, then one mixed release.

    ``options`` go to each robot layer's pipeline (``num_gpus``, ``stages``, ``validators``, ``topic_map``, ...);
    ``episodes`` (an :class:`~robodata.video.episodes.ObservationEpisodesConfig` or a dict) shapes the video
    episodes, ``corpus`` is the corpus scan's config, ``work_dir`` holds each layer's intermediate dataset.
    """

    def __init__(self, sources: Mapping[str, Any], output: str, *, weights: Mapping[str, float] | None = None,
                 format: str = "lerobot-v3", episodes: ObservationEpisodesConfig | Mapping[str, Any] | None = None,
                 corpus: Any = None, work_dir: str | None = None, **options: Any):
        from robodata.sources import as_sources

        if not output or not str(output).strip("/"):
            raise MixError("pipeline(sources={...}): no output (a folder or URL for the release)")
        if format not in ("lerobot-v3", "lerobot-v2.1"):
            raise MixError(f"pipeline(sources={{...}}): format {format!r} is not lerobot-v3 or lerobot-v2.1")
        self.layers = {str(name): as_sources(items, str(name)) for name, items in sources.items()}
        empty = [k for k, v in self.layers.items() if not v]
        if empty:
            raise MixError(f"pipeline(sources={{...}}): layer {empty[0]!r} has no sources")
        self.weights = normalise_weights(weights, list(self.layers))
        self.output = str(output)
        self.version = FORMAT_VERSIONS[format]
        self.format = format
        try:
            self.episodes = (episodes if isinstance(episodes, ObservationEpisodesConfig)
                             else ObservationEpisodesConfig.model_validate(dict(episodes or {})))
        except ValidationError as err:
            from robodata.topicmap import format_validation_error

            raise MixError(format_validation_error(err, "pipeline(episodes=...)")) from err
        self.corpus = corpus
        self.work_dir = work_dir
        self.options = options

    @classmethod
    def from_config(cls, config: MixConfig, output: str, **options: Any) -> MixedPipeline:
        """The pipeline of a release config (sources, weights, format, episodes)."""
        return cls(config.sources, output, weights=config.weights or None, format=config.format,
                   episodes=config.episodes, **options)

    def _corpus_config(self) -> Any:
        from robodata.video.config import VideoCorpusConfig

        if self.corpus is None or isinstance(self.corpus, VideoCorpusConfig):
            return self.corpus
        try:
            return VideoCorpusConfig.model_validate(dict(self.corpus))
        except (ValidationError, TypeError, ValueError) as err:
            raise MixError(f"pipeline(corpus=...): not a video corpus config ({err})") from err

    def _robot_layer(self, layer: str, srcs: list[Any], work: str, result: MixResult) -> list[LayerDataset]:
        from robodata.api import pipeline

        out: list[LayerDataset] = []
        for i, src in enumerate(srcs):
            if src.kind == "lerobot":
                out.append(LayerDataset(src.url, {"kind": src.kind, "source": src.url}))
                continue
            run = pipeline(src.pipeline_source(), output=f"{work}/{layer}/{i:03d}", format=self.format,
                           **self.options).run()
            result.runs.setdefault(layer, []).append(run)
            if run.published:
                out.append(LayerDataset(run.output, {"kind": src.kind, "source": src.url, "run_id": run.run_id}))
            else:
                result.notes.append(f"layer {layer}: {src.url} published nothing ({'; '.join(run.notes) or 'failed'})")
        return out

    def _video_layer(self, layer: str, srcs: list[Any], result: MixResult) -> list[Shot]:
        from robodata.video.corpus import scan_corpus
        from robodata.video.generated import GENERATED, list_generated

        ray_address = self.options.get("ray_address")
        corpus = self._corpus_config()
        shots: list[Shot] = []
        for src in srcs:
            if src.kind == "cosmos":  # listed with their provenance, then filtered and deduplicated like any clip
                listing = list_generated(src.url)
                result.findings += listing.findings
                prov = {_clip_key(c): p for c, p in listing.provenance_of().items()}
                scan = scan_corpus([s.clip for s in listing.shots], corpus, layer=GENERATED,
                                   ray_address=ray_address) if listing.shots else None  # fmt: skip
                got = [replace(s, provenance={**s.provenance, **prov.get(_clip_key(s.clip), {}), "kind": GENERATED,
                                              "source": src.url}) for s in (scan.shots if scan else [])]  # fmt: skip
            else:
                scan = scan_corpus([src.url], corpus, layer=layer, ray_address=ray_address)
                got = [replace(s, provenance={**s.provenance, "kind": "video", "source": src.url}) for s in scan.shots]
            if scan is not None:
                result.rejections += list(scan.rejections)
                result.findings += list(scan.findings)
            shots += [replace(s, layer=layer) for s in got]
        return shots

    def run(self) -> MixResult:
        """Build every layer, cut the release into ``output`` (published atomically) and return what happened."""
        from robodata.storage import DataStore

        t0 = time.perf_counter()
        result = MixResult(self.output, False)
        out = self.output.rstrip("/")
        parent, _, name = out.rpartition("/")
        work = (self.work_dir or f"{parent or '.'}/.{name}.robodata").rstrip("/") + "/layers"
        inputs: dict[str, list[LayerItem]] = {}
        for layer, srcs in self.layers.items():
            items: list[LayerItem] = list(self._robot_layer(layer, [s for s in srcs if not s.is_video], work, result))
            items += self._video_layer(layer, [s for s in srcs if s.is_video], result)
            inputs[layer] = items
        target = DataStore(parent or ".")
        with tempfile.TemporaryDirectory(prefix="robodata-mix-") as tmp, target.staged(name) as staged:
            local: dict[str, list[LayerItem]] = {}
            for layer, items in inputs.items():
                local[layer] = []
                for j, it in enumerate(items):
                    if isinstance(it, LayerDataset) and "://" in str(it.path) and not str(it.path).startswith("file://"):
                        dst = Path(tmp) / f"{layer}-{j:03d}"
                        up, _, leaf = str(it.path).rstrip("/").rpartition("/")
                        with DataStore(up).read_path(leaf) as p:
                            shutil.copytree(p, dst)
                        it = LayerDataset(dst, it.provenance)
                    local[layer].append(it)
            rel = cut_mixed_release(local, staged, weights=self.weights, version=self.version, episodes=self.episodes,
                                    release_name=name)
            result.mixture = rel.mixture
            result.output = target.publish(staged, name)
            result.published = True
        result.seconds = round(time.perf_counter() - t0, 3)
        return result


def _clip_key(url: str) -> str:
    """A clip's URL as the corpus scan names it (local paths resolved)."""
    if "://" in url and not url.startswith("file://"):
        return url
    return str(Path(url.removeprefix("file://")).resolve())


def mixed_pipeline(sources: Mapping[str, Any], output: str | None, **options: Any) -> MixedPipeline:
    """The dispatch target of ``robodata.pipeline(sources={layer: [...]}, weights=..., output=...)``."""
    if output is None:
        raise MixError("pipeline(sources={...}): no output (a folder or URL for the release)")
    return MixedPipeline(sources, str(output), **options)


__all__ = [
    "LayerDataset",
    "MixConfig",
    "MixError",
    "MixResult",
    "MixedPipeline",
    "MixedRelease",
    "cut_mixed_release",
    "episode_sampling_weights",
    "mix_config",
    "mixture_weights",
    "normalise_weights",
    "profile_mix",
    "read_mixture",
]
