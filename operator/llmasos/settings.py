"""Operator settings: one frozen, documented dataclass, loaded once at start-up from a YAML file and/or env.

Precedence: built-in defaults < settings file (`--settings PATH` or LLMASOS_SETTINGS) < environment variables
(LLMASOS_<FIELD_IN_UPPER_SNAKE_CASE>). Every field is documented in docs/operations.md and in the chart's values.
Invalid settings raise ConfigError at start-up naming the field, never during reconciliation.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from llmasos.api.durations import parse_duration
from llmasos.api.power import PowerSpec
from llmasos.errors import ConfigError, SpecError
from llmasos.planning.accounting.budget import Budget, parse_budgets


@dataclass(frozen=True)
class Settings:
    # Image for worker pods when an LLMJob sets no spec.image: `name[:tag][@sha256:<64 hex digits>]`; a digest pins
    # it (the chart's operator.settings.workerImageDigest appends one). Checked at start (image_reference_problem).
    worker_image: str = "ghcr.io/llmasos/worker:0.1.0"
    # Namespaces to watch (empty: all namespaces).
    namespaces: tuple[str, ...] = ()
    # Namespace where the node agents write their power reports (the chart: the agent's namespace). With `namespaces`
    # set it is served too, for the reports only (served_namespaces, handlers/watch_scope.py); empty: not added.
    report_namespace: str = ""
    # Power usage effectiveness used when an LLMJob sets no spec.accounting.pue.
    default_pue: float = 1.2
    # Seconds between periodic re-checks of every LLMJob (deadlines, TTLs, re-planning, jobs no pool could host).
    resync_seconds: float = 30.0
    # Port of the Prometheus /metrics endpoint (0 disables it).
    metrics_port: int = 8080
    # Port of the readiness endpoint /healthz (kopf's: ready to reconcile; 0 disables it).
    health_port: int = 8081
    # Port of the liveness endpoint /livez (the process and its event loop answer; 0 disables it). See health.py.
    liveness_port: int = 0
    # Address /metrics and /healthz listen on: loopback by default; the chart sets 0.0.0.0 (probes, Prometheus).
    bind_address: str = "127.0.0.1"
    # Leader election through kopf peering: the peering object's name; empty runs standalone (single replica).
    peering_name: str = ""
    # Peering priority; 0 picks a random one so that replicas never tie (kopf freezes on equal priorities).
    peering_priority: int = 0
    # Seconds a replica's peering record lives without renewal; a dead leader is replaced after about this long.
    peering_lifetime_seconds: int = 60
    # Directory on a volume where workers write checkpoints (passed as LLMASOS_CHECKPOINT_DIR); empty: none.
    checkpoint_dir: str = ""
    # Electricity Maps API base URL (the token comes from the LLMASOS_ELECTRICITYMAPS_TOKEN environment variable,
    # filled from a Secret by the chart; without a token the embedded trace source is used).
    electricitymaps_url: str = "https://api.electricitymap.org/v3"
    # Seconds an Electricity Maps answer is reused before asking again (a newer forecast is picked up after this).
    carbon_cache_seconds: float = 300.0
    # Carbon sources in fallback order (electricitymaps is skipped when no token is set).
    carbon_sources: tuple[str, ...] = ("electricitymaps", "trace", "static")
    # Trace source: trace time = real time + this offset ("-2190d", "0s"); empty picks whole years automatically.
    trace_offset: str = ""
    # Trace source: relative standard deviation of its forecast error 24 h ahead (0 = perfect forecasts).
    forecast_error: float = 0.10
    # GPU catalog overrides: {product: {relativeThroughput: x, powerWatts: y}} (settings file, or JSON in env).
    gpu_catalog: str = ""
    # Electricity Maps zone for node pools without an llmasos.io/carbon-zone label (empty: such pools get no plan).
    default_zone: str = ""
    # Power policy for LLMJobs that omit spec.power: none, energyOptimal, fraction:<0.1-1.0> or limit:<watts>.
    default_power_policy: str = "none"
    # Carbon offset price per tonne CO2e for status.carbon.offset (0: no cost shown) and its currency.
    carbon_price_per_tonne: float = 0.0
    carbon_price_currency: str = "EUR"
    # Monthly gCO2e budgets per namespace: {namespace: {monthlyGrams: N, policy: hold|reject}} (file, or JSON in env).
    carbon_budgets: str = ""
    # Refuse (phase Failed, reason InvalidSpec) to start an LLMJob whose volumes or node pools its namespace does not
    # allow (api/workload_policy.py): the operator's own check of the chart's ValidatingAdmissionPolicy.
    workload_policy: bool = True
    # Serve the Kueue AdmissionCheck `llmasos.io/carbon` (handlers/admission_check.py); needs Kueue's CRDs.
    kueue_admission_check: bool = False
    # Follow the Workloads of LLMJobs queued by Kueue (spec.queueName; handlers/queueing.py): a change of a Workload's
    # admission state starts its LLMJob's pass at once instead of at the next resync. Needs Kueue's CRDs and the
    # right to watch Workloads (the chart's kueue.llmJobs.enabled grants it and sets this).
    kueue_llm_jobs: bool = False
    # Maximum LLMJobs reconciled concurrently by one operator process.
    max_workers: int = 50
    # Maximum API requests in flight from one operator process (waiters are admitted by pass priority).
    api_concurrency: int = 32

    def __post_init__(self) -> None:
        problem = image_reference_problem(self.worker_image)
        if problem:
            raise ConfigError(f"worker_image {self.worker_image!r}: {problem}")
        if not 1.0 <= self.default_pue <= 3.0:
            raise ConfigError(f"default_pue must be between 1.0 and 3.0, got {self.default_pue}")
        if self.resync_seconds < 1:
            raise ConfigError("resync_seconds must be >= 1")
        for name in ("metrics_port", "health_port", "liveness_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be a port number, got {port}")
        try:
            ipaddress.ip_address(self.bind_address)
        except ValueError:
            raise ConfigError(f"bind_address must be an IP address, got {self.bind_address!r}") from None
        if self.max_workers < 1:
            raise ConfigError("max_workers must be >= 1")
        if self.api_concurrency < 1:
            raise ConfigError("api_concurrency must be >= 1")
        unknown = set(self.carbon_sources) - {"electricitymaps", "trace", "static"}
        if unknown or not self.carbon_sources:
            raise ConfigError(
                f"carbon_sources must list electricitymaps, trace and/or static, got {self.carbon_sources}"
            )
        if self.forecast_error < 0:
            raise ConfigError(f"forecast_error must be >= 0, got {self.forecast_error}")
        if self.trace_offset:
            try:
                parse_duration(self.trace_offset.lstrip("+-"))
            except ValueError as exc:
                raise ConfigError(f"trace_offset: {exc}") from None
        try:
            self.catalog_overrides()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"gpu_catalog: {exc}") from None
        try:
            self.default_power()
        except (ValueError, TypeError, SpecError) as exc:
            raise ConfigError(f"default_power_policy: {exc}") from None
        try:
            self.budgets()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"carbon_budgets: {exc}") from None

    def served_namespaces(self) -> tuple[str, ...]:
        """The namespaces kopf serves: `namespaces`, plus the report namespace in namespaced mode (empty: all)."""
        if self.namespaces and self.report_namespace and self.report_namespace not in self.namespaces:
            return (*self.namespaces, self.report_namespace)
        return self.namespaces

    def default_power(self) -> PowerSpec:
        """The PowerSpec for jobs without spec.power: "none", "energyOptimal", "fraction:0.8" or "limit:300"."""
        policy, _, value = self.default_power_policy.partition(":")
        raw: dict[str, object] = {"policy": policy}
        if policy == "fraction":
            raw["fraction"] = float(value)
        elif policy == "limit":
            raw["limitWatts"] = int(value)
        elif value:
            raise ValueError(f"{policy} takes no value")
        return PowerSpec.from_mapping(raw)

    def budgets(self) -> dict[str, Budget]:
        if not self.carbon_budgets:
            return {}
        raw = json.loads(self.carbon_budgets)
        if not isinstance(raw, dict):
            raise ValueError("must map namespaces to {monthlyGrams, policy}")
        return parse_budgets(raw)

    def trace_offset_delta(self) -> timedelta | None:
        if not self.trace_offset:
            return None
        sign = -1 if self.trace_offset.startswith("-") else 1
        return sign * parse_duration(self.trace_offset.lstrip("+-"))

    def catalog_overrides(self) -> dict[str, dict[str, float]]:
        if not self.gpu_catalog:
            return {}
        raw = json.loads(self.gpu_catalog)
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ValueError("must map GPU products to {relativeThroughput, powerWatts}")
        return {str(k): {str(f): float(x) for f, x in v.items()} for k, v in raw.items()}


# The grammar of an image reference (github.com/distribution/reference): a registry host (with an optional port),
# lower-case path components, an optional tag and an optional digest. Only sha256 digests are accepted: the ones
# registries and `crane digest` give, and a digest cut short (a common copy-paste slip) is then caught at start
# instead of by every kubelet as ErrImagePull.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


def image_reference_problem(ref: str) -> str | None:
    """Why `ref` is not an image reference `name[:tag][@sha256:<64 hex digits>]`, or None when it is one."""
    if not ref:
        return "must not be empty"
    rest, at, digest = ref.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        return f"the digest after '@' must be sha256: and 64 lower-case hex digits, got {digest!r}"
    name, tag = rest, ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:  # a colon after the last slash starts the tag (before it, it is a registry port)
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            return f"the tag must be letters, digits, '_', '.' or '-' (at most 128), got {tag!r}"
    if len(name) > 255 or not _NAME.fullmatch(name):
        return ("the name must be [registry[:port]/]path with lower-case path components, "
                f"as in ghcr.io/llmasos/worker, got {name!r}")
    return None


def electricitymaps_token(env: Mapping[str, str] | None = None) -> str | None:
    """The API token, never from the settings file, never logged: read from the file named by
    LLMASOS_ELECTRICITYMAPS_TOKEN_FILE (the chart mounts the Secret there, so the token is not in the process
    environment), else from LLMASOS_ELECTRICITYMAPS_TOKEN. Read once at start: a rotated token needs a restart."""
    env = os.environ if env is None else env
    path = env.get("LLMASOS_ELECTRICITYMAPS_TOKEN_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise ConfigError(f"cannot read the Electricity Maps token file {path}: {exc.strerror}") from None
    return env.get("LLMASOS_ELECTRICITYMAPS_TOKEN") or None


def _coerce(name: str, raw: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(raw, str):
                return raw.strip().lower() in ("1", "true", "yes", "on")
            return bool(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            value = float(raw)
            if not math.isfinite(value):  # NaN compares False with every bound, so it would pass any check
                raise ValueError("not a finite number")
            return value
        if name in ("gpu_catalog", "carbon_budgets") and isinstance(raw, dict):
            return json.dumps(raw, sort_keys=True)
        if isinstance(default, tuple):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(x).strip() for x in items if str(x).strip())
        return str(raw)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"setting {name}: cannot use {raw!r}") from None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


# The Helm value that sets each setting through its LLMASOS_* variable (charts/llmasos/templates/operator/), so an
# error names what the user wrote.
CHART_KEYS = {
    "worker_image": "operator.settings.workerImage", "resync_seconds": "operator.settings.resyncSeconds",
    "checkpoint_dir": "operator.settings.checkpointDir", "max_workers": "operator.settings.maxWorkers",
    "api_concurrency": "operator.settings.apiConcurrency", "metrics_port": "operator.metricsPort",
    "health_port": "operator.healthPort", "liveness_port": "operator.livenessPort",
    "bind_address": "operator.bindAddress", "default_pue": "carbon.pue", "namespaces": "operator.watchNamespaces",
    "peering_lifetime_seconds": "operator.leaderElection.lifetimeSeconds", "carbon_sources": "carbon.sources",
    "carbon_cache_seconds": "carbon.cacheSeconds", "trace_offset": "carbon.trace.offset",
    "forecast_error": "carbon.trace.forecastError", "default_power_policy": "power.defaultPolicy",
    "kueue_admission_check": "kueue.admissionCheck.enabled", "kueue_llm_jobs": "kueue.llmJobs.enabled",
}


def _user_name(name: str, origins: Mapping[str, str]) -> str:
    """How the user wrote setting `name`: the settings-file key, or the variable (and the Helm value behind it)."""
    if name in origins:
        return origins[name]
    chart = f", Helm value {CHART_KEYS[name]}" if name in CHART_KEYS else ""
    return f"{_camel(name)} (settings file; env LLMASOS_{name.upper()}{chart})"


def _in_user_words(message: str, origins: Mapping[str, str], names: Iterable[str]) -> str:
    """Replace the first Python field name in `message` by the key the user wrote."""
    for name in sorted(names, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w])")
        found = pattern.search(message)
        if found:
            return message[:found.start()] + _user_name(name, origins) + message[found.end():]
    return message


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then the YAML file (keys in camelCase or snake_case), then LLMASOS_* environment variables.

    Errors name the setting as the user wrote it: the file's key, or the environment variable and its Helm value."""
    env = os.environ if env is None else env
    path = path or env.get("LLMASOS_SETTINGS") or None
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    known = {f.name: f for f in fields(Settings)}
    if path:
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"settings file {path} must be a mapping")
        by_camel = {_camel(n): n for n in known}
        for key, raw in doc.items():
            name = by_camel.get(key, key)
            if name not in known:
                raise ConfigError(f"settings file {path}: unknown setting {key!r}")
            values[name] = raw
            origins[name] = f"{key} (settings file {path})"
    for name in known:
        env_key = f"LLMASOS_{name.upper()}"
        if env_key in env:
            values[name] = env[env_key]
            chart = f", Helm value {CHART_KEYS[name]}" if name in CHART_KEYS else ""
            origins[name] = f"{env_key} (environment{chart})"
    try:
        coerced = {}
        for name, raw in values.items():
            default = known[name].default
            if default is MISSING:  # pragma: no cover - every field has a default
                default = ""
            coerced[name] = _coerce(name, raw, default)
        return Settings(**coerced)
    except ConfigError as exc:
        raise ConfigError(_in_user_words(str(exc), origins, known)) from None
