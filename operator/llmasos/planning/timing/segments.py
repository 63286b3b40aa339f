"""Where to run an interruptible job: the cleanest set of intervals adding up to its duration.

With intensity piecewise constant and power constant, emissions are linear in time chosen, so the optimum without
limits is greedy: take the cleanest pieces first (a fractional knapsack). Real jobs pay for every suspend/resume
(checkpoint, restart, warm-up), so segments can be limited in number and length; the limits are enforced by
repeatedly closing the gap whose closure costs least and trimming the dirtiest edges to keep the total exact. The
caller compares the result with the best contiguous window and keeps the cheaper one, so splitting never loses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from llmasos.planning.timing.timeline import Timeline

EPS = 1e-6
SHORTLIST = 3


@dataclass(frozen=True, slots=True)
class Span:
    """[start, end) in seconds from the timeline origin."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def cost(timeline: Timeline, spans: list[Span]) -> float:
    return sum(timeline.integral(s.start, s.end) for s in spans)


def greedy_split(timeline: Timeline, lo: float, hi: float, duration: float) -> list[Span]:
    """The cleanest `duration` seconds inside [lo, hi), as few spans as ties allow; [] when it does not fit."""
    if duration <= EPS or hi - lo < duration - EPS:
        return []
    cuts = [lo, *timeline.breakpoints(lo, hi), hi]
    cuts = sorted(set(cuts))
    pieces = [(timeline.value_at((a + b) / 2), a, b) for a, b in itertools.pairwise(cuts) if b - a > EPS]
    chosen: list[Span] = []
    remaining = duration
    for _value, a, b in sorted(pieces):
        if remaining <= EPS:
            break
        take = min(b - a, remaining)
        if take < b - a - EPS:
            # A partial piece: hug a chosen neighbour so the split stays in few segments.
            touches_right = any(abs(s.start - b) < EPS for s in chosen)
            touches_left = any(abs(s.end - a) < EPS for s in chosen)
            span = Span(b - take, b) if touches_right and not touches_left else Span(a, a + take)
        else:
            span = Span(a, b)
        chosen.append(span)
        remaining -= take
    return merge(chosen)


def merge(spans: list[Span]) -> list[Span]:
    """Sort and join spans that touch."""
    out: list[Span] = []
    for s in sorted(spans, key=lambda x: x.start):
        if s.length <= EPS:
            continue
        if out and s.start <= out[-1].end + EPS:
            out[-1] = Span(out[-1].start, max(out[-1].end, s.end))
        else:
            out.append(s)
    return out


def enforce_limits(timeline: Timeline, spans: list[Span], min_segment: float, max_segments: int | None) -> list[Span]:
    """Close gaps until there are at most `max_segments` spans and none shorter than `min_segment` (if >1 span)."""
    spans = merge(spans)

    def violates(current: list[Span]) -> bool:
        if len(current) <= 1:
            return False
        if max_segments is not None and len(current) > max_segments:
            return True
        return any(s.length < min_segment - EPS for s in current)

    while violates(spans):
        too_many = max_segments is not None and len(spans) > max_segments
        gaps = [
            (timeline.integral(spans[i].end, spans[i + 1].start), i)
            for i in range(len(spans) - 1)
            if too_many or spans[i].length < min_segment - EPS or spans[i + 1].length < min_segment - EPS
        ]
        # Fully evaluate only the few cheapest gaps to fill: bounded work per step even with hundreds of spans.
        options = [_close_gap(timeline, spans, i) for _, i in sorted(gaps)[:SHORTLIST]]
        spans = min(options, key=lambda option: cost(timeline, option))
    return spans


def _close_gap(timeline: Timeline, spans: list[Span], i: int) -> list[Span]:
    """Join spans i and i+1 across their gap, then trim as much time from the dirtiest outer edges."""
    excess = spans[i + 1].start - spans[i].end
    out = [*spans[:i], Span(spans[i].start, spans[i + 1].end), *spans[i + 2 :]]
    while excess > EPS and out:
        best: tuple[float, int, bool] | None = None  # (intensity, index, trim_left)
        for j, s in enumerate(out):
            for left in (True, False):
                probe = s.start + EPS if left else s.end - EPS
                value = timeline.value_at(probe)
                if best is None or value > best[0] + EPS:
                    best = (value, j, left)
        assert best is not None
        _value, j, left = best
        s = out[j]
        if left:
            inner = [b for b in timeline.breakpoints(s.start + EPS, s.end) if b > s.start + EPS]
            edge = min([*inner, s.end])
            cut = min(excess, edge - s.start)
            out[j] = Span(s.start + cut, s.end)
        else:
            inner = [b for b in timeline.breakpoints(s.start, s.end - EPS) if b < s.end - EPS]
            edge = max([s.start, *inner])
            cut = min(excess, s.end - edge)
            out[j] = Span(s.start, s.end - cut)
        excess -= cut
        out = [x for x in out if x.length > EPS]
    return out
