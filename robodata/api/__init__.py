"""The Python API: pipelines of robodata's stages (and yours) on Ray Data, for people who never open the UI.

.. code-block:: python

    import robodata
    result = robodata.pipeline(sources="bags/", output="lerobot/").run()
    print(result.summary())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from robodata.api.errors import PipelineError
from robodata.api.extensions import Datasource, Metric, PipelineStage, SourceItem, Validator
from robodata.api.result import PipelineResult
from robodata.api.runner import Pipeline
from robodata.api.spec import ComponentSpec, PipelineSpec, SourceSpec, load_spec
from robodata.stages.base import Finding
from robodata.topicmap import format_validation_error

__all__ = [
    "ComponentSpec",
    "Datasource",
    "Finding",
    "Metric",
    "Pipeline",
    "PipelineBuilder",
    "PipelineError",
    "PipelineResult",
    "PipelineSpec",
    "PipelineStage",
    "SourceItem",
    "SourceSpec",
    "Validator",
    "load_spec",
    "pipeline",
]


def _split(items: Any, base: type) -> tuple[list[Any], list[Any]]:
    """Objects of ``base`` given directly, and names/specs to look up as plugins."""
    objs: list[Any] = []
    specs: list[Any] = []
    for it in [items] if isinstance(items, (str, dict, base)) else list(items or []):
        (objs if isinstance(it, base) else specs).append(it if not isinstance(it, str) else {"type": it})
    return objs, specs


def _in_order(items: Any, base: type, specs: list[Any]) -> list[Any]:
    """``items`` as given, each name/spec replaced by its validated :class:`ComponentSpec` (``specs``, in order):
    one list, so that stage objects and stage names run in the order the user wrote them."""
    validated = iter(specs)
    return [it if isinstance(it, base) else next(validated)
            for it in ([items] if isinstance(items, (str, dict, base)) else list(items or []))]


def pipeline(sources: Any = None, output: str | None = None, **options: Any) -> Pipeline:
    """A pipeline from sources (a path or URL, a list of them, ``{type, path, topic_map}`` dicts or
    :class:`Datasource` objects) to ``output`` (a folder or URL for the LeRobot dataset).

    ``robodata.pipeline("pipeline.yaml")`` reads the declarative form instead. Options: ``format``
    (``lerobot-v3`` | ``lerobot-v2.1``), ``num_gpus``, ``batch_size``, ``seed``, ``stages``, ``validators``,
    ``metrics`` (objects or registered names), ``dedup`` (``True``: the project's ``quality.dedup`` policy, else
    ``exclude_exact``; a policy name; ``False``), ``profile`` (an HTML profile written with the output),
    ``topic_map``, ``config`` (a project config), ``ray_address``, ``work_dir``, ``task``.

    ``sources={layer: [...]}`` with ``weights={layer: w}`` cuts one release mixed from every layer (robot layers
    through this pipeline, video layers through the corpus scan): see :class:`robodata.mix.MixedPipeline`.
    """
    if isinstance(sources, dict) and "path" not in sources:  # layer -> sources (a source spec always has a path)
        from robodata.mix import mixed_pipeline

        return mixed_pipeline(sources, output, **options)  # type: ignore[return-value]
    if output is None and isinstance(sources, (str, Path)) and str(sources).endswith((".yaml", ".yml")):
        if options:
            raise PipelineError(f"{sources}: give options in the YAML, not as arguments ({', '.join(options)})")
        return Pipeline(load_spec(sources))
    if output is None:
        raise PipelineError("pipeline() needs an output folder or URL (or a pipeline YAML as its only argument)")
    src_items = [sources] if isinstance(sources, (str, Path, dict, Datasource)) else list(sources or [])
    src_objs = [s for s in src_items if isinstance(s, Datasource)]
    src_specs = [{"path": str(s)} if isinstance(s, (str, Path)) else s for s in src_items
                 if not isinstance(s, Datasource)]
    if not src_items:
        raise PipelineError("pipeline() needs at least one source (a path or URL, or a Datasource)")
    given: dict[str, Any] = {}
    for kind, base in (("stages", PipelineStage), ("validators", Validator), ("metrics", Metric)):
        given[kind] = options.pop(kind, ())
        _, options[kind] = _split(given[kind], base)
    doc = {"sources": src_specs or [{"path": src_objs[0].path}], "output": str(output), **options}
    try:
        spec = PipelineSpec.model_validate(doc).resolved(Path.cwd())
    except ValidationError as err:
        raise PipelineError(format_validation_error(err, "robodata.pipeline()")) from err
    if not src_specs:  # only Datasource objects: the spec's placeholder source goes
        spec.sources = []
    kw: dict[str, Any] = {}
    for kind, base in (("stages", PipelineStage), ("validators", Validator), ("metrics", Metric)):
        if any(isinstance(it, base) for it in _split(given[kind], base)[0]):  # objects too: one ordered list
            kw[kind] = _in_order(given[kind], base, list(getattr(spec, kind)))
            setattr(spec, kind, [])
    return Pipeline(spec, datasources=src_objs, **kw)


class PipelineBuilder:
    """Build a pipeline step by step::

        p = (robodata.PipelineBuilder()
             .source("mcap", "bags/", topic_map="maps/arm.yaml")
             .stage(MyStage())
             .validate(MyValidator())
             .output("out/", format="lerobot-v3")
             .build())
    """

    def __init__(self) -> None:
        self._sources: list[dict[str, Any]] = []
        self._datasources: list[Datasource] = []
        self._parts: dict[str, list[Any]] = {"stages": [], "validators": [], "metrics": []}
        self._options: dict[str, Any] = {}
        self._output: str | None = None

    def source(self, kind: str | Datasource, path: str | None = None, **options: Any) -> PipelineBuilder:
        """A datasource: ``.source("mcap", URL, topic_map=...)``, ``.source(URL)`` (any kind), or an object."""
        if isinstance(kind, Datasource):
            self._datasources.append(kind)
        elif path is None:
            self._sources.append({"type": "auto", "path": kind, **options})
        else:
            known = {"topic_map", "pattern"}
            self._sources.append({"type": kind, "path": path, **{k: v for k, v in options.items() if k in known},
                                  "options": {k: v for k, v in options.items() if k not in known}})
        return self

    def _add(self, kind: str, item: Any, options: dict[str, Any]) -> PipelineBuilder:
        self._parts[kind].append({"type": item, **options} if isinstance(item, str) else item)
        return self

    def stage(self, stage: PipelineStage | str, **options: Any) -> PipelineBuilder:
        return self._add("stages", stage, options)

    def validate(self, validator: Validator | str, **options: Any) -> PipelineBuilder:
        return self._add("validators", validator, options)

    def metric(self, metric: Metric | str, **options: Any) -> PipelineBuilder:
        return self._add("metrics", metric, options)

    def output(self, url: str, format: str = "lerobot-v3") -> PipelineBuilder:
        self._output, self._options["format"] = url, format
        return self

    def options(self, **options: Any) -> PipelineBuilder:
        """``num_gpus``, ``batch_size``, ``seed``, ``dedup``, ``config``, ``ray_address``, ``work_dir``, ..."""
        self._options.update(options)
        return self

    def build(self) -> Pipeline:
        if self._output is None:
            raise PipelineError("PipelineBuilder: call .output(URL) before .build()")
        if not (self._sources or self._datasources):
            raise PipelineError("PipelineBuilder: add at least one .source(...)")
        return pipeline([*self._sources, *self._datasources], self._output, **self._parts, **self._options)
