"""The `llmasos` command: one entry point for the operator, the node agent and the user-facing tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmasos import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmasos", description="Carbon-aware LLM workloads on Kubernetes.",
        epilog="Exit codes of every command: 0 done; 1 the work failed (cluster, carbon source, writing a file); "
        "2 bad flags or bad input, nothing done. `llmasos COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"llmasos {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("version", help="print the version")

    op = sub.add_parser("operator", help="run the LLMJob operator (kopf)")
    op.add_argument("--settings", help="YAML settings file (also LLMASOS_SETTINGS); env LLMASOS_* overrides it")
    op.add_argument("--kubeconfig", help="kubeconfig path (default: KUBECONFIG, then in-cluster)")
    op.add_argument("--verbose", action="store_true", help="debug logging")

    crd = sub.add_parser("crd", help="print the CustomResourceDefinitions (or write them with --write DIR)")
    crd.add_argument("--write", metavar="DIR", help="write one YAML file per CRD group into DIR")
    crd.add_argument("--policy", metavar="FILE",
                     help="write the spec of the chart's LLMJob ValidatingAdmissionPolicy to FILE instead")

    from llmasos.agent.kube_adapter import AgentApi
    from llmasos.agent.main import register as register_agent
    from llmasos.commands.plan import register as register_plan

    agent_api = AgentApi()
    register_agent(sub, pod_lister_factory=agent_api.pod_lister, report_sink_factory=agent_api.report_sink,
                   leader_source_factory=agent_api.leader_source)
    register_plan(sub)
    from llmasos.report.cli import register as register_report

    register_report(sub)

    docs = sub.add_parser("docs", help="print the LLMJob field reference (Markdown) generated from the schema")
    docs.add_argument("--write", metavar="FILE", help="write it to FILE instead")
    return parser


def _docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llmasos.api.reference import render_reference

    text = render_reference()
    if args.write:
        Path(args.write).write_text(text)
    else:
        print(text, end="")
    return 0


def _run_operator(args: argparse.Namespace) -> int:
    import logging

    import uvloop

    from llmasos.errors import ConfigError
    from llmasos.handlers.operator import run_operator
    from llmasos.settings import load_settings

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = load_settings(args.settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # uvloop's event loop: the operator is CPU-bound in per-event work at scale, and uvloop's scheduling,
    # sockets and TLS cost less CPU than asyncio's own loop (see docs/development.md, "Operator scale benchmark").
    try:
        uvloop.run(run_operator(settings, kubeconfig=args.kubeconfig))
    except ConfigError as exc:  # no kubeconfig, or a bad one: found before any handler runs
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _crd(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llmasos.api.admission import render_policy_spec
    from llmasos.api.crd import GENERATED_FILES

    if args.policy:
        Path(args.policy).write_text(render_policy_spec())
        print(args.policy)
    elif args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for filename, render in GENERATED_FILES.items():
            (out / filename).write_text(render())
            print(out / filename)
    else:
        print("\n".join(render() for render in GENERATED_FILES.values()), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    if args.command == "operator":
        return _run_operator(args)
    if args.command in ("crd", "docs"):
        try:
            return _crd(args) if args.command == "crd" else _docs(args)
        except OSError as exc:  # --write into a path that cannot be written
            print(f"error: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    func = getattr(args, "func", None)
    if func is not None:
        return int(func(args))
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":
    sys.exit(main())
