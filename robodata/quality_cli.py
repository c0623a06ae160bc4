"""``robodata quality``, ``robodata drift``, ``robodata profile``, ``robodata trim``: is the data fit to train on.

``quality PATH`` runs on an episode store (any tier's HDF5, or an Isaac Lab recording) or a LeRobot dataset:
Great Expectations' suites, the robot model's joint limits (``--robot-model`` or ``quality.robot_model``),
bounds learned from a reference release (``--reference``) and duplicates among its episodes; one line per
check, the findings under it, exit 1 when a check that matters failed. ``drift NEW --reference OLD`` writes
the drift report of a release against another; ``profile PATH`` the HTML profiling report; ``trim PATH
--out OUT`` trims idle ends and cuts episodes into segments.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robodata.errors import RobodataError
from robodata.pathkind import PathKind, kind_of


@dataclass
class CheckLine:
    """One check of ``robodata quality``: its name, verdict, whether it fails the command, findings."""

    name: str
    passed: bool
    blocking: bool = True
    findings: list[str] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "passed": self.passed, "blocking": self.blocking, "findings": self.findings,
                "note": self.note}


def _gx(report: Any, name: str, blocking: bool = True) -> CheckLine:
    return CheckLine(name, report.success, blocking, report.failure_lines(), f"{len(report.results)} expectations")


def quality_checks(path: str | Path, *, robot_model: Any = None, model_path: str | None = None,
                   reference: str | Path | None = None, dedup: dict[str, Any] | None = None,
                   joints: list[str] | None = None) -> list[CheckLine]:
    """Every quality check ``robodata quality`` runs on ``path`` (see the module docstring).

    The robot model is loaded first: one that does not parse is a :class:`RobotModelError` (a configuration
    error), not a failed check. ``joints``: the model's joint for each column of a LeRobot dataset's
    joint features, where info.json's names are not the model's."""
    from robodata import quality as q

    p = Path(path)
    kind = kind_of(p)
    out: list[CheckLine] = []
    from robodata.robot.model import load_configured

    loaded = load_configured(robot_model, model_path or robot_model.path) if robot_model is not None else None
    bounds = q.reference_bounds(reference, margin=0.25, data=p if kind is PathKind.LEROBOT else None) \
        if reference else {}
    if reference and not bounds:
        raise RobodataError(f"{reference}: no meta/stats.json to learn bounds from (not a LeRobot release?)")
    if kind is PathKind.ISAACLAB_HDF5:
        from robodata.formats.isaaclab import EpisodeStore

        with EpisodeStore(p) as es:
            fps = es.schema.fps
        frames, episodes = q.validate_raw_episodes(p, fps=fps)
        out += [_gx(frames, "gx_frames_valid"), _gx(episodes, "gx_episode_rates_and_lengths")]
        if bounds:
            out.append(_gx(q.validate_within_bounds(q.episode_tables(p)[0], bounds, suite="bounds", data=p),
                           "within_reference_release_bounds", blocking=False))
        if robot_model is not None:
            from robodata.stages.tiers import JointsWithinModelLimits

            v = JointsWithinModelLimits(robot_model, model_path or robot_model.path)
            found = v.validate(p)
            out.append(CheckLine(v.name, not found, robot_model.blocking, [f.message for f in found],
                                 f"model {Path(model_path or robot_model.path).name}"))
    elif kind is PathKind.LEROBOT:
        from robodata.lerobot import validate_dataset

        layout_findings = validate_dataset(p)
        errors = [f for f in layout_findings if f.severity == "error"]
        out.append(CheckLine("lerobot_valid", not errors, True, [str(f) for f in layout_findings]))
        out.append(_gx(q.validate_lerobot_frames(p), "gx_frames_contiguous_and_in_sync"))
        if bounds:
            out.append(_gx(q.validate_within_bounds(q.lerobot_frame_table(p)[0], bounds, suite="bounds", data=p),
                           "within_reference_release_bounds", blocking=False))
        if loaded is not None:
            out.append(_lerobot_joints(p, loaded, robot_model, joints))
    else:
        raise RobodataError(f"{p}: robodata quality takes an episode store (.hdf5) or a LeRobot dataset folder")
    out.append(_duplicates(p, kind, dedup or {}))
    return out


def _lerobot_joints(p: Path, model: Any, cfg: Any, joints: list[str] | None) -> CheckLine:
    """The LeRobot dataset's joint features (observation.state; action when it holds joint positions) against
    the robot model: names exist, positions and velocities within limits, per joint, episode and frame range."""
    from robodata.robot.validate import validate_lerobot_dataset

    positions = [f for f in cfg.positions if f != "joint_pos"] or None  # joint_pos is the HDF5 default
    reports = validate_lerobot_dataset(p, model, positions, joints=joints, joint_map=cfg.joint_map or None,
                                       position_tolerance=cfg.position_tolerance)
    found = [f.message for r in reports.values() for f in r.findings]
    notes = sorted({n for r in reports.values() for n in r.notes})
    return CheckLine("joints_within_robot_model_limits", not found, cfg.blocking, found,
                     f"model {model.path.name}, {len(reports)} episodes" + (f"; {'; '.join(notes)}" if notes else ""))


def _duplicates(p: Path, kind: PathKind, dedup: dict[str, Any]) -> CheckLine:
    """Duplicates among the episodes of ``p`` (exact and near), each with its twin."""
    from robodata.dedup import DedupConfig, dedup_episodes, lerobot_signatures, store_signatures

    cfg = DedupConfig.model_validate(dedup)
    sigs = list(store_signatures(p, cfg) if kind is PathKind.ISAACLAB_HDF5 else lerobot_signatures(p, cfg))
    report = dedup_episodes(sigs, config=cfg)
    found = [d.describe() for d in report.duplicates]
    return CheckLine("no_duplicate_episodes", not found, False, found, f"{len(sigs)} episodes, policy {cfg.policy}")


def cmd_quality(args: argparse.Namespace) -> int:
    from robodata.cli import config_from_args

    cfg = config_from_args(args)
    model = cfg.quality.robot_model
    model_path = cfg._local(model.path) if model else None
    if args.robot_model:
        from robodata.config import RobotModelConfig

        model = RobotModelConfig(path=args.robot_model, positions=args.positions or ["joint_pos"],
                                 name_prefix=args.name_prefix or "")
        model_path = str(Path(args.robot_model).resolve())
    joints, pairs = _joints_arg(args.joints)
    if pairs and model is not None:
        model = model.model_copy(update={"joint_map": {**model.joint_map, **pairs}})
    lines = quality_checks(args.path, robot_model=model, model_path=model_path, reference=args.reference,
                           dedup=cfg.quality.dedup, joints=joints)
    if args.json:
        print(json.dumps([c.to_json() for c in lines], indent=1))
    else:
        for c in lines:
            verdict = "ok  " if c.passed else ("FAIL" if c.blocking else "warn")
            print(f"{verdict} {c.name}" + (f"  ({c.note})" if c.note else ""))
            for f in c.findings[:20]:
                print(f"       {f}")
            if len(c.findings) > 20:
                print(f"       ... {len(c.findings) - 20} more")
    return 1 if any(c.blocking and not c.passed for c in lines) else 0


def _joints_arg(values: list[str] | None) -> tuple[list[str] | None, dict[str, str]]:
    """``--joints``: the model's joint per column (``a b c``) or data -> model pairs (``j0=shoulder_pan``)."""
    if not values:
        return None, {}
    pairs = [v for v in values if "=" in v]
    if pairs and len(pairs) != len(values):
        raise RobodataError(f"--joints: give the model's joint for every column or DATA=MODEL pairs, not both "
                            f"({values})")
    if pairs:
        return None, dict(v.split("=", 1) for v in pairs)
    return list(values), {}


def cmd_profile(args: argparse.Namespace) -> int:
    from robodata.profile import profile_path

    ingest = json.loads(Path(args.ingest_report).read_text()) if args.ingest_report else None
    prof = profile_path(args.path, ingest)
    out = Path(args.out) if args.out else Path(str(Path(args.path).with_suffix("")) + ".profile")
    html, data = prof.write(out)
    s = prof.summary()
    print(f"{s.get('episodes')} episodes, {s.get('frames')} frames, {s.get('hours', 0):.3f} h; "
          f"{s.get('warning_count', 0)} warning(s)")
    for w in s.get("warnings", [])[:20]:
        print(f"  warning: {w}")
    print(f"report: {html}\nsummary: {data}")
    return 0


def cmd_trim(args: argparse.Namespace) -> int:
    from robodata.trajectory import TrajectoryConfig, extract_store, write_report
    from robodata.yamlfile import read_yaml

    doc = dict(read_yaml(Path(args.settings), RobodataError, "trajectory settings") or {}) if args.settings else {}
    if args.segment_by:
        doc["segment_by"] = args.segment_by
    report = extract_store(args.path, args.out, TrajectoryConfig.model_validate(doc))
    for line in report.lines():
        print(line)
    write_report(report, Path(str(Path(args.out).with_suffix("")) + ".trajectory.json"))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from robodata.cli import config_from_args
    from robodata.drift import DriftConfig, drift_report

    cfg = config_from_args(args)
    dc = DriftConfig.model_validate(cfg.quality.drift)
    report = drift_report(args.path, args.reference, dc)
    out = Path(args.out) if args.out else Path(str(Path(args.path).resolve()) + ".drift")
    written = report.write(out)
    print(report.headline())
    for f in report.drifted:
        print(f"  {f.name}: {f.statistic} {f.value:.3f} > {f.threshold:g} ({f.change()})")
    print(f"report: {written['markdown']}")
    return 1 if report.drifted and dc.on_drift == "block" else 0


def add_subcommands(sub: Any) -> None:
    """Add ``quality``, ``drift``, ``profile`` and ``trim`` to the main CLI's subparsers."""
    s = sub.add_parser("quality", help="is it fit to train on: GX suites, robot-model joint limits, bounds learned "
                                       "from a reference release, duplicates (a store or a LeRobot dataset)")
    s.add_argument("path")
    s.add_argument("--reference", help="a LeRobot release whose ranges the data should stay within")
    s.add_argument("--robot-model", help="URDF or MJCF to check joint names and limits against")
    s.add_argument("--positions", nargs="+", help="joint-position features (default: joint_pos in a store; observation.state, and action when it has the same names, in a LeRobot dataset)")
    s.add_argument("--name-prefix", help="a prefix the model puts before joint names (MuJoCo's robot0:)")
    s.add_argument("--joints", nargs="+", help="LeRobot datasets: the model's joint for each state/action column "
                                               "in order, or DATA=MODEL pairs (default: info.json's names)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_quality)

    s = sub.add_parser("drift", help="drift of a release against a reference release: per feature, with plots")
    s.add_argument("path", help="the new release (a LeRobot dataset folder)")
    s.add_argument("--reference", required=True, help="the reference release")
    s.add_argument("--out", help="report folder (default: NEW.drift)")
    s.set_defaults(func=cmd_drift)

    s = sub.add_parser("profile", help="profiling report (self-contained HTML + JSON) of a store or LeRobot dataset")
    s.add_argument("path")
    s.add_argument("--out", help="report folder (default: PATH.profile)")
    s.add_argument("--ingest-report", help="the ingest's report (JSON) for per-topic rates and jitter")
    s.set_defaults(func=cmd_profile)

    s = sub.add_parser("trim", help="trim idle ends and cut episodes into segments (gripper events, velocity)")
    s.add_argument("path")
    s.add_argument("--out", required=True)
    s.add_argument("--segment-by", choices=["none", "gripper", "velocity"])
    s.add_argument("--settings", help="YAML of robodata.trajectory.TrajectoryConfig")
    s.set_defaults(func=cmd_trim)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - the main CLI is the entry point
    from robodata.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
