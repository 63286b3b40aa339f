"""Assemble and run the operator: kopf registry, start-up settings, leader election, health and metrics.

Leader election uses kopf peering: every replica joins the peering object `settings.peering_name` with a
distinct priority (random unless configured; kopf freezes every replica when priorities tie), and only the
highest-priority live replica handles LLMJobs; the others pause and take over when its peering record expires.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta
from typing import Any

import kopf

from llmasos.api import constants as c
from llmasos.carbon.fallback import default_chain
from llmasos.cluster.kube import KubeClient, load_credentials
from llmasos.errors import ConfigError
from llmasos.gpus.products import build_catalog
from llmasos.handlers.admission_check import register_admission_check_handlers
from llmasos.handlers.context import OperatorContext
from llmasos.handlers.indexes import register_indexes
from llmasos.handlers.leadership import export_leadership_forever
from llmasos.handlers.liveness import serve_liveness
from llmasos.handlers.llmjob import register_llmjob_handlers
from llmasos.handlers.resync import resync_forever
from llmasos.handlers.watch_scope import apply_watch_selectors
from llmasos.metrics import OperatorMetrics
from llmasos.planning.timing.forecast_error import ForecastErrorModel
from llmasos.settings import Settings, electricitymaps_token


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff base that records and builds nothing: the operator registers no handler that reads a diff."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def build_registry(ctx: OperatorContext) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    register_indexes(registry)
    register_llmjob_handlers(registry, ctx)
    register_admission_check_handlers(registry, ctx)

    @kopf.on.startup(id="configure", registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        prefix = c.KOPF_ANNOTATION_PREFIX
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
        # No create/update handlers read a diff (passes compare desired and observed state), so kopf's per-event
        # deep copy of every body into a diff base is skipped (profiled: ~6% of the CPU at 500 LLMJobs).
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.persistence.finalizer = f"{prefix}/finalizer"
        settings.posting.level = logging.WARNING
        # No kopf worker limit: with one, per-object workers waiting for the indexes to fill can starve the very
        # workers that fill them (a deadlock seen at start-up with many objects). max_workers bounds reconcile
        # passes instead (OperatorContext.passes).
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        apply_watch_selectors(settings, ctx.settings)
        if ctx.settings.peering_name:
            settings.peering.name = ctx.settings.peering_name
            settings.peering.priority = ctx.settings.peering_priority or random.randint(1, 2**31 - 1)
            ctx.peering_priority = settings.peering.priority
            settings.peering.mandatory = True
            settings.peering.lifetime = ctx.settings.peering_lifetime_seconds
            settings.peering.stealth = False
        else:
            settings.peering.standalone = True

    @kopf.on.login(id="login", registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # Same credentials as our own client; re-invoked by kopf on 401, so rotated tokens are re-read.
        creds = ctx.kube.creds
        token = creds.bearer()
        return kopf.ConnectionInfo(
            server=creds.server, ca_path=creds.ca_file, insecure=creds.insecure or None,
            certificate_path=creds.cert_file, private_key_path=creds.key_file,
            scheme="Bearer" if token else None, token=token,
        )

    @kopf.on.probe(id="llmjobs", registry=registry)
    def probe(**_: Any) -> int:
        return ctx.kube.requests_total

    resync: list[asyncio.Task[None]] = []

    @kopf.on.startup(id="resync", registry=registry)
    async def start_resync(**_: Any) -> None:
        resync.append(asyncio.create_task(resync_forever(ctx), name="llmasos-resync"))
        resync.append(asyncio.create_task(export_leadership_forever(ctx), name="llmasos-leadership"))

    @kopf.on.cleanup(id="close", registry=registry)
    async def close(**_: Any) -> None:
        for task in resync:
            task.cancel()
        await asyncio.gather(*resync, return_exceptions=True)
        # Passes after a child Job's change run in tasks of their own (not kopf's): stop them before the Events they
        # would queue and the client they would use are closed.
        pending = list(ctx.coalescing.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await ctx.events.close()
        await ctx.kube.aclose()
        await ctx.carbon.aclose()

    return registry


async def run_operator(settings: Settings, kubeconfig: str | None = None,
                       stop_flag: asyncio.Event | None = None) -> None:
    """Run until stopped (SIGTERM/SIGINT or `stop_flag`)."""
    kube = KubeClient(load_credentials(kubeconfig), max_inflight=settings.api_concurrency)
    metrics = OperatorMetrics()
    metrics.serve(settings.metrics_port, settings.bind_address)
    error_model = ForecastErrorModel(sigma_at_24h=settings.forecast_error) if settings.forecast_error else None
    if settings.carbon_sources == ("electricitymaps",) and not electricitymaps_token():
        raise ConfigError("carbon_sources is only electricitymaps but LLMASOS_ELECTRICITYMAPS_TOKEN is not set")
    carbon = default_chain(electricitymaps_token(), base_url=settings.electricitymaps_url,
                           trace_offset=settings.trace_offset_delta(), forecast_error=error_model,
                           include=settings.carbon_sources,
                           cache_ttl=timedelta(seconds=settings.carbon_cache_seconds))
    catalog = build_catalog(settings.catalog_overrides())
    ctx = OperatorContext(settings=settings, kube=kube, metrics=metrics, carbon=carbon, catalog=catalog,
                          budgets=settings.budgets())
    registry = build_registry(ctx)
    host = f"[{settings.bind_address}]" if ":" in settings.bind_address else settings.bind_address
    liveness = f"http://{host}:{settings.health_port}/healthz" if settings.health_port else None
    live = await serve_liveness(settings.bind_address, settings.liveness_port) if settings.liveness_port else None
    try:
        await _run_kopf(settings, registry, ctx, liveness, stop_flag)
    finally:
        if live is not None:
            live.close()


async def _run_kopf(settings: Settings, registry: kopf.OperatorRegistry, ctx: OperatorContext,
                    liveness: str | None, stop_flag: asyncio.Event | None) -> None:
    await kopf.operator(
        registry=registry,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.served_namespaces()),
        standalone=not settings.peering_name,
        peering_name=settings.peering_name or None,
        priority=settings.peering_priority or None,
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        memo=kopf.Memo(ctx=ctx),
    )
