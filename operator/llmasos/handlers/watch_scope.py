"""What the operator's watch streams ask the API server for: server-side label and field selectors.

The node agents write their power reports (labelled ConfigMaps) into one namespace, the report namespace. kopf
serves every resource in the same namespaces, so in namespaced mode the report namespace is served too
(Settings.served_namespaces) and these selectors keep it to the reports there: LLMJobs, Jobs and Services in it are
never listed (`metadata.namespace!=<it>`), and ConfigMaps are listed only there and only with the report label. In
cluster-wide mode the ConfigMap watch is narrowed the same way: the API server sends only the reports of the report
namespace, not every ConfigMap of the cluster (RBAC still needs a ClusterRole for that watch: a cluster-scoped list
cannot be authorized by a Role; see docs/operations.md, RBAC).
"""

from __future__ import annotations

import kopf

from llmasos.api import constants as c
from llmasos.api.node_report import REPORT_LABEL
from llmasos.settings import Settings


def watch_selectors(settings: Settings) -> tuple[dict[tuple[str, str, str], str], dict[tuple[str, str, str], str]]:
    """(label selectors, field selectors) by (group, version, plural) for the operator's settings."""
    labels = {("", "v1", "configmaps"): f"{REPORT_LABEL}=true"}
    fields: dict[tuple[str, str, str], str] = {}
    report_ns = settings.report_namespace
    if report_ns:
        fields[("", "v1", "configmaps")] = f"metadata.namespace={report_ns}"
        if settings.namespaces and report_ns not in settings.namespaces:
            for key in ((c.GROUP, c.VERSION, c.PLURAL), ("batch", "v1", "jobs"), ("", "v1", "services")):
                fields[key] = f"metadata.namespace!={report_ns}"
    return labels, fields


def apply_watch_selectors(kopf_settings: kopf.OperatorSettings, settings: Settings) -> None:
    labels, fields = watch_selectors(settings)
    for key, selector in labels.items():
        kopf_settings.watching.label_selectors[key] = selector
    for key, selector in fields.items():
        kopf_settings.watching.field_selectors[key] = selector
