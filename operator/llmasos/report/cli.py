"""`llmasos report`: read LLMJobs (an exported JSON file, or the cluster) and write the sustainability report.

`register(subparsers)` adds the subcommand; the cluster read is one injected async function (`fetch`), so tests and
other front ends pass their own, and nothing here runs at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from llmasos.api.clock import Clock, utc_now
from llmasos.commands import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from llmasos.commands.progress import Progress
from llmasos.errors import ConfigError, LLMasOSError
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
                    "energy per token by model and namespace; offsets; methodology. Writes report.html, report.json, "
                    "llmjobs.csv, totals.csv and energy-per-token.csv into --out. Works offline on an export "
                    "(--from-file). Exit codes: 0 written; 1 the cluster could not be read or a file could not be "
                    "written; 2 bad flags or input, or no kubeconfig.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("-f", "--from-file", type=Path, metavar="FILE",
                        help="LLMJobs exported with `kubectl get llmjobs -A -o yaml` (or -o json); `-` reads stdin. "
                        "Instead of reading the cluster")
    source.add_argument("--kubeconfig", help="read the cluster with this kubeconfig (default: KUBECONFIG, then "
                        "in-cluster, then ~/.kube/config)")
    p.add_argument("-n", "--namespace", help="only this namespace")
    p.add_argument("--out", type=Path, metavar="DIR", default=Path("llmasos-report"),
                   help="output directory, created if missing (default: %(default)s)")
    p.add_argument("--title", default=DEFAULT_TITLE, help="the report page's title (default: %(default)s)")

    def run(args: argparse.Namespace) -> int:
        return run_report(args, fetch)

    p.set_defaults(func=run)
    return p


NO_CLUSTER_HINT = ("pass --kubeconfig FILE or set KUBECONFIG, or report on an export: "
                   "kubectl get llmjobs -A -o yaml > llmjobs.yaml; llmasos report -f llmjobs.yaml")


def run_report(args: argparse.Namespace, fetch: Fetch, now: Clock = utc_now) -> int:
    try:
        if args.from_file is not None:
            records = load_file(args.from_file)
        else:
            records = [parse_llmjob(o) for o in asyncio.run(fetch(args.kubeconfig, args.namespace))]
    except OSError as exc:  # an unreadable export file
        print(f"error: cannot read {args.from_file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, UnicodeDecodeError) as exc:  # an export that is not an LLMJob list
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:  # no kubeconfig, or a bad one (unreadable, no context, a failing exec plugin)
        if args.kubeconfig or os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").exists():
            print(f"error: {exc}", file=sys.stderr)
        else:
            why = "no kubeconfig: KUBECONFIG is not set, ~/.kube/config does not exist, and this is not a pod"
            print(f"error: no cluster to read ({why}); {NO_CLUSTER_HINT}", file=sys.stderr)
        return EXIT_USAGE
    except LLMasOSError as exc:  # the API server refused or could not be reached, an exec plugin failed
        print(f"error: cannot read LLMJobs from the cluster: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.namespace and args.from_file is not None:
        records = [r for r in records if r.namespace == args.namespace]
    with Progress("report") as bar:  # stderr, on a terminal only
        bar.stage(f"building the report over {len(records)} LLMJob(s)")
        report = build_report(records, now())
        bar.stage(f"writing into {args.out}")
        try:
            files = write_report(report, args.out, args.title)
        except OSError as exc:
            failed = f"error: cannot write the report into {args.out}: {exc.strerror or exc}"
        else:
            failed = ""
    if failed:
        print(failed, file=sys.stderr)
        return EXIT_FAILURE
    t = report.totals
    caps = ("; " if cap_cost(t.power_cap_g) else ", ") + cap_clause(t.power_cap_g)
    print(f"{t.jobs} job(s): {t.energy_kwh:.3f} kWh, {t.grams:.1f} gCO2e; saved {t.time_shift_g:.1f} g by time "
          f"shifting, {t.pool_choice_g:.1f} g by pool choice{caps}")
    if why := cap_explanation(t.power_cap_g, report.jobs):
        print(why)
    for path in files.values():
        print(f"wrote {path}")
    return EXIT_OK

