"""``robodata convert`` and ``robodata validate``: the LeRobot tier's subcommands for the main CLI."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robodata.lerobot.convert import convert
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.layout import VERSIONS, V30
from robodata.lerobot.validate import exit_code, validate_dataset


def add_subcommands(subparsers: Any) -> None:
    """Add ``convert`` and ``validate`` to an ``argparse`` subparsers object (each sets ``func``)."""
    p = subparsers.add_parser("convert", help="convert a LeRobot dataset (v2.0/v2.1/v3.0) or an episode-store HDF5")
    p.add_argument("src", help="LeRobot dataset folder or episode-store .hdf5")
    p.add_argument("dst", help="output dataset folder (replaced atomically)")
    p.add_argument("--to", choices=VERSIONS, default=V30, help="target LeRobot version (v2.1 = GR00T flavour)")
    p.add_argument("--topic-map", default=None, help="YAML topic map (for bag sources; not used for HDF5/LeRobot)")
    p.add_argument("--codec", default="libsvtav1", help="video codec for HDF5 sources (libsvtav1, libx264, auto)")
    p.add_argument("--crf", type=int, default=30)
    p.add_argument("--task", default=None, help="task text for every episode of an HDF5 source")
    p.set_defaults(func=_convert)
    v = subparsers.add_parser("validate", help="check a LeRobot dataset; exit 1 on errors")
    v.add_argument("path")
    v.add_argument("--no-videos", action="store_true", help="skip counting video frames")
    v.set_defaults(func=_validate)


def _convert(args: argparse.Namespace) -> int:
    if args.topic_map:
        raise LeRobotError(f"{args.topic_map}: topic maps apply to bag sources, which convert does not read yet")
    opts = {}
    if str(args.src).lower().endswith((".hdf5", ".h5", ".he5")):
        opts = {"video_codec": args.codec, "crf": args.crf, "task": args.task}
    report = convert(args.src, args.dst, to=args.to, **opts)
    print(f"wrote {report.path}: {report.episodes} episodes, {report.frames} frames in {report.seconds:.1f} s")
    return 0


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
    except LeRobotError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
