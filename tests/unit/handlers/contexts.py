"""A minimal OperatorContext for unit tests (no API server is contacted)."""

from __future__ import annotations

from llmasos.cluster.kube import Credentials, KubeClient
from llmasos.handlers.context import OperatorContext
from llmasos.metrics import OperatorMetrics
from llmasos.settings import Settings


def context() -> OperatorContext:
    return OperatorContext(settings=Settings(), kube=KubeClient(Credentials(server="https://127.0.0.1:1")),
                           metrics=OperatorMetrics())
