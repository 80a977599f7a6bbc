"""Command line: `xraymunit SUBCOMMAND ...` — parse, build the stage's options, call the stage.

Each subcommand lives in its own module here with `register(subparsers)`; heavy imports
happen inside the handler so `xraymunit --help` answers at once. Every subcommand also takes
the logging options (-v/-q/--log-file) of `add_logging_options`.
Exit codes: 0 success, 1 the stage ran but reported failure, 2 bad usage/input/config,
130 interrupted (Ctrl-C), 143 stopped by SIGTERM after saving its resumable state.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from xraymunit import __version__
from xraymunit.errors import XraymunitError
from xraymunit.stopping import Stopped

SUBCOMMANDS = ("ingest", "train", "synthesize", "evaluate", "pipeline")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_CODES_HELP = ("exit status: 0 ok, 1 the stage ran but reported failure, 2 bad arguments or input, "
                   "130 interrupted (Ctrl-C), 143 stopped by SIGTERM (state saved: rerun to resume).")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """-v/-q/--log-file, accepted before or after the subcommand (SUPPRESS keeps the earlier value)."""
    group = parser.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="log debug messages")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="log warnings and errors only")
    group.add_argument("--log-file", metavar="FILE", default=argparse.SUPPRESS,
                       help="also write the log (debug level) to FILE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xraymunit",
        description="Chest X-ray augmentation with a grayscale MUNIT: "
        "ingest DICOM → train → synthesize abnormal images → evaluate a classifier.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"xraymunit {__version__}")
    add_logging_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"xraymunit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"xraymunit.cli.{name}":
                continue  # stage not built yet
            raise
        module.register(subparsers)
    for sub in subparsers.choices.values():
        add_logging_options(sub)
    return parser


def own_debug_only(record: logging.LogRecord) -> bool:
    """DEBUG lines of xraymunit only: -v and --log-file are for our steps, not the decoders' and
    matplotlib's internals (their INFO and above still pass)."""
    return record.levelno > logging.DEBUG or record.name == "xraymunit" or record.name.startswith("xraymunit.")


def configure_logging(verbose: bool = False, quiet: bool = False, log_file: str | None = None) -> None:
    """Console (stderr) at INFO, DEBUG with -v, WARNING with -q; --log-file gets DEBUG (xraymunit's own).

    Like `logging.basicConfig`, the console handler is only added when the host (a notebook,
    pytest, an application) has not configured logging itself; handlers added by an earlier
    call are replaced, never stacked.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_xraymunit", False)]:
        root.removeHandler(handler)
        handler.close()
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    added = []
    if not root.handlers:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(level)
        console.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
        added.append(console)
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        added.append(handler)
    for handler in added:
        handler._xraymunit = True  # type: ignore[attr-defined]
        handler.addFilter(own_debug_only)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if log_file else level)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    if verbose and quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    level = logging.getLogger().level
    try:
        configure_logging(verbose, quiet, getattr(args, "log_file", None))
    except OSError as exc:
        print(f"xraymunit: error: cannot open the log file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run_command(parser, args)
    finally:  # called in-process (a notebook, a test): leave logging as it was, no handler on a stale stream
        release_logging(level)


def release_logging(level: int) -> None:
    """Remove the handlers `configure_logging` added and restore the root logger's level."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_xraymunit", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def _run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The chosen subcommand, its errors as one stderr line and an exit code."""
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        result = args.func(args)
    except Stopped as exc:
        print(f"xraymunit {args.command}: stopped: {exc}", file=sys.stderr)
        return EXIT_TERMINATED
    except XraymunitError as exc:
        print(f"xraymunit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"xraymunit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if result in (None, 0) else int(result)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
