"""What a pipeline run reports: episodes in and out, what was dropped and why, duplicates, findings, lineage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PipelineResult:
    run_id: str
    output: str  # the published dataset ("" when nothing was published)
    format: str
    published: bool
    recordings: list[dict[str, Any]] = field(default_factory=list)  # key, source, episodes, frames
    episodes_in: int = 0
    episodes_out: int = 0
    frames_out: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)  # episode_id, stage, reason
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # left out by policy: episode_id, twin, kind
    # reported and kept: near copies the policy keeps (exclude_exact), augmented visual variants
    kept_duplicates: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)  # with profile=True: the report's path and headline numbers
    failed: list[dict[str, Any]] = field(default_factory=list)  # episode_id or source, stage, error
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # episode_id, findings
    # every finding, warnings too: a datasource's on a recording (check: the source type, where: "URL: feature"),
    # then the validators' (check, message, severity, where)
    findings: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> mean/min/max/count
    lineage: list[dict[str, Any]] = field(default_factory=list)  # per output episode: index, episode_id, source
    resumed_episodes: int = 0  # parts already published by an earlier (interrupted) run, not rewritten
    quarantine: str = ""  # where a dataset that failed a blocking check was kept
    seconds: float = 0.0
    num_gpus: float = 0.0
    notes: list[str] = field(default_factory=list)  # the run's, then each ingest's ("URL: no timestamps ...")

    @property
    def ok(self) -> bool:
        """Published, and no episode failed (drops, duplicates and quarantined episodes are policy, not errors)."""
        return self.published and not self.failed

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)

    def summary(self) -> str:
        lines = [
            f"run {self.run_id}: {'published ' + self.output if self.published else 'NOT published'} ({self.format})",
            f"  recordings {len(self.recordings)}, episodes in {self.episodes_in}, out {self.episodes_out} "
            f"({self.frames_out} frames), resumed {self.resumed_episodes}, {self.seconds:.1f} s",
        ]
        for label, rows in (("dropped", self.dropped), ("duplicates", self.duplicates),
                            ("kept duplicates", self.kept_duplicates), ("failed", self.failed),
                            ("quarantined", self.quarantined)):
            for r in rows[:20]:
                what = r.get("episode_id") or r.get("source", "")
                why = r.get("reason") or r.get("error") or (
                    f"{r.get('kind', 'exact')} twin of {r['twin']}" if "twin" in r else "")
                if not why and r.get("findings"):
                    why = "; ".join(str(f.get("message", f)) for f in r["findings"][:3])
                lines.append(f"  {label}: {what}: {why}")
            if len(rows) > 20:
                lines.append(f"  {label}: ... {len(rows) - 20} more")
        for f in self.findings[:20]:
            lines.append(f"  finding: {f.get('severity', 'error')}: {f.get('check', '')}: "
                         f"{f['where'] + ': ' if f.get('where') else ''}{f.get('message', '')}")
        if len(self.findings) > 20:
            lines.append(f"  finding: ... {len(self.findings) - 20} more")
        for name, agg in sorted(self.metrics.items()):
            lines.append(f"  metric {name}: mean {agg['mean']:.4g} min {agg['min']:.4g} max {agg['max']:.4g}")
        if self.quarantine:
            lines.append(f"  quarantined output: {self.quarantine}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
