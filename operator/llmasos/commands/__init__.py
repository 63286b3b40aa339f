"""User-facing subcommands of `llmasos` (each module exposes `register(subparsers)`), and what they share.

Exit codes, the same for every subcommand (docs/getting-started.md lists them for users):

    0  EXIT_OK       done
    1  EXIT_FAILURE  the input was fine but the work failed: the cluster or a carbon source could not be reached,
                     the API server refused, a file could not be written
    2  EXIT_USAGE    bad flags or bad input (a manifest, a CSV, a JSON Lines file, a kubeconfig that is missing);
                     nothing was done. argparse exits 2 for unknown flags too.

Errors are one line on stderr that starts with `error: `; never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class InputError(Exception):
    """A user input problem: printed as one line, exit code 2 (EXIT_USAGE), never a traceback."""


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, creating missing parent directories; InputError if that is impossible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


class OutputError(Exception):
    """A file or directory could not be written: one line, exit code 1 (EXIT_FAILURE)."""
