"""`llmasos report`: read LLMJobs (an exported JSON file, or the cluster) and write the sustainability report.

`register(subparsers)` adds the subcommand; the cluster read is one injected async function (`fetch`), so tests and
other front ends pass their own, and nothing here runs at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmasos.errors import LLMasOSError
from llmasos.report.aggregate import build_report
from llmasos.report.caps import cap_clause, cap_cost, cap_explanation
from llmasos.report.model import items_of, load_file, parse_llmjob
from llmasos.report.writers import write_report

Fetch = Callable[[str | None, str | None], Coroutine[Any, Any, list[Mapping[str, Any]]]]
DEFAULT_TITLE = "LLMasOS sustainability report"


async def fetch_from_cluster(kubeconfig: str | None, namespace: str | None) -> list[Mapping[str, Any]]:
    """Every LLMJob (or those of one namespace) through the operator's own Kubernetes client."""
    from llmasos.cluster.kube import LLMJOBS, KubeClient, load_credentials

    client = KubeClient(load_credentials(kubeconfig))
    try:
        return items_of(await client.list(LLMJOBS, namespace))
    finally:
        await client.aclose()


def register(subparsers: Any, fetch: Fetch = fetch_from_cluster) -> argparse.ArgumentParser:
    """Add `report` to an argparse subparsers object; sets `func` (call `args.func(args)`, returns an exit code)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="write a sustainability report (HTML with charts, CSV, JSON) from LLMJob status",
        description="Totals by namespace, team and model; savings from time shifting, pool choice and power caps; "
                    "energy per token; offsets; methodology. Works offline.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--from-file", type=Path, metavar="JSON",
                        help="LLMJobs exported with `kubectl get llmjobs -A -o json` (instead of the cluster)")
    source.add_argument("--kubeconfig", help="read the cluster with this kubeconfig (default: KUBECONFIG, in-cluster)")
    p.add_argument("-n", "--namespace", help="only this namespace (cluster reads)")
    p.add_argument("--out", type=Path, default=Path("llmasos-report"), help="output directory (default: %(default)s)")
    p.add_argument("--title", default=DEFAULT_TITLE)

    def run(args: argparse.Namespace) -> int:
        return run_report(args, fetch)

    p.set_defaults(func=run)
    return p


def run_report(args: argparse.Namespace, fetch: Fetch, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    try:
        if args.from_file is not None:
            records = load_file(args.from_file)
        else:
            records = [parse_llmjob(o) for o in asyncio.run(fetch(args.kubeconfig, args.namespace))]
    except (OSError, ValueError, LLMasOSError) as exc:  # unreadable file, bad kubeconfig or plugin, API refusal
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.namespace and args.from_file is not None:
        records = [r for r in records if r.namespace == args.namespace]
    report = build_report(records, now())
    files = write_report(report, args.out, args.title)
    t = report.totals
    caps = ("; " if cap_cost(t.power_cap_g) else ", ") + cap_clause(t.power_cap_g)
    print(f"{t.jobs} job(s): {t.energy_kwh:.3f} kWh, {t.grams:.1f} gCO2e; saved {t.time_shift_g:.1f} g by time "
          f"shifting, {t.pool_choice_g:.1f} g by pool choice{caps}")
    if why := cap_explanation(t.power_cap_g, report.jobs):
        print(why)
    for path in files.values():
        print(f"wrote {path}")
    return 0

