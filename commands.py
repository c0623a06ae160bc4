"""The platform's commands in the ``robodata`` CLI: demo, ingest into the platform, backfill, ui.

Registered as the ``robodata.platform`` entry point (``PLATFORM``), so the library's CLI offers them when the
platform is installed without ever importing this code location itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

if importlib.util.find_spec("dagster") is None:  # the bare library: the CLI then says how to get the platform
    raise ImportError("the robodata platform needs dagster: pip install 'robodata[platform]'")

from robodata.cli import Progress, config_from_args
from robodata.config import parse_overrides
from robodata.errors import RobodataError
from robodata.landing import landing_zone
from robodata_dagster.runs import (
    instance_and_defs,
    prepare_home,
    register_and_ingest,
    run_partitions,
    summary_table,
    tick_sensor,
)


def cmd_demo(args: argparse.Namespace) -> int:
    from robodata.sim.recorder import record_session

    cfg = config_from_args(args)

    ov = parse_overrides(args.set or [])
    d = cfg.demo
    instance, defs = instance_and_defs(cfg)
    landing = landing_zone(cfg)
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
            landed.append(landing.land(rep[fmt], move=True))
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
    synth, aug = [], []
    if cfg.tiers.synthetic_demos.enabled:
        print(f"  5/9 generating MimicGen demos ({cfg.tiers.synthetic_demos.demos_per_source} per source demo, "
              "Ray trials)")
        synth = run_partitions(instance, defs, "generate_synthetic_demos", good, overrides=ov,
                               progress=lambda i, n, k: print(f"      mimicgen {i}/{n} {k}", file=sys.stderr))
        print(summary_table(synth))
        good = [o.partition for o in synth if o.success]  # the next tier reads exactly this one
    else:
        print("  5/9 MimicGen demos: skipped (tiers.synthetic_demos.enabled is false)")
    if cfg.tiers.augmented_videos.enabled:
        print(f"  6/9 augmenting camera clips ({cfg.tiers.augmented_videos.engine} engine, "
              f"{cfg.tiers.augmented_videos.variants} variant(s) per demo)")
        aug = run_partitions(instance, defs, "augment_videos", good, overrides=ov,
                             progress=lambda i, n, k: print(f"      augment {i}/{n} {k}", file=sys.stderr))
        print(summary_table(aug))
        good = [o.partition for o in aug if o.success]
    else:
        print("  6/9 augmenting camera clips: skipped (tiers.augmented_videos.enabled is false)")
    outcomes += synth + aug
    print(f"  7/9 writing LeRobot episodes for {len(good)} robot x day partition(s) ({cfg.tiers.lerobot.codec}, "
          "a Ray task per episode)")
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




def cmd_backfill(args: argparse.Namespace) -> int:
    """A real Dagster backfill (the UI's Backfills tab), executed by the daemon; see robodata_dagster.backfills."""
    from robodata_dagster import backfills as bf

    if args.job and args.assets:
        raise RobodataError("backfill: give --job or --assets, not both")
    cfg = config_from_args(args)
    instance, defs = instance_and_defs(cfg)
    overrides = parse_overrides(args.set or [])
    keys, parts = bf.resolve_selection(defs, instance, job=args.job, assets=args.assets or (),
                                       partitions=args.partitions)
    if parts is not None and not parts:
        print("no recording partitions yet (land files and let the sensor tick, or robodata ingest PATH)")
        return 0
    what = args.job or ("ingest_recordings" if not args.assets else ",".join(args.assets))
    names = ", ".join(k.to_user_string() for k in keys)
    bid = bf.launch_backfill(instance, defs, keys, parts, overrides=overrides,
                             tags={"robodata/job": what} if not args.assets else None,
                             title=f"robodata backfill {what}",
                             description=f"{names} x {len(parts) if parts is not None else 'no'} partition(s), "
                                         "launched from the robodata CLI")
    print(f"backfill {bid}: {names} x {f'{len(parts)} partition(s)' if parts is not None else 'unpartitioned'} "
          f"(in the UI: Runs > Backfills)")
    if args.no_wait:
        if not bf.live_daemon(instance):
            print("no Dagster daemon is running for this instance: the backfill starts when one does "
                  "(robodata ui, or dagster-daemon run)", file=sys.stderr)
        print(bid)
        return 0
    outcome = bf.wait_for_backfill(instance, defs, bid, timeout_s=args.timeout,
                                   progress=lambda m: print(m, file=sys.stderr))
    rows = bf.backfill_report(instance, defs, bid)
    print(bf.report_table(rows))
    for note in outcome.notes:
        print(f"note: {note}")
    runs = bf.backfill_runs(instance, bid)
    end = outcome.status.value
    if outcome.timed_out:
        end += f": gave up waiting after {args.timeout:g} s" + ("" if outcome.finished else
                                                                 " (the running daemon carries on with it)")
    print(f"backfill {bid}: {end}; {len(runs)} run(s); daemon: {outcome.daemon}"
          + (f" (log {outcome.daemon_log})" if outcome.daemon_log else ""))
    ok = outcome.status == bf.BulkActionStatus.COMPLETED_SUCCESS and all(r.ok for r in rows)
    return 0 if ok else 1




def cmd_doctor(args: argparse.Namespace) -> int:
    """``robodata doctor [--fix]``: what killed work left behind, and (with --fix) its clean-up: runs a dead CLI
    process left STARTED (ended, their pool slots freed) and temporaries of dead writers in the project's
    local folders (removed; an interrupted folder swap is put back)."""
    from robodata.atomic import find_debris, sweep_debris
    from robodata_dagster.runs import sweep_dead_runs

    cfg = config_from_args(args)
    instance, _ = instance_and_defs(cfg)
    runs = sweep_dead_runs(instance, fix=args.fix)
    print(f"runs of dead CLI processes: {len(runs)}" + (" (ended, slots freed)" if args.fix and runs else ""))
    for r in runs:
        print(f"  {r}")
    roots: list[Path] = []
    for url in (str(cfg.home_dir), cfg.storage_url, cfg.landing_url):
        p = Path(url).resolve() if "://" not in url else None
        if p is not None and p.exists() and not any(p.is_relative_to(r) for r in roots):
            roots = [r for r in roots if not r.is_relative_to(p)] + [p]
    found = [d for r in roots for d in find_debris(r)]
    dead = [d for d in found if d.gone]
    kept = [d for d in found if not d.gone]
    if args.fix:
        for r in roots:
            sweep_debris(r)
    print(f"temporaries of dead writers: {len(dead)} ({sum(d.size for d in dead) / 1e6:.1f} MB)"
          + (" (removed)" if args.fix and dead else ""))
    for d in dead:
        print(f"  {d.path}" + (f"  -> moved back to {d.restores.name}" if d.restores else ""))
    if kept:
        print(f"temporaries kept: {len(kept)} (a live writer, another host, or no owner recorded)")
        for d in kept:
            print(f"  {d.path}  owner {d.owner or 'unknown'}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    prepare_home(cfg)
    exe = Path(sys.executable).parent / "dagster"
    # `dagster dev` runs the webserver and the daemon (sensors, schedules, automation) over the installed
    # code location, whatever the current folder.
    cmd = [str(exe) if exe.exists() else "dagster", "dev", "-m", "robodata_dagster.definitions",
           "-h", "127.0.0.1", "-p", str(args.port)]
    print(f"starting the Dagster UI on http://127.0.0.1:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    return subprocess.call(cmd)


class _Platform:
    """What the library's CLI asks of the platform."""

    def add_subcommands(self, sub: argparse._SubParsersAction) -> None:
        s = sub.add_parser("demo", help="record demos in the simulator and run every tier of the asset graph on them")
        s.set_defaults(func=cmd_demo)
        s = sub.add_parser("backfill", help="launch a Dagster backfill of a job's assets over recording partitions "
                                             "(all, or those named), executed by the daemon")
        s.add_argument("partitions", nargs="*", help="recording partitions (default: all)")
        s.add_argument("--job", help="the job whose assets to backfill (default: ingest_recordings)")
        s.add_argument("--assets", type=lambda v: [a for a in v.split(",") if a], metavar="ASSET[,ASSET...]",
                       help="backfill these assets instead of a job's (e.g. raw_teleop,lerobot_episodes)")
        s.add_argument("--no-wait", action="store_true", help="submit the backfill, print its id and return")
        s.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="stop waiting after this long (default: wait until the backfill is done)")
        s.set_defaults(func=cmd_backfill)
        s = sub.add_parser("doctor", help="what killed work left behind (dead runs, temporaries); --fix cleans it up")
        s.add_argument("--fix", action="store_true", help="end dead runs (freeing their slots), remove debris")
        s.set_defaults(func=cmd_doctor)
        s = sub.add_parser("ui", help="start the Dagster UI and daemon (dagster dev) on 127.0.0.1 with this project")
        s.add_argument("--port", type=int, default=3000)
        s.set_defaults(func=cmd_ui)

    def record_release_event(self, cfg: Any, event: dict[str, Any]) -> None:
        """A rollback (or unpin) from the library's CLI, recorded as an observation on the asset in Dagster."""
        from robodata_dagster.release_events import record_release_event_for

        record_release_event_for(cfg, event)

    def ingest(self, path: str, config: str | None) -> int:
        out = register_and_ingest(path, config)
        print(summary_table([out]))
        if not out.success:
            print(f"error: {out.error}", file=sys.stderr)
        return 0 if out.success else 1


PLATFORM = _Platform()
