"""Leadership from a kopf peering record: the same rule kopf applies to pause a replica's handlers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmasos.planning.lifecycle.leadership import is_leader

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def peer(priority: int, seen_ago_s: float, lifetime: int = 60) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime,
            "lastseen": (NOW - timedelta(seconds=seen_ago_s)).isoformat().replace("+00:00", "Z")}


def test_alone_or_highest_priority_leads() -> None:
    assert is_leader({}, 100, NOW)
    assert is_leader({"me": peer(100, 1)}, 100, NOW)
    assert is_leader({"me": peer(200, 1), "other": peer(100, 1)}, 200, NOW)


def test_a_live_higher_priority_peer_pauses() -> None:
    assert not is_leader({"me": peer(100, 1), "boss": peer(200, 5)}, 100, NOW)


def test_a_dead_higher_priority_peer_does_not() -> None:
    assert is_leader({"me": peer(100, 1), "boss": peer(200, 61)}, 100, NOW)
    assert is_leader({"me": peer(100, 1), "boss": peer(200, 11, lifetime=10)}, 100, NOW)


def test_two_live_peers_with_one_priority_both_pause() -> None:
    assert not is_leader({"a": peer(100, 1), "b": peer(100, 2)}, 100, NOW)
    assert is_leader({"a": peer(100, 1), "b": peer(100, 120)}, 100, NOW)


def test_an_unreadable_record_is_a_doubt_and_doubt_does_not_act() -> None:
    assert not is_leader({"me": peer(100, 1), "x": {"priority": "high", "lastseen": "now"}}, 100, NOW)
    assert not is_leader({"x": {"priority": 300, "lastseen": "garbage"}}, 100, NOW)  # alive until proven dead
