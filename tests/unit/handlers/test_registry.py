"""The kopf registry: every index a reconcile pass reads is registered (a missing one fails every event pass)."""

from __future__ import annotations

from llmasos.handlers.indexes import register_indexes
from llmasos.handlers.llmjob import INDEX_NAMES


def test_every_index_the_passes_read_is_registered() -> None:
    import kopf

    registry = kopf.OperatorRegistry()
    register_indexes(registry)
    registered = {str(h.id) for h in registry._indexing.get_all_handlers()}
    assert set(INDEX_NAMES) == registered
