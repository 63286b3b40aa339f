"""The merge patch that turns the status a pass read into the status it rendered (pure).

A pass renders the whole new status from the one it read, and the handler writes it with a JSON merge patch
(RFC 7386) only when it changed. Two things make "changed" subtle. In a merge patch `null` deletes a field, so a
rendered `None` (a plan's `runningSince` between runs) is stored as no field at all; and a field the rendered
object no longer has (a progress's `estimatedEnd` once the job is done) is not deleted by leaving it out, only by
a `null`. Compared naively, both read as a change on every pass (a status write per resync, for nothing), and the
second also left stale fields in status. So the write is this patch: it deletes what `new` sets to None or leaves
out of an object it still has, and is None when the stored status already reads as `new`. Top-level fields that
`new` leaves out are kept, as before (a pass renders every field it owns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch from `old` (the stored status) to `new` (None values: absent); None when there is none."""
    return _diff(old, new, top=True) or None


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], *, top: bool) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if value is None:
            if key in old:
                patch[key] = None
        elif isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = _diff(before, value, top=False)
            if inner:
                patch[key] = inner
        elif (stored := pruned(value)) != before:
            patch[key] = stored
    if not top:
        patch.update({key: None for key in old if key not in new})
    return patch


def pruned(value: Any) -> Any:
    """`value` as the API server stores it after a merge patch: no None inside objects (lists kept whole)."""
    if isinstance(value, Mapping):
        return {k: pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value
