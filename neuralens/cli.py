"""The `neuralens` command: a thin layer over the Python API.

Each capability registers its own subcommands (``register(subparsers)`` in its ``cli`` module); this file
only wires them together and turns user errors into one-line messages with a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

from . import __version__
from .errors import NeuralensError
from .options import OptionError

# Modules with a ``register(subparsers)`` function, in the order their commands appear in --help.
COMMAND_MODULES = [
    "neuralens.style.cli",
    "neuralens.fast.cli",
    "neuralens.fast.decoder_cli",
    "neuralens.fast.models_cli",
    "neuralens.video.cli",
    "neuralens.visualize.cli",
    "neuralens.web.cli",
    "neuralens.faces.cli",
    "neuralens.classify.cli",
    "neuralens.distributed.cli",
]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program killed by it


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``neuralens stylize: error: ...``) and exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every capability's subcommands."""
    parser = _Parser(
        prog="neuralens",
        description="Classic CNN applications on your own images: neural style transfer, faces, layer views.",
    )
    parser.add_argument("--version", action="version", version=f"neuralens {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: parse ``argv``, run the chosen command, return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error: already printed
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except OptionError as exc:  # the API names the field; on the command line, name the flag
        print(f"error: {exc.cli_message()}", file=sys.stderr)
        return exc.exit_code
    except NeuralensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("error: out of memory; try a smaller --size", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # `neuralens ... --json | head`: the reader left; say nothing more
        # Python flushes stdout again at exit, which would raise once more: point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def entry() -> None:
    """The installed command: under jemalloc or mimalloc where there is one (``allocator``), then :func:`main`."""
    from . import allocator

    allocator.use_fast_allocator()
    sys.exit(main())


if __name__ == "__main__":
    entry()
