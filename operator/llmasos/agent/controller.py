"""The node agent's control loop: pods -> GPUs -> limits, with energy metered and every cap undone when it must be.

One `tick()` is one level-based pass (the same whether a pod started, changed, ended, or the agent restarted):

1. list the node's pods (on an API error keep the previous view: never uncap a pod that may still run);
2. read every GPU and attribute the energy of the interval to its owner at the interval's start;
3. map pods to GPUs; pods that disappeared or reached a terminal phase get their GPUs' default limits back;
4. per live GPU pod, compute the target limit (static policies, one energyOptimal step, or the limit of a multi-node
   job's leader pod: `leader.py`), apply it, and read the worker's token counter (each pass while searching, else
   every `progress_interval_s` with back-off) for the energy per token; an ended pod's last count comes from its
   termination message (`_final_counts`);
5. publish a snapshot; write the report when due.

Caps are recorded before they are applied and forgotten after they are undone (`state`), so `start()` can restore
caps a killed agent left behind, and `shutdown()` (SIGTERM) restores all of them. Per-pod memory: `PodControl`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from llmasos.agent.backend import GpuBackend, GpuBackendError, GpuInfo
from llmasos.agent.clock import Clock
from llmasos.agent.energy import PodRef, Reading, energy_delta, meter_state
from llmasos.agent.leader import LeaderSource, follow_target, is_follower, is_leader, local_leader
from llmasos.agent.mapping import Assignment, GpuMapper, is_gpu_pod
from llmasos.agent.node_report import build_node_report
from llmasos.agent.pod_control import PodControl, build_snapshot
from llmasos.agent.pods import NodePodView, PodLister, ReportSink
from llmasos.agent.power_policy import GpuLimits, PowerSpec, Sample, SearchSettings, SearchState, advance, start_search
from llmasos.agent.power_policy import static_limit as static_target
from llmasos.agent.progress import ProgressReader
from llmasos.agent.snapshot import Snapshot
from llmasos.agent.state import AgentState, AppliedCap, Store
from llmasos.api.energy_status import ENDED
from llmasos.errors import TransientError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    node_name: str
    interval_s: float = 5.0
    report_interval_s: float = 60.0  # at most one report write a minute in steady state ...
    report_min_interval_s: float = 10.0  # ... and at most one per 10 s when caps or pods change
    retention_s: float = 3600.0  # ended pods stay in the report and metrics this long
    max_gap_s: float = 30.0
    restore_unowned: bool = True  # at start-up, uncap GPUs no capped pod owns even without a record
    progress_interval_s: float = 10.0  # tokens of pods that are not energyOptimal: read at most this often ...
    progress_max_backoff_s: float = 300.0  # ... and, while a worker does not answer, ever less often up to this
    follow_interval_s: float = 10.0  # a multi-node job's follower reads its leader's limit at most this often ...
    leader_stale_s: float = 180.0  # ... and returns to the default limit once the leader's report is this old
    search: SearchSettings = field(default_factory=SearchSettings)


class PowerAgent:
    def __init__(
        self,
        settings: AgentSettings,
        backend: GpuBackend,
        pods: PodLister,
        mapper: GpuMapper,
        progress: ProgressReader,
        store: Store,
        clock: Clock,
        report_sink: ReportSink | None = None,
        on_assign: Callable[[Mapping[str, tuple[int, ...]], Mapping[str, NodePodView]], None] | None = None,
        leaders: LeaderSource | None = None,
    ) -> None:
        self.settings = settings
        self._backend, self._pods, self._mapper, self._progress = backend, pods, mapper, progress
        self._store, self._clock, self._sink, self._on_assign = store, clock, report_sink, on_assign
        self._leaders = leaders  # None: every pod searches for itself (no API server to find leaders through)
        self._gpus: list[GpuInfo] = []
        self._state = AgentState(node=settings.node_name)
        self._views: dict[str, NodePodView] = {}
        self._controls: dict[str, PodControl] = {}
        self._owners: dict[int, PodRef] = {}
        self._ended: dict[PodRef, tuple[float, PodControl]] = {}
        self._saved_searches: dict[str, SearchState] = {}  # from the record, until their pod's control takes them
        self._counts: dict[str, int] = {}
        self._last_report = float("-inf")
        self._last_save = float("-inf")
        self._dirty = True  # something the report shows changed (caps, pods)
        self._report_now = False  # a leader's limit moved: its followers wait for this report
        self._unsaved = True  # the record changed beyond the ledger
        self.snapshot = Snapshot(node=settings.node_name, t=clock.time(), mapper=mapper.name)

    # ------------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Discover GPUs, load the record, and restore every cap whose pod is gone (or all, if pods are unknown)."""
        self._gpus = [self._backend.info(i) for i in range(self._backend.device_count())]
        self._state = replace(self._store.load(), node=self.settings.node_name)
        pods = self._list_pods()
        live = {p.uid: p for p in pods or () if is_gpu_pod(p)}
        for cap in self._state.caps:
            if cap.pod_uid not in live:
                self._restore(cap.gpu, "start-up: pod gone")
        if self.settings.restore_unowned:
            capped_by_pod = {c.gpu for c in self._state.caps}
            for g in self._gpus:
                if g.index not in capped_by_pod and self._limit_mw(g.index) not in (None, g.default_limit_mw):
                    self._restore(g.index, "start-up: unowned cap")
        self._saved_searches = {uid: x for uid, x in self._state.searches if pods is None or uid in live}
        previous = dict(self._state.assignments)
        for uid, gpus in previous.items():
            if uid in live:  # energy used while the agent was down goes to a pod only if it still runs
                pod = live[uid]
                ref = PodRef(pod.namespace, pod.name, pod.uid, pod.llmjob)
                self._owners.update(dict.fromkeys(gpus, ref))
        now = self._clock.time()
        ended = dict(self._state.ended)
        for ref in self._state.ledger.pods():
            if ref.uid not in live and pods is not None:
                ended.setdefault(ref.uid, now)
            if ref.uid in ended:
                self._ended[ref] = (ended[ref.uid], PodControl(ref, PowerSpec(), (), state=ENDED))
        self._state = replace(self._state, ended=tuple(sorted(ended.items())))
        self._save()

    def shutdown(self) -> None:
        """SIGTERM / exit: every GPU back to its default limit, record saved, a last report written."""
        for cap in list(self._state.caps):
            self._restore(cap.gpu, "agent shutdown")
        for ctl in self._controls.values():
            ctl.state = "Default"
        self._controls_to_snapshot(self._clock.time())
        self._save()
        self._publish(force=True)
        self._backend.close()

    # ------------------------------------------------------------------------------------------------ one pass
    def tick(self) -> Snapshot:
        now = self._clock.time()
        pods = self._list_pods()
        if pods is not None:
            self._views = {p.uid: p for p in pods}
        live = {uid: p for uid, p in self._views.items() if is_gpu_pod(p)}
        if pods is not None:
            self._saved_searches = {uid: x for uid, x in self._saved_searches.items() if uid in live}
        self._meter(now)
        assignment = self._assign(live)
        if self._on_assign is not None:
            self._on_assign(assignment, live)
        for uid in [u for u in self._controls if u not in assignment]:
            self._end(uid, now)
        self._final_counts()
        for uid, gpus in assignment.items():
            self._control(live[uid], gpus, now)
        self._owners = {i: self._controls[uid].ref for uid, gpus in assignment.items() for i in gpus}
        for g in self._gpus:  # a recorded cap on a GPU no pod owns any more (pod moved, spec none)
            cap = self._state.cap_for(g.index)
            if cap is not None and g.index not in self._owners:
                self._restore(g.index, "GPU no longer owned")
        self._expire(now)
        assignments = tuple(sorted(assignment.items()))
        if assignments != self._state.assignments:
            self._state = replace(self._state, assignments=assignments)
            self._unsaved = True
        snap = self._controls_to_snapshot(now)
        if self._unsaved or now - self._last_save >= self.settings.report_interval_s:
            self._save()  # the ledger changes every pass: persist it at the report rate, not every pass
        self._publish()
        return snap

    def _list_pods(self) -> Sequence[NodePodView] | None:
        try:
            return self._pods.list_node_pods()
        except TransientError as exc:
            self._count("pod_list_errors")
            log.warning("cannot list pods of %s (%s); keeping the current caps", self.settings.node_name, exc)
            return None

    def _assign(self, live: Mapping[str, NodePodView]) -> Assignment:
        previous = {uid: g for uid, g in self._state.assignments if uid in live}
        try:
            return self._mapper.assign(list(live.values()), self._gpus, previous)
        except GpuBackendError as exc:
            self._count("mapping_errors")
            log.warning("GPU mapping unavailable (%s); keeping the previous assignment", exc)
            return previous

    def _meter(self, now: float) -> None:
        meters = dict(self._state.meters)
        deltas: dict[int, float] = {}
        for g in self._gpus:
            try:
                reading = Reading(
                    now, self._backend.power_usage_mw(g.index) / 1000, self._backend.total_energy_mj(g.index)
                )
            except GpuBackendError as exc:
                self._count("read_errors")
                log.warning("GPU %d unreadable: %s", g.index, exc)
                continue
            d = energy_delta(meters.get(g.index), reading, g.max_limit_mw / 1000, self.settings.max_gap_s)
            if d.method == "counter-reset":
                self._count("counter_resets")
            if d.gap:
                self._count("energy_gaps")
            deltas[g.index] = d.joules
            meters[g.index] = meter_state(meters.get(g.index), reading)
        ledger = self._state.ledger.add(deltas, dict(self._owners))
        self._state = replace(self._state, ledger=ledger, meters=tuple(sorted(meters.items())))

    # ------------------------------------------------------------------------------------------------ policies
    def _control(self, pod: NodePodView, gpus: tuple[int, ...], now: float) -> None:
        ref = PodRef(pod.namespace, pod.name, pod.uid, pod.llmjob)
        ctl = self._controls.get(pod.uid)
        if ctl is None or ctl.spec != pod.power or ctl.gpus != gpus:
            if ctl is not None and ctl.gpus != gpus:
                for i in set(ctl.gpus) - set(gpus):
                    self._restore(i, "GPU left the pod")
            ctl = PodControl(ref=ref, spec=pod.power, gpus=gpus) if ctl is None else ctl.renewed(ref, pod.power, gpus)
            self._controls[pod.uid] = ctl
            self._dirty = self._unsaved = True
        infos = [self._gpus[i] for i in gpus]
        following = ctl.spec.policy == "energyOptimal" and self._leaders is not None and is_follower(pod)
        if ctl.spec.policy == "energyOptimal":
            follow = self._follow(ctl, pod, infos[0].limits, now) if following else None
            target = self._optimal_step(ctl, pod, infos, now) if follow is None else follow
            targets = {g.index: g.limits.clamp(target) for g in infos}
        elif ctl.spec.policy in ("limit", "fraction"):
            targets = {g.index: static_target(ctl.spec, g.limits) for g in infos}
            ctl.state = "Capped"
        else:
            targets = {g.index: g.limits.default_w for g in infos}
            ctl.state = "Default"
        if ctl.spec.policy != "energyOptimal" or following:
            ctl.read_tokens(
                self._progress, pod, now, self.settings.progress_interval_s, self.settings.progress_max_backoff_s
            )
        for index, watts in targets.items():
            self._apply(index, round(watts * 1000), pod.uid)

    def _optimal_step(self, ctl: PodControl, pod: NodePodView, infos: list[GpuInfo], now: float) -> float:
        settings = self.settings.search
        if self._leaders is not None and is_leader(pod):  # measure only once the followers applied the limit too
            lag = self.settings.follow_interval_s + self.settings.interval_s
            settings = replace(settings, warmup_s=settings.warmup_s + lag)
        if ctl.search is None:
            ctl.search = self._resumed(pod.uid, start_search(infos[0].limits, ctl.spec.max_slowdown, now, settings))
        reading = self._progress.read(pod, ctl.gpus)
        if reading is not None:
            ctl.take(reading)
        if reading is None:
            ctl.state = "NoProgress"  # nothing to measure: hold the default, never cap blind
            return infos[0].limits.default_w
        energy = sum(self._state.ledger.gpu_pod_joules.get((i, ctl.ref), 0.0) for i in ctl.gpus)
        before = ctl.search
        ctl.search = advance(before, Sample(now, energy, reading.work, reading.updated_at))
        if replace(ctl.search, window=None) != replace(before, window=None):
            self._unsaved = True  # a probe ended or the phase moved: record it (the open window is not kept)
        self._report_now |= ctl.search.target_w != before.target_w and is_leader(pod)
        ctl.state = ctl.search.phase
        return ctl.search.target_w

    def _resumed(self, uid: str, fresh: SearchState) -> SearchState:
        """The search a previous agent recorded for this pod if it applies (the same GPU limits and bound); else
        `fresh`. A resumed search re-measures its limit after the warm-up."""
        saved = self._saved_searches.pop(uid, None)
        if saved is None or saved.limits != fresh.limits or saved.max_slowdown != fresh.max_slowdown:
            return fresh
        return replace(saved, settings=fresh.settings, window=None, changed_at=fresh.changed_at)

    def _follow(self, ctl: PodControl, pod: NodePodView, limits: GpuLimits, now: float) -> float:
        """A follower of a multi-node job applies its leader's limit (`leader.py`), read every follow_interval_s."""
        if self._leaders is not None and now >= ctl.leader_due:
            ctl.leader_due = now + self.settings.follow_interval_s
            local = ((self._views[u], c.search, self._limit_mw(c.gpus[0]) if c.gpus else None)
                     for u, c in self._controls.items() if u in self._views)  # fmt: skip
            try:
                ctl.leader = local_leader(pod, local, now) or self._leaders.leader_of(pod) or ctl.leader
            except TransientError as exc:
                self._count("leader_read_errors")
                log.warning("cannot read the leader of %s/%s (%s); keeping its limit", pod.namespace, pod.name, exc)
        target, ctl.state = follow_target(ctl.leader, limits, now, self.settings.leader_stale_s)
        return target

    def _apply(self, index: int, target_mw: int, pod_uid: str) -> None:
        g = self._gpus[index]
        if target_mw == g.default_limit_mw:
            if self._state.cap_for(index) is not None or self._limit_mw(index) not in (None, g.default_limit_mw):
                self._restore(index, "policy wants the default")
            return
        cap = AppliedCap(index, g.uuid, g.default_limit_mw, target_mw, pod_uid)
        if self._state.cap_for(index) != cap:  # write-ahead: record first, then cap
            others = tuple(c for c in self._state.caps if c.gpu != index)
            self._state = replace(self._state, caps=tuple(sorted((*others, cap), key=lambda c: c.gpu)))
            self._save()
        if self._limit_mw(index) != target_mw:
            try:
                self._backend.set_power_limit_mw(index, target_mw)
                self._count("caps_applied")
                self._dirty = True
            except GpuBackendError as exc:
                self._count("cap_errors")
                log.error("cannot cap GPU %d to %d mW: %s", index, target_mw, exc)

    def _restore(self, index: int, why: str) -> None:
        cap = self._state.cap_for(index)
        if index >= len(self._gpus):  # a record from another GPU layout (hardware changed): nothing to undo here
            if cap is not None:
                self._state = replace(self._state, caps=tuple(c for c in self._state.caps if c.gpu != index))
                self._save()
            return
        default_mw = self._gpus[index].default_limit_mw
        try:
            if self._limit_mw(index) != default_mw:
                self._backend.set_power_limit_mw(index, default_mw)
                self._count("restores")
                log.info("GPU %d back to its default limit %d mW (%s)", index, default_mw, why)
        except GpuBackendError as exc:  # keep the record: the next pass (or the next start) retries
            self._count("restore_errors")
            log.error("cannot restore GPU %d to %d mW (%s): %s", index, default_mw, why, exc)
            return
        if cap is not None:
            self._state = replace(self._state, caps=tuple(c for c in self._state.caps if c.gpu != index))
            self._save()
        self._dirty = True

    def _limit_mw(self, index: int) -> int | None:
        try:
            return self._backend.power_limit_mw(index)
        except GpuBackendError:
            self._count("read_errors")
            return None

    # ------------------------------------------------------------------------------------------------ endings
    def _end(self, uid: str, now: float) -> None:
        ctl = self._controls.pop(uid)
        for i in ctl.gpus:
            if self._state.cap_for(i) is not None and self._state.cap_for(i).pod_uid == uid:  # type: ignore[union-attr]
                self._restore(i, f"pod {ctl.ref.namespace}/{ctl.ref.name} ended")
        ctl.state = ENDED
        ctl.remaining_s = None  # its run is over: no run time left to estimate
        self._ended[ctl.ref] = (now, ctl)
        self._state = replace(self._state, ended=(*self._state.ended, (uid, now)))
        self._dirty = self._unsaved = True

    def _final_counts(self) -> None:
        """An ended pod's count from its termination message, where it is more than the last /metrics reading: the
        steps after that reading (a short job may end before its first). Also after an agent restart, which keeps
        ended pods' energy but not their readings, while the pod object is still there."""
        for _, ctl in self._ended.values():
            view = self._views.get(ctl.ref.uid)
            final = view.final_progress if view is not None else None
            if final is not None and ctl.take_final(final):
                self._dirty = True

    def _expire(self, now: float) -> None:
        old = {ref for ref, (t, _) in self._ended.items() if now - t >= self.settings.retention_s}
        if old:
            for ref in old:
                del self._ended[ref]
            uids = {r.uid for r in old}
            self._state = replace(
                self._state,
                ledger=self._state.ledger.without(old),
                ended=tuple(e for e in self._state.ended if e[0] not in uids),
            )
            self._dirty = self._unsaved = True

    # ------------------------------------------------------------------------------------------------ outputs
    def _controls_to_snapshot(self, now: float) -> Snapshot:
        limits = {g.index: (self._limit_mw(g.index) or 0) / 1000 for g in self._gpus}
        self.snapshot = build_snapshot(
            self.settings.node_name, now, self._mapper.name, self._gpus, limits, dict(self._state.meters),
            self._owners, self._controls.values(), self._ended.values(), self._state.ledger, self._counts,
        )  # fmt: skip
        return self.snapshot

    def _publish(self, force: bool = False) -> None:
        if self._sink is None:
            return
        now = self.snapshot.t
        due = now - self._last_report >= self.settings.report_interval_s
        early = self._dirty and (self._report_now or now - self._last_report >= self.settings.report_min_interval_s)
        if not (force or due or early):
            return
        try:
            self._sink.publish(build_node_report(self.snapshot))
            self._last_report = now
            self._dirty = self._report_now = False
        except TransientError as exc:
            self._count("report_errors")
            log.warning("node report not written (%s); retrying next pass", exc)

    def _save(self) -> None:
        searches = {**self._saved_searches, **{
            uid: replace(c.search, window=None) for uid, c in self._controls.items() if c.search is not None}}
        self._state = replace(self._state, searches=tuple(sorted(searches.items(), key=lambda kv: kv[0])))
        self._store.save(self._state)
        self._last_save = self._clock.time()
        self._unsaved = False

    def _count(self, name: str) -> None:
        self._counts[name] = self._counts.get(name, 0) + 1
