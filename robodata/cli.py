"""The ``robodata`` command line: record, ingest, inspect, run, the LeRobot tools; the platform adds demo, backfill, ui."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from robodata.errors import RobodataError, extra_hint, require


class Progress:
    """A one-line progress indicator on stderr (plain lines when not a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self._last = -1.0

    def __call__(self, done: float, total: float = 1.0, note: str = "") -> None:
        frac = done / total if total else 1.0
        if not self.tty and frac - self._last < 0.25 and frac < 1.0:
            return
        self._last = frac
        bar = "#" * int(frac * 30)
        msg = f"{self.label} [{bar:30s}] {frac * 100:5.1f}% {time.perf_counter() - self.t0:6.1f}s {note}"
        print(("\r" if self.tty else "") + msg, end="" if self.tty and frac < 1 else "\n", file=sys.stderr, flush=True)


# Commands the platform (the Dagster code location, `robodata[platform]`) adds to this CLI.
PLATFORM_COMMANDS = {
    "demo": "record demos in the simulator and run every tier of the asset graph on them",
    "backfill": "launch a Dagster backfill over recording partitions (all, or those named), run by the daemon",
    "ui": "start the Dagster UI and daemon on 127.0.0.1 with this project",
    "doctor": "what killed work left behind (dead runs, temporaries); --fix cleans it up",
}


# The commands that start processes of their own (Ray workers, a dagster-daemon, encoders, simulators).
_STARTS_PROCESSES = {"demo", "ingest", "backfill", "run", "record", "ui", "augment", "convert", "generate",
                     "export-video"}


def load_platform() -> Any | None:
    """The platform registered under the ``robodata.platform`` entry point, or None in the bare library.

    The library never imports the code location: the platform plugs itself in (an object with
    ``add_subcommands(subparsers)`` and ``ingest(path, config) -> int``).
    """
    from robodata.plugins import load_entry_points

    found = load_entry_points("robodata.platform", missing_ok=True)
    return next(iter(found.values()), None)


def require_platform(what: str) -> Any:
    platform = load_platform()
    if platform is None:
        raise RobodataError(f"robodata {what} needs the platform (Dagster, Ray): pip install 'robodata[platform]'")
    return platform


def config_from_args(args: argparse.Namespace):
    from robodata.config import load_config, parse_overrides

    return load_config(getattr(args, "config", None), parse_overrides(getattr(args, "set", None) or []))


def cmd_record(args: argparse.Namespace) -> int:
    require("robodata record", "mujoco", "gymnasium_robotics")
    from robodata.sim.recorder import record_session

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(args.sessions):
        name = f"{args.name}_{i:02d}"
        formats = ("mcap", "hdf5") if args.format == "both" else (args.format,)
        rep = record_session(out, name, n_episodes=args.episodes, seed=args.seed + i, formats=formats,
                             image_hw=tuple(args.image_hw), progress=Progress(f"recording {name}"))
        print(f"{name}: {rep}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    if not args.out:  # into the platform: land, register, run raw_teleop against the Dagster instance
        if args.topic_map or args.fps or args.quaternion_order or args.quaternion_column:
            raise RobodataError("--topic-map, --fps, --quaternion-order and --quaternion-column apply with --out; in "
                                "the platform they come from the config's sources")
        return require_platform("ingest without --out").ingest(args.path, args.config)
    from robodata.ingest import ingest_recording
    from robodata.topicmap import load_topic_map

    cfg = config_from_args(args)
    tm = load_topic_map(args.topic_map) if args.topic_map else cfg.topic_map_for(Path(args.path).name)
    from robodata.lerobot.cli import reading_options

    hdf5 = {**cfg.hdf5_options_for(Path(args.path).name), **reading_options(args)}  # the command line wins
    rep = ingest_recording(args.path, args.out, tm, progress=Progress("ingest"), **hdf5)
    for k, v in rep.as_metadata().items():
        print(f"{k:24s} {v}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``robodata run pipeline.yaml``: the declarative pipeline on Ray Data (the Python API's runner)."""
    from robodata.api import pipeline

    result = pipeline(args.pipeline).run()
    print(result.to_json() if args.json else result.summary())
    return 0 if result.ok else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    from robodata.inspect import format_inspection, inspect_path

    print(format_inspection(inspect_path(args.path)))
    return 0


def cmd_releases(args: argparse.Namespace) -> int:
    """``robodata releases``: every release the store keeps (or, with --policy, every trained checkpoint)."""
    import json

    from robodata.releases import list_policies, list_releases, policies_table, releases_table
    from robodata.storage import DataStore

    store = DataStore(config_from_args(args).storage_url)
    entries: list[Any] = list_policies(store) if args.policy else list_releases(store)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=1))
    elif not entries:
        print(f"no {'policy checkpoints' if args.policy else 'releases'} yet in {store.root}")
    else:
        print(policies_table(entries) if args.policy else releases_table(entries))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """``robodata rollback RELEASE``: point latest.json back at an earlier release (checked, then pinned)."""
    from robodata.releases import rollback, rollback_policy, unpin
    from robodata.storage import DataStore

    cfg = config_from_args(args)
    store = DataStore(cfg.storage_url)
    if args.unpin:
        latest = unpin(store)
        print(f"latest is {latest['release']}, no longer pinned: the next cut release becomes latest"
              if latest else "no release is latest yet: nothing to unpin")
        event = {"asset": "lerobot_dataset", "action": "unpin", "release": (latest or {}).get("release")}
    elif not args.release:
        raise RobodataError("rollback: name the release (robodata releases lists them), or give --unpin")
    elif args.policy:
        entry, previous = rollback_policy(store, args.release)
        print(f"policy/latest.json: {previous or 'none'} -> {entry.run} (checkpoint {entry.checkpoint})")
        event = {"asset": "policy_checkpoint", "action": "rollback", "run": entry.run, "previous": previous,
                 "release": entry.release, "path": entry.checkpoint}
    else:
        res = rollback(store, args.release, pin=not args.no_pin, verify=not args.no_verify)
        e = res.release
        print(f"latest: {res.previous or 'none'} -> {e.release} ({e.episodes} episodes, {e.frames} frames, "
              f"{len(e.recordings)} recording(s)) at {e.path}")
        if res.pointer["pinned"]:
            print("pinned: later cuts are checked and kept but do not become latest until "
                  "`robodata rollback --unpin`")
        event = {"asset": "lerobot_dataset", "action": "rollback", "release": e.release, "previous": res.previous,
                 "path": e.path, "pinned": res.pointer["pinned"], "recordings": e.recordings}
    # With the platform installed, the change is recorded in Dagster too (an observation on the asset).
    platform = load_platform()
    record = getattr(platform, "record_release_event", None) if platform is not None else None
    if record is not None:
        try:
            record(cfg, event)
        except Exception as err:  # noqa: BLE001 - the pointer moved; only its record in Dagster is missing
            print(f"warning: latest moved, but recording it in Dagster failed: {err}", file=sys.stderr)
    return 0


def cmd_landing(args: argparse.Namespace) -> int:
    """``robodata landing status``: objects seen, still settling, refused (and why), recordings by status."""
    from robodata.landing import landing_status

    print(landing_status(config_from_args(args), limit=args.limit))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robodata", description=__doc__)
    p.add_argument("--config", help="project config YAML (default: $ROBODATA_CONFIG, ./robodata.yaml, built-in)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the encoders' and dependencies' own output (by default it goes to <home>/logs/robodata.log)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("record", help="record scripted teleop sessions in the simulator (MCAP + HDF5)")
    s.add_argument("out")
    s.add_argument("--sessions", type=int, default=1)
    s.add_argument("--episodes", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--name", default="teleop_session")
    s.add_argument("--image-hw", type=int, nargs=2, default=[96, 128])
    s.add_argument("--format", choices=["mcap", "hdf5", "both", "mp4"], default="both",
                   help="ROS 2 MCAP (as a robot records), Isaac Lab HDF5 (as a simulator does), both, or mp4: "
                        "camera clips with a caption and no robot state (the shape of web and human video)")
    s.set_defaults(func=cmd_record)

    s = sub.add_parser("ingest", help="ingest a recording (through Dagster, or straight to --out HDF5)")
    s.add_argument("path")
    s.add_argument("--out", help="write canonical episodes here without Dagster")
    s.add_argument("--topic-map", help="topic map YAML (with --out)")
    s.add_argument("--fps", type=float, help="Isaac Lab HDF5 without timestamps: its frame rate (with --out)")
    s.add_argument("--quaternion-order", choices=["auto", "wxyz", "xyzw"],
                   help="Isaac Lab HDF5: wxyz (Isaac Lab 2.x) or xyzw (3.0); default: a stamp in the file, else the data")
    s.add_argument("--quaternion-column", action="append", default=[], metavar="FEATURE:START",
                   help="Isaac Lab HDF5: FEATURE holds a quaternion at column START (repeatable; FEATURE: for none), "
                        "beside those its name says (eef_quat, *_pose) (with --out)")  # fmt: skip
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("run", help="run a pipeline YAML (sources, stages, validators, output) on Ray Data")
    s.add_argument("pipeline", help="the pipeline YAML")
    s.add_argument("--json", action="store_true", help="print the whole result as JSON")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("inspect", help="what is in a bag, MCAP, HDF5 episode file or LeRobot dataset")
    s.add_argument("path")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("releases", help="every LeRobot release in the store: id, when, recordings, checks, latest")
    s.add_argument("--policy", action="store_true", help="list trained policy checkpoints instead")
    s.add_argument("--json", action="store_true", help="print the list as JSON")
    s.set_defaults(func=cmd_releases)

    s = sub.add_parser("rollback", help="point the latest release back at RELEASE (checked, then pinned)")
    s.add_argument("release", nargs="?", help="a release id (or an unambiguous prefix); with --policy, a run")
    s.add_argument("--policy", action="store_true", help="promote an earlier policy checkpoint instead")
    s.add_argument("--no-pin", action="store_true", help="let the next cut release become latest again")
    s.add_argument("--unpin", action="store_true", help="lift a rollback's pin (latest stays until the next cut)")
    s.add_argument("--no-verify", action="store_true",
                   help="do not re-run the release's blocking checks (they passed when it was cut)")
    s.set_defaults(func=cmd_rollback)

    s = sub.add_parser("landing", help="the landing zone: what landed and what became of it (from the registry)")
    s.add_argument("action", choices=["status"])
    s.add_argument("--limit", type=int, default=20, help="rows listed per state")
    s.set_defaults(func=cmd_landing)

    from robodata.augment.cli import add_subcommands as augment_commands
    from robodata.lerobot.cli import add_subcommands as lerobot_commands
    from robodata.mimicgen.cli import add_subcommands as mimicgen_commands
    from robodata.quality_cli import add_subcommands as quality_commands

    for add in (lerobot_commands, mimicgen_commands, augment_commands, quality_commands):
        add(sub)
    platform = load_platform()
    if platform is not None:
        platform.add_subcommands(sub)
    else:  # the bare library: say how to get the platform's commands instead of "invalid choice"
        for name, what in PLATFORM_COMMANDS.items():
            s = sub.add_parser(name, help=f"{what} (needs the platform: pip install 'robodata[platform]')")
            s.add_argument("rest", nargs=argparse.REMAINDER)
            s.set_defaults(func=lambda a, n=name: require_platform(n))
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    args = build_parser().parse_args(argv)
    if args.command in _STARTS_PROCESSES:
        from robodata.owner import start_reaper

        start_reaper()  # Ray, encoders, a daemon: none outlives this process, however it ends
    from robodata.logs import LOG_FILE, configured

    try:  # quiet: dependency chatter to <home>/logs/robodata.log (the config is read only if something is logged)
        with configured(args.verbose, lambda: config_from_args(args).logs_dir / LOG_FILE), \
                extra_hint(f"robodata {args.command}"):  # a missing optional layer: one line naming the extra
            return int(args.func(args) or 0)
    except RobodataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
