"""The declarative pipeline: one YAML (or dict) that both runners read.

.. code-block:: yaml

    sources:
      - type: mcap
        path: s3://bucket/bags/
    output: s3://bucket/curated/
    num_gpus: 4
    batch_size: 1024

Every key does something; an unknown key is an error naming it. Relative local paths resolve against the
file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from robodata.api.errors import PipelineError
from robodata.topicmap import format_validation_error
from robodata.yamlfile import read_yaml

Format = Literal["lerobot-v3", "lerobot-v2.1"]
FORMAT_VERSIONS = {"lerobot-v3": "v3.0", "lerobot-v2.1": "v2.1"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    """Where recordings are: a datasource ``type`` (``auto``, ``mcap``, ``rosbag``, ``ros2``, ``hdf5``, or a
    plugin's), a path or URL (a file or a folder, searched recursively), an optional topic map and pattern."""

    type: str = "auto"
    path: str
    topic_map: str | dict[str, Any] | None = None
    pattern: str = "*"
    options: dict[str, Any] = Field(default_factory=dict)


class ComponentSpec(BaseModel):
    """A stage, validator or metric by registered name; every other key is passed to its constructor."""

    model_config = ConfigDict(extra="allow")
    type: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PipelineSpec(_Strict):
    # Both are needed to run (robodata run, robodata.pipeline); the platform, which takes only the stages and
    # validators of a pipeline YAML (its sources are the landing zone, its output the release), accepts
    # a YAML without them.
    sources: list[SourceSpec] = Field(default_factory=list)
    output: str = ""
    format: Format = "lerobot-v3"
    num_gpus: float = Field(0, ge=0, description="GPUs the pipeline may use (GPU stages, NVENC) where Ray has them")
    batch_size: int = Field(64, ge=1, description="rows per batch for batch stages and validators")
    seed: int = Field(0, description="handed to every stage (deterministic augmentation, sampling)")
    stages: list[ComponentSpec] = Field(default_factory=list)
    validators: list[ComponentSpec] = Field(default_factory=list)
    metrics: list[ComponentSpec] = Field(default_factory=list)
    dedup: bool | Literal["report", "exclude_exact", "exclude_all"] = Field(
        True, description="duplicate episodes (robodata.dedup: exact copies, re-recorded or re-exported "
        "demonstrations, matching frames): true = the project config's quality.dedup policy (default "
        "exclude_exact), a policy name, or false (no dedup)")
    profile: bool = Field(False, description="write a profiling report with the output (meta/robodata_profile/"
                          "profile.html: distributions, lengths, jerk, idle, camera exposure)")
    topic_map: str | dict[str, Any] | None = Field(None, description="for message recordings without their own")
    config: str | None = Field(None, description="a robodata project config: topic maps by pattern, codec, bounds")
    ray_address: str | None = Field(None, description="a Ray cluster; default: the embedded Ray")
    work_dir: str | None = Field(None, description="staging, resume state, quarantine (default: beside output)")
    task: str | None = Field(None, description="task text for episodes that carry none")

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, v: Any) -> Any:
        items = [v] if isinstance(v, (str, dict)) else list(v or [])
        return [{"path": s} if isinstance(s, str) else s for s in items]

    def require_runnable(self, where: str = "the pipeline") -> None:
        """What running needs beyond what the platform needs: sources and an output."""
        if not self.sources:
            raise PipelineError(f"{where}: no sources (give at least one path or URL under 'sources')")
        if not self.output.strip("/"):
            raise PipelineError(f"{where}: no output (a folder or URL for the LeRobot dataset)")

    @property
    def version(self) -> str:
        return FORMAT_VERSIONS[self.format]

    def resolved(self, base: Path) -> PipelineSpec:
        """A copy with relative local paths made absolute against ``base``."""

        def fix(p: Any) -> Any:
            if isinstance(p, str) and "://" not in p and not Path(p).is_absolute():
                return str((base / p).resolve())
            return p

        out = self.model_copy(deep=True)
        out.output = fix(out.output) if out.output else ""
        out.work_dir = fix(out.work_dir)
        out.config = fix(out.config)
        out.topic_map = fix(out.topic_map)
        for s in out.sources:
            s.path, s.topic_map = fix(s.path), fix(s.topic_map)
        return out


def load_spec(source: str | Path | dict[str, Any]) -> PipelineSpec:
    """Read a pipeline spec from YAML (or a dict); errors name the file and the key."""
    if isinstance(source, dict):
        data, where, base = source, "<pipeline>", Path.cwd()
    else:
        path = Path(source)
        where, base = str(path), path.resolve().parent
        data = read_yaml(path, PipelineError, "pipeline file")
    if not isinstance(data, dict):
        raise PipelineError(f"{where}: a pipeline is a mapping of keys (sources, output, ...)")
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as err:
        raise PipelineError(format_validation_error(err, where)) from err
    return spec.resolved(base)
