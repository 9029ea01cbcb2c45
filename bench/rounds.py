"""Repeated launches of each server, in alternating order, summarised by their median.

Why: on a shared two-core machine one launch per server swings a ratio by 15-20% between runs
(2026-12-03: the same MoE prompt ratio read 1.04x and 0.81x), more than most gaps being measured.
Each server is launched `rounds` times in the order ABBA..., so slow drift favours neither, and
every figure reported is the median over its launches; the launches themselves are kept.
"""
import statistics


def alternate(i, pair):
    """Alternates which server goes first, so drift on a noisy machine does not favour one."""
    return pair if i % 2 == 0 else list(reversed(pair))


def median_of(runs):
    """The element-wise median of same-shaped results (dicts, lists of equal length, numbers).
    Error lists are concatenated and error counts summed, so no launch's failure is hidden;
    anything else (text, lists of other lengths) comes from the first launch."""
    runs = [r for r in runs if r is not None]
    if not runs:
        return None
    first = runs[0]
    if isinstance(first, bool) or not all(type(r) is type(first) for r in runs):
        return first
    if isinstance(first, (int, float)):
        if all(r == first for r in runs):
            return first  # a parameter (clients, tokens), not a measurement
        median = statistics.median(runs)
        return round(median, 2) if isinstance(median, float) else median
    if isinstance(first, dict):
        out = {}
        for key in first:
            values = [r.get(key) for r in runs]
            if key == "errors" and isinstance(first[key], list):
                out[key] = [e for v in values for e in (v or [])]
            elif key == "errors" and isinstance(first[key], int):
                out[key] = sum(v or 0 for v in values)
            elif key == "first_error":
                out[key] = next((v for v in values if v), None)
            else:
                out[key] = median_of(values)
        return out
    if isinstance(first, list) and all(len(r) == len(first) for r in runs):
        return [median_of([r[i] for r in runs]) for i in range(len(first))]
    return first


def measured(rounds, order, pair, measure):
    """measure(kind, round) for each kind of `pair`, `rounds` times, the order alternating from
    `order` on; {kind: the median result, with every launch's under "launches"}."""
    launches = {kind: [] for kind in pair}
    for r in range(rounds):
        for kind in alternate(order + r, pair):
            launches[kind].append(measure(kind, r))
    return {kind: runs[0] if len(runs) == 1 else {**median_of(runs), "launches": runs}
            for kind, runs in launches.items()}
