"""Stage validators as Dagster asset checks: specs from the stage, results from its outcome."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from robodata.stages.base import CheckResult, OutputValidator


def check_specs(asset: str, validators: Sequence[type[OutputValidator]]) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(v.name, asset=asset, blocking=v.blocking, description=v.description) for v in validators]


def check_result(check: CheckResult) -> dg.AssetCheckResult:
    """A validator's verdict as Dagster shows it: lists and dicts as JSON, ``*_md`` strings as Markdown (a
    report with its plots inlined), the findings."""
    meta = {k: dg.MetadataValue.json(v) if isinstance(v, (list, dict))
            else dg.MetadataValue.md(v) if k.endswith("_md") and isinstance(v, str) else v
            for k, v in check.metadata.items()}
    if check.findings and "findings" not in meta:
        meta["findings"] = dg.MetadataValue.json([str(f) for f in check.findings][:50])
    return dg.AssetCheckResult(
        check_name=check.name, passed=check.passed, metadata=meta,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
    )


def metadata_values(report: Mapping[str, Any], *, paths: Sequence[str] = (), images: Mapping[str, str] | None = None,
                    code: Sequence[str] = ()) -> dict[str, Any]:
    """A stage's plain summary as Dagster metadata: dicts and lists as JSON, the keys in ``paths`` as paths, PNG
    bytes under ``images`` (key -> caption) inlined, the keys in ``code`` as code blocks; None and empty images
    left out."""
    from robodata.plots import markdown_image

    images = images or {}
    out: dict[str, Any] = {}
    for k, v in report.items():
        if v is None:
            continue
        if k in images:
            if v:
                out[k] = dg.MetadataValue.md(markdown_image(v, images[k]))
        elif k in paths:
            out[k] = dg.MetadataValue.path(str(v))
        elif k in code:
            out[k] = dg.MetadataValue.md(f"```\n{v}\n```")
        elif isinstance(v, (dict, list, tuple)):
            out[k] = dg.MetadataValue.json(list(v) if isinstance(v, tuple) else v)
        else:
            out[k] = v
    return out
