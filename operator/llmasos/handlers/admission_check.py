"""The carbon AdmissionCheck controller (controllerName ``llmasos.io/carbon``) for Kueue workloads of any kind.

Kueue reserves quota for a Workload, then waits for every AdmissionCheck its ClusterQueue lists to be ``Ready``.
This controller answers for the checks whose AdmissionCheck names it: it keeps them ``Active``, and for each
workload with quota reserved it reads the timing annotations of the job that owns the workload (a Job, JobSet,
RayJob or TrainJob: api/kueue_timing.py), the carbon zone of the flavour Kueue assigned (the flavour's
`llmasos.io/carbon-zone` node label, or that label on its nodes), asks the carbon sources for that zone's forecast
and writes the pure verdict (planning/timing/admission_gate.py) into the workload's status: ``Pending`` with a
message saying when and why, or ``Ready``. A held workload is looked at again at its window or latest start (and at
least every RECHECK_SECONDS, so a newer forecast moves the window).

Writes are server-side applies of our own entry of `status.admissionChecks` under our field manager (as Kueue's own
check controllers do), so they never overwrite Kueue's fields. Events on the Workload follow the status write.
Registered only when `settings.kueue_admission_check` is set (the chart's `kueue.admissionCheck.enabled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any

import kopf

from llmasos.api.clock import parse_instant_or_none
from llmasos.api.constants import NODE_CARBON_ZONE_LABEL
from llmasos.api.kueue_timing import AnnotationError, TimingRequest, parse_timing
from llmasos.cluster.kube import NODES, Resource
from llmasos.errors import CarbonSourceError, KubeApiError
from llmasos.handlers.context import OperatorContext
from llmasos.planning.timing.admission_gate import Verdict, decide
from llmasos.planning.timing.forecast import Forecast

CONTROLLER_NAME = "llmasos.io/carbon"
FIELD_MANAGER = "llmasos-carbon-admission-check"
KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta2"
WORKLOADS = Resource(KUEUE_GROUP, KUEUE_VERSION, "workloads")
ADMISSION_CHECKS = Resource(KUEUE_GROUP, KUEUE_VERSION, "admissionchecks", namespaced=False)
RESOURCE_FLAVORS = Resource(KUEUE_GROUP, KUEUE_VERSION, "resourceflavors", namespaced=False)
RECHECK_SECONDS = 300.0
LOGGER = logging.getLogger("llmasos.admission_check")
RETRY_SECONDS = 5.0
ZONE_CACHE_SECONDS = 60.0


class CarbonCheck:
    """State of the controller: which AdmissionChecks are ours, and the pending re-looks per workload uid."""

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self.controller: dict[str, str] = {}  # AdmissionCheck name -> its controllerName
        self.rechecks: dict[str, asyncio.Task[None]] = {}
        self.zones: dict[str, tuple[float, str]] = {}  # flavour -> (monotonic time looked up, zone or "")

    # ---------------------------------------------------------------------------------------- AdmissionChecks
    async def check_changed(self, body: dict[str, Any], deleted: bool) -> None:
        name = body["metadata"]["name"]
        if deleted:
            self.controller.pop(name, None)
            return
        self.controller[name] = str((body.get("spec") or {}).get("controllerName", ""))
        if self.controller[name] != CONTROLLER_NAME:
            return
        active = next((c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == "Active"),
                      None)
        if active is not None and active.get("status") == "True":
            return
        condition = {"type": "Active", "status": "True", "reason": "Active",
                     "message": "llmasos.io/carbon holds workloads until their lowest-carbon window",
                     "lastTransitionTime": self.ctx.now_iso(),
                     "observedGeneration": body["metadata"].get("generation", 0)}
        await self._apply_status(ADMISSION_CHECKS, body, {"conditions": [condition]})

    async def is_ours(self, check: str) -> bool:
        if check not in self.controller:
            found = await self.ctx.kube.get_or_none(ADMISSION_CHECKS, check)
            self.controller[check] = str(((found or {}).get("spec") or {}).get("controllerName", ""))
        return self.controller[check] == CONTROLLER_NAME

    # --------------------------------------------------------------------------------------------- Workloads
    async def workload_changed(self, body: dict[str, Any], deleted: bool, logger: Any) -> None:
        uid = body["metadata"]["uid"]
        if deleted:
            self._cancel(uid)
            return
        try:
            await self.review(body, logger)
        except (kopf.TemporaryError, KubeApiError) as exc:  # kopf does not retry event handlers: look again soon
            logger.warning("carbon check: %s; retrying in %gs", exc, RETRY_SECONDS)
            self._schedule(body, None, RETRY_SECONDS)

    async def review(self, workload: dict[str, Any], logger: Any) -> None:
        status = workload.get("status") or {}
        ours = [c for c in status.get("admissionChecks") or [] if await self.is_ours(str(c.get("name")))]
        pending = [c for c in ours if c.get("state") == "Pending"]
        if not pending or not _quota_reserved(status) or _finished(status):
            return
        request = await self._timing(workload)
        forecast, data_message = await self._forecast(workload)
        verdict = decide(request, forecast, self.ctx.clock(), data_message=data_message)
        for check in pending:
            if check.get("message") != verdict.message or verdict.state != "Pending":
                await self._write(workload, check, verdict)
                held = None
                if verdict.state == "Ready" and isinstance(request, TimingRequest):
                    held = (self.ctx.clock() - request.submitted_at).total_seconds()
                self.ctx.metrics.record_admission_check(verdict.state, verdict.reason, held)
                # One Event when a workload is first held and one when it is let through (not per re-plan).
                if verdict.state != "Pending" or not check.get("message"):
                    await self.ctx.post_event(workload, "Normal", verdict.reason, verdict.message)
        logger.info("carbon check %s/%s: %s (%s)", workload["metadata"]["namespace"], workload["metadata"]["name"],
                    verdict.state, verdict.message)
        if verdict.state == "Pending":
            self._schedule(workload, verdict.recheck_at)

    async def _timing(self, workload: dict[str, Any]) -> TimingRequest | AnnotationError | None:
        meta = workload["metadata"]
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        job = await self._owner(owner, meta["namespace"]) if owner else None
        source = job or workload
        created = parse_instant_or_none(source["metadata"].get("creationTimestamp")) or self.ctx.clock()
        try:
            return parse_timing(source["metadata"].get("annotations") or {}, created)
        except AnnotationError as exc:
            return exc

    async def _owner(self, ref: dict[str, Any], namespace: str) -> dict[str, Any] | None:
        group, _, version = str(ref.get("apiVersion", "")).rpartition("/")
        kind = str(ref.get("kind", ""))
        res = Resource(group, version, kind.lower() + "s")
        return await self.ctx.kube.get_or_none(res, str(ref.get("name")), namespace)

    async def _forecast(self, workload: dict[str, Any]) -> tuple[Forecast | None, str]:
        zone, why = await self._zone(workload)
        if not zone:
            return None, why
        try:
            sourced = await self.ctx.carbon.forecast(zone)
        except CarbonSourceError as exc:
            return None, f"no carbon source answered for {zone}: {exc}"
        return sourced.value, ("" if not sourced.degraded else sourced.message)

    async def _zone(self, workload: dict[str, Any]) -> tuple[str, str]:
        """The carbon zone of the flavours Kueue assigned (the first that has one), or ("", why not)."""
        admission = (workload.get("status") or {}).get("admission") or {}
        flavours = sorted({str(f) for ps in admission.get("podSetAssignments") or []
                           for f in (ps.get("flavors") or {}).values()})
        for name in flavours:
            zone = await self._flavour_zone(name)
            if zone:
                return zone, ""
        if self.ctx.settings.default_zone:
            return self.ctx.settings.default_zone, ""
        names = ", ".join(flavours) or "none"
        return "", f"no {NODE_CARBON_ZONE_LABEL} label on the nodes of flavour(s) {names}"

    async def _flavour_zone(self, name: str) -> str:
        """The flavour's zone: its nodeLabels' llmasos.io/carbon-zone, else that label on the nodes it selects.
        Remembered for ZONE_CACHE_SECONDS, so a burst of workloads on one flavour costs one lookup."""
        cached = self.zones.get(name)
        if cached is not None and time.monotonic() - cached[0] < ZONE_CACHE_SECONDS:
            return cached[1]
        flavour = await self.ctx.kube.get_or_none(RESOURCE_FLAVORS, name)
        labels = ((flavour or {}).get("spec") or {}).get("nodeLabels") or {}
        zone = str(labels.get(NODE_CARBON_ZONE_LABEL) or "")
        if not zone and labels:
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            zones = [(n["metadata"].get("labels") or {}).get(NODE_CARBON_ZONE_LABEL)
                     for n in await self.ctx.kube.list(NODES, label_selector=selector)]
            zone = next((str(z) for z in zones if z), "")
        self.zones[name] = (time.monotonic(), zone)
        return zone

    async def _write(self, workload: dict[str, Any], check: dict[str, Any], verdict: Verdict) -> None:
        entry = {"name": check["name"], "state": verdict.state, "message": verdict.message[:2048],
                 "lastTransitionTime": (check.get("lastTransitionTime") if check.get("state") == verdict.state
                                        else None) or self.ctx.now_iso()}
        try:
            await self._apply_status(WORKLOADS, workload, {"admissionChecks": [entry]})
        except KubeApiError as exc:
            if exc.not_found:
                return
            raise kopf.TemporaryError(f"writing the carbon check of the workload: {exc}", delay=5) from exc

    async def _apply_status(self, res: Resource, body: dict[str, Any], status: dict[str, Any]) -> None:
        meta = body["metadata"]
        doc = {"apiVersion": res.api_version, "kind": body.get("kind"),
               "metadata": {"name": meta["name"], **({"namespace": meta["namespace"]} if res.namespaced else {})},
               "status": status}
        await self.ctx.kube.request("PATCH", res.path(meta.get("namespace"), meta["name"], "status"), doc,
                                    params={"fieldManager": FIELD_MANAGER, "force": "true"},
                                    content_type="application/apply-patch+yaml")

    # ------------------------------------------------------------------------------------------------ timers
    def _schedule(self, workload: dict[str, Any], at: datetime | None, delay: float = RECHECK_SECONDS) -> None:
        """Look at the workload again at `at` (its window or latest start), after `delay` seconds at the latest."""
        meta = workload["metadata"]
        uid, namespace, name = meta["uid"], meta["namespace"], meta["name"]
        if at is not None:
            delay = min(delay, max(0.5, (at - self.ctx.clock()).total_seconds() + 0.5))
        self._cancel(uid)
        self.rechecks[uid] = asyncio.create_task(self._recheck(uid, namespace, name, delay),
                                                 name=f"carbon-check-{namespace}-{name}")

    async def _recheck(self, uid: str, namespace: str, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.rechecks.pop(uid, None)
        workload = await self.ctx.kube.get_or_none(WORKLOADS, name, namespace)
        if workload is None or workload["metadata"].get("uid") != uid:
            return
        await self.workload_changed(workload, False, LOGGER)

    def _cancel(self, uid: str) -> None:
        task = self.rechecks.pop(uid, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def close(self) -> None:
        tasks = list(self.rechecks.values())
        self.rechecks.clear()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _quota_reserved(status: dict[str, Any]) -> bool:
    return any(c.get("type") == "QuotaReserved" and c.get("status") == "True" for c in status.get("conditions") or [])


def _finished(status: dict[str, Any]) -> bool:
    return any(c.get("type") == "Finished" and c.get("status") == "True" for c in status.get("conditions") or [])


def register_admission_check_handlers(registry: kopf.OperatorRegistry, ctx: OperatorContext) -> None:
    """Watch AdmissionChecks and Workloads when `settings.kueue_admission_check` is on (Kueue's CRDs installed)."""
    if not ctx.settings.kueue_admission_check:
        return
    check = CarbonCheck(ctx)

    @kopf.on.event(KUEUE_GROUP, KUEUE_VERSION, "admissionchecks", id="carbon-admission-check", registry=registry)
    async def admission_check_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        await check.check_changed(dict(body), type == "DELETED")

    @kopf.on.event(KUEUE_GROUP, KUEUE_VERSION, "workloads", id="carbon-workload", registry=registry)
    async def workload_event(body: kopf.Body, type: str | None, logger: Any, **_: Any) -> None:
        await check.workload_changed(dict(body), type == "DELETED", logger)

    @kopf.on.cleanup(id="carbon-admission-check-close", registry=registry)
    async def close(**_: Any) -> None:
        await check.close()
