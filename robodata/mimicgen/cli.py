"""``robodata annotate``: review subtask boundaries of source demos (recorded vs detected) and correct them."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from robodata.errors import MissingExtraError, extra_hint
from robodata.formats.isaaclab_layout import EEF_POSE, SUBTASK_TERM_SIGNALS, datagen_path
from robodata.mimicgen.annotate import rising_edges, step_signal, write_signals
from robodata.mimicgen.errors import MimicGenError

SIGNALS = ("grasp", "place")


def _edge(sig: np.ndarray | None) -> str:
    if sig is None:
        return "-"
    e = rising_edges(sig)
    return ",".join(str(int(x)) for x in e) if len(e) else "never"


def cmd_annotate(args: argparse.Namespace) -> int:
    from robodata.formats.isaaclab import EpisodeStore
    from robodata.mimicgen.annotate import detect_signals
    from robodata.mimicgen.source import GOAL_OBJECT, episode_objects

    corrections: dict[str, dict[str, np.ndarray]] = {}
    with EpisodeStore(args.file) as es:
        demos = args.demo or es.demo_names
        print(f"{'demo':<10} {'frames':>6}  " + "  ".join(f"{s + ' rec/det':<20}" for s in SIGNALS))
        for name in demos:
            if name not in es.demo_names:
                raise MimicGenError(f"{args.file}: no demo {name!r}")
            ep = es.read(name, images=False)
            rec = ep.datagen.get(SUBTASK_TERM_SIGNALS, {})
            det: dict[str, np.ndarray] = {}
            try:
                objects = episode_objects(ep, f"{args.file} {name}")
                eef = next(iter(ep.datagen.get(EEF_POSE, {}).values()))
                obj = objects.get("cube", next(iter(objects.values())))
                goal = objects[GOAL_OBJECT][:, :3, 3] if GOAL_OBJECT in objects else None
                det = detect_signals(eef[:, :3, 3], obj[:, :3, 3], ep.actions[:, -1], fingers=ep.obs.get("gripper"),
                                     goal=goal)
            except (MimicGenError, StopIteration) as err:
                print(f"{name}: cannot detect ({err})", file=sys.stderr)
            cells = [f"{_edge(rec.get(s))} / {_edge(det.get(s))}" for s in SIGNALS]
            print(f"{name:<10} {len(ep):>6}  " + "  ".join(f"{c:<20}" for c in cells))
            if args.write_detected:
                missing = {s: det[s] for s in det if s not in rec}
                if missing:
                    corrections.setdefault(name, {}).update(missing)
        for item in args.set or []:
            try:
                demo, rest = item.split(":", 1)
                sig, frame = rest.split("=", 1)
                frame_i = int(frame)
            except ValueError as err:
                raise MimicGenError(f"--set {item!r}: expected DEMO:SIGNAL=FRAME (e.g. demo_0:grasp=52)") from err
            if demo not in es.demo_names:
                raise MimicGenError(f"--set {item!r}: {args.file} has no demo {demo!r}")
            n = es.num_samples(demo)
            if not 0 <= frame_i < n:
                raise MimicGenError(f"--set {item!r}: frame {frame_i} outside {demo}'s 0..{n - 1}")
            corrections.setdefault(demo, {})[sig] = step_signal(n, frame_i)
    if corrections:
        out = write_signals(args.file, corrections, args.out)
        print(f"wrote {sum(len(v) for v in corrections.values())} signal(s) in {len(corrections)} demo(s) to {out}")
    return 0


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``annotate`` on the main CLI's subparsers."""
    p = subparsers.add_parser(
        "annotate",
        help="review and correct subtask boundaries of source demos (Isaac Lab HDF5)",
        description=f"Print each demo's subtask boundaries (rising edges of {datagen_path(SUBTASK_TERM_SIGNALS)}, "
        "recorded / detected from gripper events, contact and object motion) and correct them.",
    )
    p.add_argument("file", help="an Isaac Lab HDF5 episode store")
    p.add_argument("--demo", action="append", help="only this demo (repeatable)")
    p.add_argument("--set", action="append", metavar="DEMO:SIGNAL=FRAME",
                   help="store SIGNAL as turning on at FRAME in DEMO (repeatable)")
    p.add_argument("--write-detected", action="store_true", help="store detected signals where none are recorded")
    p.add_argument("--out", help="write the annotated store here instead of in place")
    p.set_defaults(func=cmd_annotate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robodata-annotate")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        with extra_hint("robodata-annotate"):
            return args.func(args)
    except (MimicGenError, MissingExtraError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
