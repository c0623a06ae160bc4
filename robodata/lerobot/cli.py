"""``robodata convert`` and ``robodata validate``: the LeRobot tier's subcommands for the main CLI."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from robodata.atomic import partial_name
from robodata.errors import RobodataError
from robodata.formats.isaaclab import EpisodeStore, parse_quaternion_columns
from robodata.lerobot.convert import convert
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.layout import V30, VERSIONS
from robodata.lerobot.validate import exit_code, validate_dataset
from robodata.pathkind import PathKind, kind_of


def add_subcommands(subparsers: Any) -> None:
    """Add ``convert`` and ``validate`` to an ``argparse`` subparsers object (each sets ``func``)."""
    p = subparsers.add_parser(
        "convert",
        help="convert a LeRobot dataset (v2.0/v2.1/v3.0), an episode-store HDF5, or a bag/MCAP recording (with --topic-map)",
    )
    p.add_argument("src", help="LeRobot dataset folder, episode-store .hdf5, or ROS 1 .bag / MCAP / ROS 2 bag folder")
    p.add_argument("dst", help="output dataset folder (replaced atomically)")
    p.add_argument("--to", choices=VERSIONS, default=V30, help="target LeRobot version (v2.1 = GR00T flavour)")
    p.add_argument("--topic-map", default=None, help="YAML topic map (needed for bag/MCAP sources: they are ingested first)")
    p.add_argument("--codec", default="libsvtav1", help="video codec for HDF5/bag sources (libsvtav1, libx264, auto)")
    p.add_argument("--crf", type=int, default=30)
    p.add_argument("--task", default=None, help="task text for every episode of an HDF5/bag source")
    p.add_argument("--fps", type=float, default=None,
                   help="an Isaac Lab HDF5 without timestamps: its frame rate (default: env_kwargs, else 30, assumed)")
    p.add_argument("--quaternion-order", choices=["auto", "wxyz", "xyzw"], default=None,
                   help="an Isaac Lab HDF5: wxyz (Isaac Lab 2.x) or xyzw (3.0); default: a stamp in the file, else the data")
    p.add_argument("--quaternion-column", action="append", default=[], metavar="FEATURE:START",
                   help="an Isaac Lab HDF5: FEATURE holds a quaternion at column START (repeatable; FEATURE: for none), "
                        "beside those its name says (eef_quat, *_pose)")  # fmt: skip
    p.add_argument("--strict", action="store_true",
                   help="refuse a LeRobot source with any gap (video files not shipped, no frame_index, timestamps "
                        "not from 0, missing stats, unread modality.json keys) instead of converting around it; "
                        "nothing is written")  # fmt: skip
    p.set_defaults(func=_convert)
    v = subparsers.add_parser("validate", help="check a LeRobot dataset; exit 1 on errors")
    v.add_argument("path")
    v.add_argument("--no-videos", action="store_true", help="skip counting video frames")
    v.set_defaults(func=_validate)


def _convert(args: argparse.Namespace) -> int:
    src = Path(args.src)
    hdf5_opts = {"video_codec": args.codec, "crf": args.crf, "task": args.task}
    if not src.exists():
        raise LeRobotError(f"{src}: no such file or folder")
    kind = kind_of(src)
    reading = reading_options(args)
    if kind is PathKind.ISAACLAB_HDF5:
        if args.topic_map:
            print(f"note: {args.topic_map} is not used: {src} is already an episode store", file=sys.stderr)
        with EpisodeStore(src, **reading) as store:  # what reading it assumes, said before the (long) conversion
            for note in store.notes:
                print(f"note: {src}: {note}", file=sys.stderr)
        report = convert(src, args.dst, to=args.to, **hdf5_opts, **reading)
    elif kind is PathKind.LEROBOT:
        for what in [args.topic_map, *(f"--{k.replace('_', '-')}" for k in reading)]:
            if what:
                print(f"note: {what} is not used: {src} is a LeRobot dataset", file=sys.stderr)
        report = convert(src, args.dst, to=args.to, strict=args.strict)
    else:
        if reading:
            print(f"note: {', '.join(f'--{k.replace(chr(95), chr(45))}' for k in reading)} not used: {src} is a "
                  "message recording (its topic map says how it is read)", file=sys.stderr)
        report = _convert_recording(src, args, hdf5_opts)
    findings = getattr(report, "findings", [])
    if findings:
        print(f"{src}: {len(findings)} finding(s), converted around (--strict refuses them):", file=sys.stderr)
        for f in findings:
            print(f"  {f}", file=sys.stderr)
    print(f"wrote {report.path}: {report.episodes} episodes, {report.frames} frames in {report.seconds:.1f} s")
    return 0


def reading_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--fps``, ``--quaternion-order``, ``--quaternion-column``: how an Isaac Lab HDF5 is read (only those given)."""
    out: dict[str, Any] = {}
    if args.fps:
        out["fps"] = args.fps
    if args.quaternion_order:
        out["quaternion_order"] = args.quaternion_order
    if args.quaternion_column:
        out["quaternion_columns"] = parse_quaternion_columns(args.quaternion_column)
    return out


def _convert_recording(src: Path, args: argparse.Namespace, hdf5_opts: dict[str, Any]) -> Any:
    """A bag / MCAP / ROS 2 folder: ingest it with the topic map into a temporary episode store, then convert that."""
    from robodata.ingest import ingest_recording
    from robodata.topicmap import load_topic_map

    if not args.topic_map:
        raise LeRobotError(
            f"{src}: a bag or MCAP recording needs --topic-map TM.yaml (which topic becomes which feature); "
            "a LeRobot dataset folder or an episode-store .hdf5 needs none"
        )
    tm = load_topic_map(args.topic_map)
    dst = Path(args.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # a hidden temporary with its owner in the name: `robodata doctor` removes it if this process is killed
    with tempfile.TemporaryDirectory(prefix=partial_name(dst).name + "-", dir=dst.parent) as tmp:
        store = Path(tmp) / f"{src.stem}.hdf5"
        ing = ingest_recording(src, store, tm)
        print(f"ingested {src}: {len(ing.episodes)} episodes, {ing.frames} frames"
              + (f" ({ing.dropped_frames} dropped by the sync tolerance)" if ing.dropped_frames else ""),
              file=sys.stderr)  # fmt: skip
        return convert(store, dst, to=args.to, **hdf5_opts)


def _validate(args: argparse.Namespace) -> int:
    findings = validate_dataset(args.path, check_videos=not args.no_videos)
    for f in findings:
        print(f)
    code = exit_code(findings)
    print("ok" if code == 0 and not findings else f"{len(findings)} finding(s)", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m robodata.lerobot.cli``); the main CLI uses :func:`add_subcommands`."""
    parser = argparse.ArgumentParser(prog="robodata-lerobot")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RobodataError as err:  # LeRobotError, and ingest / topic-map errors of bag sources
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
