"""The stage contract: typed config, declared inputs and output, the work, its validators, then publish.

Every tier is a :class:`Stage`. :meth:`Stage.run` writes the output to a staging path, runs the stage's
validators on the staged output, and only when no blocking validator failed **publishes** it (an atomic
rename, or an upload then a move on object stores). An output that fails a blocking validator is moved to
``quarantine/`` with its findings. Downstream stages, releases and users only ever see published outputs.

Both runners drive stages: the Dagster assets (one stage per asset, findings become asset checks) and the
Python API (``robodata.pipeline``) on Ray Data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel

from robodata.errors import RobodataError
from robodata.storage import DataStore

Severity = Literal["error", "warning"]


@dataclass
class Finding:
    """One thing a validator found: which check, what, how bad, where (a file, an episode)."""

    check: str
    message: str
    severity: Severity = "error"
    where: str = ""

    def __str__(self) -> str:
        return f"{self.severity}: {self.check}: {self.where + ': ' if self.where else ''}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class OutputValidator(ABC):
    """Checks a staged output (a file or a folder) before it is published.

    ``blocking`` validators keep a failing output from being published; the others only report.
    """

    name: ClassVar[str] = "validator"
    blocking: ClassVar[bool] = True
    description: ClassVar[str] = ""

    @abstractmethod
    def validate(self, path: Path) -> list[Finding]:
        """The findings on the staged output at ``path`` (empty: it passed)."""


VerdictT = TypeVar("VerdictT")


class SharedVerdicts(ABC, Generic[VerdictT]):
    """One computation over a staged output that several validators read their part of: computed once per
    path, however many validators ask (a GX suite pair, the four checks of a generated or augmented store)."""

    def __init__(self) -> None:
        self._done: dict[Path, VerdictT] = {}

    @abstractmethod
    def compute(self, path: Path) -> VerdictT:
        """The verdicts on the staged output at ``path``."""

    def on(self, path: Path) -> VerdictT:
        if path not in self._done:
            self._done[path] = self.compute(path)
        return self._done[path]


@dataclass
class CheckResult:
    """A validator's verdict on one output (what an asset check shows)."""

    name: str
    passed: bool
    blocking: bool
    findings: list[Finding] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageOutcome:
    """What one run of a stage did: where the output is (published, or quarantined), checks, the report."""

    stage: str
    output: str  # the output's path in the store
    published: bool
    url: str = ""
    quarantined: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    report: Any = None

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.checks for f in c.findings]

    @property
    def blocking_failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking and not c.passed]


class StageFailed(RobodataError):
    """A stage's output failed a blocking validator; it is in quarantine, never published."""

    def __init__(self, outcome: StageOutcome):
        self.outcome = outcome
        failed = "; ".join(f"{c.name}: {c.findings[0] if c.findings else 'failed'}" for c in outcome.blocking_failures)
        super().__init__(f"{outcome.stage}: {outcome.output} failed blocking checks ({failed}); "
                         f"kept in quarantine at {outcome.quarantined}")


def run_validators(path: Path, validators: Sequence[OutputValidator]) -> list[CheckResult]:
    """Run every validator on ``path``; a validator that raises fails its check with the error as finding."""
    out = []
    for v in validators:
        try:
            found = v.validate(path)
            meta = getattr(v, "last_metadata", {}) or {}
        except Exception as err:  # noqa: BLE001 - a broken validator fails its own check, named
            found = [Finding(v.name, f"the validator raised {type(err).__name__}: {err}", "error", str(path))]
            meta = {}
        passed = not any(f.severity == "error" for f in found)
        out.append(CheckResult(v.name, passed, v.blocking, found, dict(meta)))
    return out


def stage_and_publish(
    stage: str,
    store: DataStore,
    rel: str,
    work: Callable[[Path], Any],
    validators: Sequence[OutputValidator] = (),
    *,
    named_by: Callable[[Path], str] | None = None,
) -> StageOutcome:
    """Write ``rel`` through ``work(staging_path)``, validate the staged output, then publish or quarantine.

    ``named_by(staged)``: publish at the path it gives for the staged output instead (a content-addressed
    name); an output already there under that name is the same content, kept as it is."""
    with store.staged(rel) as tmp:
        report = work(tmp)
        checks = run_validators(tmp, validators)
        if named_by is not None:
            rel = named_by(tmp)
        outcome = StageOutcome(stage, rel, False, checks=checks, report=report)
        if outcome.blocking_failures:
            outcome.quarantined = store.quarantine(tmp, rel, [f.to_json() for f in outcome.findings])
        elif named_by is not None and store.exists(rel):
            outcome.url, outcome.published = store.url(rel), True
        else:
            outcome.url = store.publish(tmp, rel)
            outcome.published = True
    return outcome


ConfigT = TypeVar("ConfigT", bound=BaseModel)


class Stage(ABC, Generic[ConfigT]):
    """A tier of the pipeline: ``Config`` (a pydantic model), ``inputs`` (upstream tiers), ``output`` (its tier
    in the store), :meth:`work` and :meth:`validators`. :meth:`run` stages, validates and publishes."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ()
    checks: ClassVar[tuple[type[OutputValidator], ...]] = ()  # what validators() returns, as classes

    def __init__(self, config: ConfigT):
        self.config = config

    @abstractmethod
    def output_path(self, key: str) -> str:
        """Where this stage's output for ``key`` is published in the store."""

    @abstractmethod
    def work(self, *args: Any, **kwargs: Any) -> Any:
        """``work(staged, key, **inputs)``: do the work, writing the output at ``staged``; returns the report.

        (Declared with ``*args, **kwargs`` so each stage names its own inputs as keyword parameters.)"""

    def validators(self) -> list[OutputValidator]:
        return []

    def run(self, store: DataStore, key: str, *, raise_on_failure: bool = False, **inputs: Any) -> StageOutcome:
        outcome = stage_and_publish(self.name, store, self.output_path(key),
                                    lambda tmp: self.work(tmp, key, **inputs), self.validators())
        if raise_on_failure and not outcome.published:
            raise StageFailed(outcome)
        return outcome
