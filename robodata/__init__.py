"""robodata: turn robot teleoperation recordings into training-ready LeRobot datasets and policies.

The Python API (``robodata.pipeline``, ``robodata.PipelineBuilder``, ``robodata.PipelineStage``, ...) is
imported on first use, so that ``import robodata`` stays cheap for the readers and writers.
"""

from __future__ import annotations

from typing import Any

from robodata import sources as sources  # robodata.sources.isaac_lab(url), cosmos(url), video(url): a mixed release

__version__ = "0.1.0"

_API = ("pipeline", "PipelineBuilder", "Pipeline", "PipelineResult", "PipelineStage", "Validator", "Metric",
        "Datasource", "SourceItem", "Finding", "PipelineError", "load_spec")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from robodata import api

        return getattr(api, name)
    raise AttributeError(f"module 'robodata' has no attribute {name!r}")
