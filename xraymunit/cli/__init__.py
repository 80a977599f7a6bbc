"""Command line: `xraymunit SUBCOMMAND ...` — parse, build a config, call the stage function.

Each subcommand lives in its own module here with `register(subparsers)`; heavy imports
happen inside the handler so `xraymunit --help` answers at once.
Exit codes: 0 success, 1 the stage ran but reported failure, 2 bad usage/input/config,
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from xraymunit import __version__
from xraymunit.errors import XraymunitError

SUBCOMMANDS = ("ingest", "train", "synthesize", "evaluate")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xraymunit",
        description="Chest X-ray augmentation with a grayscale MUNIT: "
        "ingest DICOM → train → synthesize abnormal images → evaluate a classifier.",
    )
    parser.add_argument("--version", action="version", version=f"xraymunit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"xraymunit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"xraymunit.cli.{name}":
                continue  # stage not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        result = args.func(args)
    except XraymunitError as exc:
        print(f"xraymunit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"xraymunit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if result in (None, 0) else int(result)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
