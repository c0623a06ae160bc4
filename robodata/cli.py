"""The ``robodata`` command line: demo, record, ingest, inspect, backfill, ui (and the LeRobot tools)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robodata.errors import RobodataError


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


def _cfg(args: argparse.Namespace):
    from robodata.config import load_config, parse_overrides

    return load_config(getattr(args, "config", None), parse_overrides(getattr(args, "set", None) or []))


def cmd_record(args: argparse.Namespace) -> int:
    from robodata.sim.recorder import record_session

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(args.sessions):
        name = f"{args.name}_{i:02d}"
        rep = record_session(out, name, n_episodes=args.episodes, seed=args.seed + i,
                             image_hw=tuple(args.image_hw), progress=Progress(f"recording {name}"))
        print(f"{name}: {rep}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from robodata.pipeline import instance_and_defs, land, run_partitions, summary_table, tick_sensor
    from robodata.sim.recorder import record_session

    cfg = _cfg(args)
    from robodata.config import parse_overrides

    ov = parse_overrides(args.set or [])
    d = cfg.demo
    instance, defs = instance_and_defs(cfg)
    print(f"robodata demo: project home {cfg.home_dir}")
    print(f"  1/9 recording {d.recordings} teleop sessions x {d.episodes_per_recording} episodes in the simulator")
    landed = []
    with tempfile.TemporaryDirectory(prefix="robodata-demo-") as tmp:
        for i in range(d.recordings):
            name = f"teleop_session_{d.seed + i:02d}"
            rep = record_session(Path(tmp), name, n_episodes=d.episodes_per_recording, seed=d.seed + i,
                                 image_hw=tuple(d.image_hw), progress=Progress(f"      {name}"))
            # Sessions land as MCAP (ROS 2, as a robot records them); the last one as Isaac Lab HDF5 (as a
            # simulator workflow writes them), so both ingest paths run. Never both: that would duplicate data.
            fmt = "hdf5" if i == d.recordings - 1 and d.recordings > 1 else "mcap"
            landed.append(land(cfg, rep[fmt], move=True))
    print(f"  2/9 landed {len(landed)} recordings in {cfg.landing_url}")
    requests, skip = tick_sensor(instance, defs)
    print(f"  3/9 sensor new_recordings: {len(requests)} run request(s){' (' + skip + ')' if skip else ''}")
    keys = [r.partition_key for r in requests]
    outcomes = run_partitions(instance, defs, "ingest_recordings", keys, overrides=ov,
                              tags={"dagster/sensor_name": "new_recordings"},
                              progress=lambda i, n, k: print(f"      ingest {i}/{n} {k}", file=sys.stderr))
    print("  4/9 ingested:")
    print(summary_table(outcomes))
    good = [o.partition for o in outcomes if o.success]
    print(f"  5/9 generating MimicGen demos ({cfg.tiers.synthetic_demos.demos_per_source} per source demo, Ray trials)")
    synth = run_partitions(instance, defs, "generate_synthetic_demos", good, overrides=ov,
                           progress=lambda i, n, k: print(f"      mimicgen {i}/{n} {k}", file=sys.stderr))
    print(summary_table(synth))
    print(f"  6/9 augmenting camera clips ({cfg.tiers.augmented_videos.engine} engine, "
          f"{cfg.tiers.augmented_videos.variants} variant(s) per demo)")
    aug = run_partitions(instance, defs, "augment_videos", good, overrides=ov,
                         progress=lambda i, n, k: print(f"      augment {i}/{n} {k}", file=sys.stderr))
    print(summary_table(aug))
    outcomes += synth + aug
    print(f"  7/9 writing LeRobot episodes for {len(good)} recording(s) ({cfg.tiers.lerobot.codec}, Ray tasks)")
    shards = run_partitions(instance, defs, "write_lerobot_episodes", good, overrides=ov,
                            progress=lambda i, n, k: print(f"      lerobot {i}/{n} {k}", file=sys.stderr))
    print(summary_table(shards))
    print(f"  8/9 cutting the LeRobot {cfg.tiers.lerobot.version} release")
    release = run_partitions(instance, defs, "cut_release", [""], overrides=ov)[0]
    m = release.metadata or {}
    print(f"      release {m.get('release')}: {m.get('episodes')} episodes, {m.get('frames')} frames -> {m.get('path')}"
          if release.success else f"      release failed: {release.error}")
    outcomes += shards + [release]
    pol = cfg.tiers.policy
    print(f"  9/9 fine-tuning a {pol.policy_type} policy ({pol.engine}, {pol.max_steps} steps), evaluating, registering")
    trained = run_partitions(instance, defs, "train_policy", [""], overrides=ov)[0]
    m = trained.metadata or {}
    if trained.success:
        print(f"      checkpoint {m.get('checkpoint', '')}")
        for k in ("steps", "final_loss", "eval_action_mse", "rollout_success_rate", "promoted", "model_version",
                  "mlflow_tracking_uri"):
            if k in m:
                print(f"      {k}: {m[k]}")
    else:
        print(f"      training failed: {trained.error}")
    outcomes.append(trained)
    print("\nBrowse the asset graph, partitions, metadata and checks:  robodata ui   (http://127.0.0.1:3000)")
    return 0 if all(o.success for o in outcomes) else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.out:
        from robodata.ingest import ingest_recording
        from robodata.topicmap import load_topic_map

        tm = load_topic_map(args.topic_map) if args.topic_map else _cfg(args).topic_map_for(Path(args.path).name)
        rep = ingest_recording(args.path, args.out, tm, progress=Progress("ingest"))
        for k, v in rep.as_metadata().items():
            print(f"{k:24s} {v}")
        return 0
    from robodata.pipeline import register_and_ingest, summary_table

    if args.topic_map:
        raise RobodataError("--topic-map applies with --out; in the platform, topic maps come from the config's sources")
    out = register_and_ingest(args.path, args.config)
    print(summary_table([out]))
    if not out.success:
        print(f"error: {out.error}", file=sys.stderr)
    return 0 if out.success else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    from robodata.inspect import format_inspection, inspect_path

    print(format_inspection(inspect_path(args.path)))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from robodata.pipeline import instance_and_defs, run_partitions, summary_table

    cfg = _cfg(args)
    instance, defs = instance_and_defs(cfg)
    from robodata.config import parse_overrides

    overrides = parse_overrides(args.set or [])
    keys = instance.get_dynamic_partitions("recordings")
    if defs.resolve_job_def(args.job).partitions_def is None:  # a release-level job: one run
        keys = [""]
    elif args.partitions:
        unknown = sorted(set(args.partitions) - set(keys))
        if unknown:
            raise RobodataError(f"unknown recording partitions: {unknown}")
        keys = args.partitions
    if not keys:
        print("no recording partitions yet (land files and let the sensor tick, or robodata ingest PATH)")
        return 0
    outcomes = run_partitions(instance, defs, args.job, keys, tags={"dagster/backfill_cli": "true"},
                              overrides=overrides,
                              progress=lambda i, n, k: print(f"backfill {i}/{n} {k}", file=sys.stderr))
    print(summary_table(outcomes))
    return 0 if all(o.success for o in outcomes) else 1


def cmd_ui(args: argparse.Namespace) -> int:
    from robodata.pipeline import prepare_home

    cfg = _cfg(args)
    prepare_home(cfg)
    root = Path(__file__).resolve().parent.parent
    exe = Path(sys.executable).parent / "dagster"
    cmd = [str(exe) if exe.exists() else "dagster", "dev", "-w", str(root / "workspace.yaml"),
           "-h", "127.0.0.1", "-p", str(args.port)]
    print(f"starting the Dagster UI on http://127.0.0.1:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    return subprocess.call(cmd, cwd=root)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robodata", description=__doc__)
    p.add_argument("--config", help="project config YAML (default: $ROBODATA_CONFIG, ./robodata.yaml, built-in)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("demo", help="record demos in the simulator, land them, let the sensor ingest them")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("record", help="record scripted teleop sessions in the simulator (MCAP + HDF5)")
    s.add_argument("out")
    s.add_argument("--sessions", type=int, default=1)
    s.add_argument("--episodes", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--name", default="teleop_session")
    s.add_argument("--image-hw", type=int, nargs=2, default=[96, 128])
    s.set_defaults(func=cmd_record)

    s = sub.add_parser("ingest", help="ingest a recording (through Dagster, or straight to --out HDF5)")
    s.add_argument("path")
    s.add_argument("--out", help="write canonical episodes here without Dagster")
    s.add_argument("--topic-map", help="topic map YAML (with --out)")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("inspect", help="what is in a bag, MCAP, HDF5 episode file or LeRobot dataset")
    s.add_argument("path")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("backfill", help="re-run a job over recording partitions (all, or those named)")
    s.add_argument("partitions", nargs="*")
    s.add_argument("--job", default="ingest_recordings")
    s.set_defaults(func=cmd_backfill)

    s = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on 127.0.0.1 with this project")
    s.add_argument("--port", type=int, default=3000)
    s.set_defaults(func=cmd_ui)

    from robodata.augment.cli import add_subcommands as augment_commands
    from robodata.lerobot.cli import add_subcommands as lerobot_commands
    from robodata.mimicgen.cli import add_subcommands as mimicgen_commands

    for add in (lerobot_commands, mimicgen_commands, augment_commands):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RobodataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
