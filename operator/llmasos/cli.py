"""The `llmasos` command: one entry point for the operator, the node agent and the user-facing tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmasos import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmasos", description="Carbon-aware LLM workloads on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"llmasos {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":
    sys.exit(main())
