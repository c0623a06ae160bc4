"""Errors of the Python API."""

from __future__ import annotations

from robodata.errors import RobodataError


class PipelineError(RobodataError):
    """A pipeline is misconfigured (a source, stage, validator or output); the message names what and where."""
