"""What users extend: datasources, pipeline stages, validators and metrics over episodes.

The unit that flows through a pipeline is an **episode row** (a dict), one per canonical episode:

=================  =====================================================================================
``episode_id``     ``<recording key>/<demo>``: stable across runs (the key holds a 128-bit content hash)
``recording``      the recording's key; ``source`` its URL; ``store`` the canonical HDF5 it was ingested to
``demo``           the episode's group in that store (``demo_0``, ...)
``num_frames``     frames; ``fps`` the episode clock; ``task`` its task text; ``success`` (bool)
``action``         float32 ``(num_frames, A)``: what LeRobot will write as ``action``
``observation.state``  float32 ``(num_frames, S)``: what LeRobot will write as ``observation.state``
=================  =====================================================================================

Camera frames stay in the canonical store (they are large); stages change the low-dim arrays, the task text
or drop episodes, and may add columns of their own. Columns starting with ``_`` are robodata's.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from robodata.api.errors import PipelineError
from robodata.pathkind import HDF5_SUFFIXES
from robodata.stages.base import Finding

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

    from robodata.config import ProjectConfig
    from robodata.ingest import IngestReport
    from robodata.topicmap import TopicMap

REQUIRED_COLUMNS = ("episode_id", "recording", "source", "store", "demo", "num_frames", "fps", "task", "success",
                    "action", "observation.state")
ARRAY_COLUMNS = ("action", "observation.state")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Named:
    """A name for messages and YAML: the class attribute ``name``, else the class name in snake case."""

    name: ClassVar[str] = ""

    @property
    def label(self) -> str:
        return self.name or snake(type(self).__name__)


# ---- datasources ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceItem:
    """One recording a datasource found: its name (for keys and topic-map patterns) and URL."""

    name: str
    url: str
    size: int = 0
    is_dir: bool = False


class SourceFindingsError(PipelineError):
    """A ``strict`` datasource found gaps in a recording (what its reader would convert around): each finding is
    an error, and the run fails naming the recording and every finding; nothing of it is written."""

    def __init__(self, recording: str, findings: Sequence[Finding]):
        self.recording, self.findings = recording, list(findings)
        lines = "\n".join(f"  {f.severity}: {f.where + ': ' if f.where else ''}{f.message}" for f in self.findings)
        super().__init__(f"{recording}: {len(self.findings)} finding(s), and strict=True makes each an error; "
                         f"nothing written:\n{lines}")


class Datasource(_Named):
    """Finds recordings under a path and turns one into canonical episodes.

    Subclass and override :meth:`matches` (which files are recordings of this kind) or :meth:`list`, and
    :meth:`ingest` for a format robodata does not read itself (write the canonical Isaac Lab HDF5 with
    :class:`robodata.formats.isaaclab.EpisodeStoreWriter`).

    Options are the constructor's keyword parameters (a subclass declares its own, ``fps: float = 20.0``, and
    passes the rest on); one nobody takes is an error naming it. ``extra_options`` names options a subclass
    reads from :attr:`options` instead. ``strict``: the findings the ingest reports are errors (the run fails).
    """

    suffixes: ClassVar[tuple[str, ...]] = ()
    needs_topic_map: ClassVar[bool] = True
    extra_options: ClassVar[tuple[str, ...]] = ()
    strict: bool = False

    def __init__(self, path: str, topic_map: str | dict[str, Any] | None = None, pattern: str = "*", **options: Any):
        unknown = sorted(set(options) - set(self.extra_options))
        if unknown:
            raise PipelineError(f"datasource {self.label!r} ({path}): unknown option(s) {', '.join(unknown)} "
                                f"(it takes {', '.join(self.option_names()) or 'none'})")
        self.path = str(path)
        self.topic_map = topic_map
        self.pattern = pattern
        self.options = options

    @classmethod
    def option_names(cls) -> list[str]:
        """Every option this datasource takes: its constructors' keyword parameters and ``extra_options``."""
        names: set[str] = set(cls.extra_options)
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "path"):
                    names.add(p.name)
        return sorted(names)

    def matches(self, name: str, is_dir: bool) -> bool:
        return not is_dir and name.lower().endswith(self.suffixes)

    def list(self) -> list[SourceItem]:
        """Every recording under ``path`` (recursively; a ROS 2 bag folder is one recording), sorted by URL."""
        import fnmatch

        import fsspec

        fs, root = fsspec.core.url_to_fs(self.path)
        proto = self.path.split("://", 1)[0] + "://" if "://" in self.path else ""
        if not fs.exists(root):
            raise PipelineError(f"{self.path}: no such file or folder (source of type {self.label!r})")
        if not fs.isdir(root):
            info = fs.info(root)
            return [SourceItem(Path(root).name, proto + root, int(info.get("size") or 0))]
        items = []
        bag_dirs = {p.rsplit("/", 1)[0] for p in fs.find(root) if p.endswith("/metadata.yaml")}
        for p, info in sorted(fs.find(root, detail=True).items()):
            name = p.rsplit("/", 1)[-1]
            if name.startswith(".") or "/." in p[len(root):] or any(p.startswith(d + "/") for d in bag_dirs):
                continue
            if fnmatch.fnmatch(name, self.pattern) and self.matches(name, False):
                items.append(SourceItem(name, proto + p, int(info.get("size") or 0)))
        for d in sorted(bag_dirs):
            name = d.rsplit("/", 1)[-1]
            if fnmatch.fnmatch(name, self.pattern) and self.matches(name, True):
                items.append(SourceItem(name, proto + d, 0, True))
        return sorted(items, key=lambda i: i.url)

    @property
    def reads_itself(self) -> bool:
        """Whether this datasource ingests with its own :meth:`ingest` (a format robodata does not read)."""
        return type(self).ingest is not Datasource.ingest

    def reading_options(self, name: str, project: ProjectConfig | None = None) -> dict[str, Any]:
        """What, besides the recording's bytes, shapes the canonical store of recording ``name`` (it is part of
        the store's name in the working store, so a run with other options ingests again). robodata's readers
        take the Isaac Lab HDF5 options (``fps``, ``quaternion_order``) of the project config's ``sources:``
        entry for an HDF5 file; a subclass adds its own (which win)."""
        if self.reads_itself or project is None or not name.lower().endswith(HDF5_SUFFIXES):
            return {}
        return dict(project.hdf5_options_for(name))

    def ingest(self, recording: Path, out: Path, topic_map: TopicMap | None, *, min_frames: int,
               max_frames: int, image_compression: str = "none") -> IngestReport:
        """Write ``recording``'s episodes as a canonical store at ``out`` (default: robodata's readers, which
        the runner calls itself with :meth:`reading_options`).

        The report's ``notes`` (what was assumed: no timestamps, the quaternion order) reach the run's result;
        so do its ``findings`` when it has them (:class:`robodata.stages.base.Finding`, ``where`` relative to
        the recording: the feature, the file inside it), which are errors for a ``strict`` source (or raise
        :class:`SourceFindingsError` before writing anything)."""
        from robodata.ingest import ingest_recording

        return ingest_recording(recording, out, topic_map, min_frames=min_frames, max_frames=max_frames,
                                image_compression=image_compression,  # type: ignore[arg-type]
                                **self.reading_options(recording.name))


# ---- stages -------------------------------------------------------------------------------------------------


class PipelineStage(_Named):
    """A step over episodes. Override one of:

    - :meth:`process_episode` (one episode row in, a row or ``None`` to drop it out),
    - :meth:`process_batch` (a batch: a dict of column -> numpy array, ``batch_size`` rows; variable-length
      arrays such as ``action`` are object arrays of per-episode arrays),
    - :meth:`process` (the whole ``ray.data.Dataset``, for joins, shuffles, custom Ray Data operators).

    ``num_gpus`` per worker is requested where the cluster has GPUs. A stage that raises, or returns rows
    without the required columns, fails only the episodes it was given (named in the result).
    """

    num_gpus: ClassVar[float] = 0.0
    batch_size: ClassVar[int | None] = None  # default: the pipeline's batch_size
    seed: int = 0  # set from the pipeline's seed before the run

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any] | None:
        return episode

    def process_batch(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def process(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        raise NotImplementedError

    def overrides(self, method: str) -> bool:
        return getattr(type(self), method) is not getattr(PipelineStage, method)


# ---- validators and metrics ---------------------------------------------------------------------------------


class Validator(_Named):
    """Checks episodes (and, optionally, the written dataset). An ``error`` finding from a ``blocking``
    validator keeps the episode out of the output (it is quarantined with its findings); warnings only report."""

    blocking: ClassVar[bool] = True

    def validate_episode(self, episode: dict[str, Any]) -> Iterable[Finding]:
        return ()

    def validate_dataset(self, path: Path) -> Iterable[Finding]:
        """Findings on the staged output dataset; a blocking error keeps the whole output unpublished."""
        return ()

    def finding(self, message: str, episode: dict[str, Any] | None = None, severity: str = "error") -> Finding:
        where = str(episode.get("episode_id", "")) if episode else ""
        return Finding(self.label, message, "warning" if severity == "warning" else "error", where)


class Metric(_Named):
    """A number (or several) per episode, aggregated over the run (mean, min, max) in the result."""

    def compute(self, episode: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError
