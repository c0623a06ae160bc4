"""Release history and roll back: every LeRobot release the store keeps, and moving ``latest`` back to one.

Each cut release stays in ``lerobot/releases/<id>/`` (a release is named by what went in, so ids never
clash); ``lerobot/releases/latest.json`` points at the one consumers (training, ``robodata releases``)
take. A release that failed a blocking check never reached ``releases/``: it is kept under
``quarantine/lerobot/releases/<id>/`` with its findings, and is listed here as not passed.

What a release records about itself (``meta/robodata_release.json``, written by ``ReleaseStage.work``):
its id, the recordings that went in and their shard versions, the format, the repo id and when it was cut
(``created``; older releases fall back to the time their ``meta/info.json`` was written). Episodes and
frames come from its ``meta/info.json``.

:func:`rollback` points ``latest.json`` at an earlier release, atomically (one replace of the pointer file),
after re-running the release's blocking checks on it, and **pins** it there: later cuts are checked and
kept but do not move ``latest`` until :func:`unpin`. The policy tier has the same pair
(:func:`list_policies`, :func:`rollback_policy`) over ``policy/runs/<run>.candidate.json`` and
``policy/latest.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from robodata import store_layout as layout
from robodata.errors import RobodataError
from robodata.lerobot.layout import INFO_PATH, RELEASE_INFO_PATH
from robodata.storage import QUARANTINE, DataStore


class ReleaseError(RobodataError):
    """A release (or checkpoint) cannot be listed or rolled back to."""


@dataclass
class ReleaseEntry:
    """One release in the store, as ``robodata releases`` lists it."""

    release: str
    path: str
    created: str  # ISO 8601 UTC, milliseconds ("" when unknown)
    format: str
    repo_id: str
    recordings: list[str]
    upstream_versions: dict[str, str]
    episodes: int | None
    frames: int | None
    checks_passed: bool  # its blocking checks passed (it was published); False: quarantined
    latest: bool = False
    pinned: bool = False  # latest, and pinned there by a rollback
    failed_checks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RollbackResult:
    """What a rollback did: the release latest now points at, the one it pointed at before."""

    release: ReleaseEntry
    previous: str | None
    pointer: dict[str, Any]


def _iso(ts: float) -> str:
    from robodata.stages.tiers import utc_iso

    return utc_iso(ts)


def _read_json(store: DataStore, rel: str) -> dict[str, Any]:
    if not store.exists(rel):
        return {}
    try:
        with store.read_path(rel) as p:
            data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _mtime(store: DataStore, rel: str) -> float | None:
    try:
        info = store.fs.info(store.url(rel))
    except (OSError, ValueError):
        return None
    m = info.get("mtime") or info.get("LastModified") or info.get("created")
    if hasattr(m, "timestamp"):
        return float(m.timestamp())
    return float(m) if isinstance(m, (int, float)) else None


def read_latest(store: DataStore) -> dict[str, Any] | None:
    """``latest.json`` (the release consumers take), or None when no release has passed yet."""
    return _read_json(store, layout.LATEST) or None


def _entry(store: DataStore, release: str, rel: str, passed: bool, latest: dict[str, Any]) -> ReleaseEntry:
    manifest = _read_json(store, f"{rel}/{RELEASE_INFO_PATH}")
    info = _read_json(store, f"{rel}/{INFO_PATH}")
    created = str(manifest.get("created") or "")
    if not created:
        ts = _mtime(store, f"{rel}/{INFO_PATH}")
        created = _iso(ts) if ts else ""
    is_latest = passed and latest.get("release") == release
    return ReleaseEntry(
        release=release, path=store.url(rel), created=created,
        format=str(manifest.get("format") or info.get("codebase_version") or ""),
        repo_id=str(manifest.get("repo_id") or ""),
        recordings=list(manifest.get("recordings") or []),
        upstream_versions=dict(manifest.get("upstream_versions") or {}),
        episodes=info.get("total_episodes"), frames=info.get("total_frames"),
        checks_passed=passed, latest=is_latest, pinned=is_latest and bool(latest.get("pinned")))


def _quarantined(store: DataStore) -> dict[str, tuple[str, list[str]]]:
    """Release ids found only in quarantine: the newest attempt's folder and the checks that failed there."""
    root = f"{QUARANTINE}/{layout.RELEASES}"
    out: dict[str, tuple[str, list[str]]] = {}
    for release in store.listdir(root):
        stamps = sorted(n for n in store.listdir(f"{root}/{release}") if not n.endswith(".findings.json")
                        and not n.startswith("."))
        if not stamps:
            continue
        findings = _read_json(store, f"{root}/{release}/{stamps[-1]}.findings.json").get("findings", [])
        failed = sorted({f.get("check", "") for f in findings if f.get("severity", "error") == "error"} - {""})
        out[release] = (f"{root}/{release}/{stamps[-1]}", failed)
    return out


def list_releases(store: DataStore, *, include_quarantined: bool = True) -> list[ReleaseEntry]:
    """Every release in the store, newest first: published ones (their blocking checks passed) and, unless
    ``include_quarantined`` is False, those that failed them (kept in quarantine, never latest)."""
    latest = read_latest(store) or {}
    entries = []
    for name in store.listdir(layout.RELEASES):
        rel = layout.release_path(name)
        if name.startswith(".") or not store.exists(f"{rel}/{INFO_PATH}"):
            continue  # latest.json, staging folders, a folder being swapped in
        entries.append(_entry(store, name, rel, True, latest))
    if include_quarantined:
        published = {e.release for e in entries}
        for name, (rel, failed) in _quarantined(store).items():
            if name in published:
                continue  # failed once, passed on a later cut: the published one is what counts
            e = _entry(store, name, rel, False, latest)
            e.failed_checks = failed
            entries.append(e)
    entries.sort(key=lambda e: (e.created, e.release), reverse=True)
    return entries


def find_release(store: DataStore, release: str) -> ReleaseEntry:
    """The release named ``release`` (or by an unambiguous prefix of its id); a clear error otherwise."""
    entries = list_releases(store)
    exact = [e for e in entries if e.release == release]
    matches = exact or [e for e in entries if release and e.release.startswith(release)]
    if not matches:
        known = ", ".join(e.release for e in entries) or "none yet"
        raise ReleaseError(f"no release {release!r} in {store.url(layout.RELEASES)} (releases: {known})")
    if len(matches) > 1:
        raise ReleaseError(f"{release!r} names several releases: {', '.join(e.release for e in matches)}")
    return matches[0]


def _verify(store: DataStore, entry: ReleaseEntry) -> None:
    """Re-run the release tier's blocking checks on the release as it is in the store now."""
    from robodata.errors import require
    from robodata.stages.base import run_validators

    require("robodata rollback (re-checking the release; --no-verify skips it)", "great_expectations")
    from robodata.stages.tiers import ReleaseStage

    with store.read_path(store.rel(entry.path)) as root:
        results = run_validators(root, [cls() for cls in ReleaseStage.checks if cls.blocking])
    failed = [c for c in results if c.blocking and not c.passed]
    if failed:
        why = "; ".join(f"{c.name}: {c.findings[0] if c.findings else 'failed'}" for c in failed)
        raise ReleaseError(f"release {entry.release} no longer passes its blocking checks ({why}): "
                           "latest is unchanged")


def rollback(store: DataStore, release: str, *, pin: bool = True, verify: bool = True) -> RollbackResult:
    """Point ``latest.json`` at ``release`` (an id or unambiguous prefix), atomically.

    Only a release that exists in ``lerobot/releases/`` (its blocking checks passed when it was cut) and,
    with ``verify``, still passes them now. With ``pin`` (the default) latest stays there when later
    releases are cut, until :func:`unpin`."""
    entry = find_release(store, release)
    if not entry.checks_passed:
        failed = ", ".join(entry.failed_checks) or "its blocking checks"
        raise ReleaseError(f"release {entry.release} failed {failed} and is kept in quarantine at {entry.path}: "
                           "it cannot become latest")
    if verify:
        _verify(store, entry)
    before = read_latest(store) or {}
    pointer = {"release": entry.release, "path": entry.path, "format": entry.format,
               "recordings": entry.recordings, "pinned": pin, "rolled_back_from": before.get("release"),
               "rolled_back_at": _iso(time.time())}
    with store.write_path(layout.LATEST) as p:  # one atomic replace of the pointer file
        p.write_text(json.dumps(pointer, indent=1))
    entry.latest, entry.pinned = True, pin
    return RollbackResult(entry, before.get("release"), pointer)


def unpin(store: DataStore) -> dict[str, Any] | None:
    """Let the next cut move ``latest`` again (it stays where it is until then); the pointer, or None."""
    latest = read_latest(store)
    if latest is None or not latest.get("pinned"):
        return latest
    latest = {**latest, "pinned": False}
    with store.write_path(layout.LATEST) as p:
        p.write_text(json.dumps(latest, indent=1))
    return latest


# ---- the policy tier -------------------------------------------------------------------------------------------


@dataclass
class PolicyEntry:
    """One training run's candidate checkpoint: passed its not-worse check (published) or quarantined."""

    run: str
    created: str
    engine: str
    release: str
    checkpoint: str
    checkpoint_exists: bool
    metrics: dict[str, Any]
    checks_passed: bool
    latest: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CANDIDATE = ".candidate.json"


def _policy_entry(store: DataStore, rel: str, run: str, passed: bool, latest: dict[str, Any]) -> PolicyEntry:
    rec = _read_json(store, rel)
    ts = _mtime(store, rel)
    ckpt = str(rec.get("checkpoint") or "")
    exists = bool(ckpt) and (store.fs.exists(ckpt) if "://" in ckpt else os.path.exists(ckpt))
    return PolicyEntry(run, _iso(ts) if ts else "", str(rec.get("engine") or ""), str(rec.get("release") or ""),
                       ckpt, exists, dict(rec.get("metrics") or {}), passed,
                       passed and latest.get("run") == run)


def list_policies(store: DataStore) -> list[PolicyEntry]:
    """Every training run's candidate checkpoint, newest first; ``latest`` is the promoted one."""
    latest = _read_json(store, layout.POLICY_LATEST)
    out = []
    for name in store.listdir(layout.POLICY_RUNS):
        if name.endswith(_CANDIDATE) and not name.startswith("."):
            run = name[: -len(_CANDIDATE)]
            out.append(_policy_entry(store, layout.policy_candidate_path(run), run, True, latest))
    qroot = f"{QUARANTINE}/{layout.POLICY_RUNS}"
    seen = {e.run for e in out}
    for name in store.listdir(qroot):
        run = name[: -len(_CANDIDATE)] if name.endswith(_CANDIDATE) else ""
        if not run or run in seen:
            continue
        stamps = sorted(n for n in store.listdir(f"{qroot}/{name}") if not n.endswith(".findings.json"))
        if stamps:
            out.append(_policy_entry(store, f"{qroot}/{name}/{stamps[-1]}", run, False, latest))
    out.sort(key=lambda e: (e.created, e.run), reverse=True)
    return out


def rollback_policy(store: DataStore, run: str) -> tuple[PolicyEntry, str | None]:
    """Promote an earlier run's checkpoint back to ``policy/latest.json`` (atomically): only a candidate that
    passed its not-worse check and whose checkpoint is still there. Returns it and the run promoted before."""
    entries = list_policies(store)
    matches = [e for e in entries if e.run == run] or [e for e in entries if run and e.run.startswith(run)]
    if not matches:
        known = ", ".join(e.run for e in entries) or "none yet"
        raise ReleaseError(f"no policy run {run!r} in {store.url(layout.POLICY_RUNS)} (runs: {known})")
    if len({e.run for e in matches}) > 1:
        raise ReleaseError(f"{run!r} names several policy runs: {', '.join(e.run for e in matches)}")
    entry = matches[0]
    if not entry.checks_passed:
        raise ReleaseError(f"policy run {entry.run} failed its not-worse-than-promoted check (quarantined): "
                           "it cannot be promoted")
    if not entry.checkpoint_exists:
        raise ReleaseError(f"policy run {entry.run}: its checkpoint {entry.checkpoint or '(none)'} is gone")
    before = _read_json(store, layout.POLICY_LATEST)
    record = _read_json(store, layout.policy_candidate_path(entry.run))
    pointer = {**record, "rolled_back_from": before.get("run"), "rolled_back_at": _iso(time.time())}
    with store.write_path(layout.POLICY_LATEST) as p:
        p.write_text(json.dumps(pointer, indent=1))
    entry.latest = True
    return entry, before.get("run")


def releases_table(entries: list[ReleaseEntry]) -> str:
    lines = [f"{'release':14s} {'created':24s} {'latest':7s} {'checks':7s} {'format':6s} {'recs':>4s} "
             f"{'episodes':>8s} {'frames':>7s}  recordings"]
    for e in entries:
        mark = "pinned" if e.pinned else ("yes" if e.latest else "")
        checks = "passed" if e.checks_passed else "FAILED"
        recs = ", ".join(e.recordings)
        if len(recs) > 60:
            recs = recs[:57] + "..."
        if e.failed_checks:
            recs = f"failed: {', '.join(e.failed_checks)}; {recs}"
        lines.append(f"{e.release:14s} {e.created:24s} {mark:7s} {checks:7s} {e.format:6s} {len(e.recordings):>4d} "
                     f"{e.episodes if e.episodes is not None else '':>8} {e.frames if e.frames is not None else '':>7}"
                     f"  {recs}")
    return "\n".join(lines)


def policies_table(entries: list[PolicyEntry]) -> str:
    lines = [f"{'run':28s} {'created':24s} {'latest':6s} {'checks':7s} {'release':14s}  metrics"]
    for e in entries:
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in e.metrics.items())
        lines.append(f"{e.run:28s} {e.created:24s} {'yes' if e.latest else '':6s} "
                     f"{'passed' if e.checks_passed else 'FAILED':7s} {e.release:14s}  {metrics[:80]}"
                     + ("" if e.checkpoint_exists else "  (checkpoint gone)"))
    return "\n".join(lines)
