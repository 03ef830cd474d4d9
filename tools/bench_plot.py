"""``make bench``'s picture, beside its JSON: throughput over time, the latency distribution, where
the CPU went, and the notifications delivered. Drawn with matplotlib's Agg (no display)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Round:
    """One burst and steady measurement's series, times in seconds from its burst's start."""

    label: str
    outcomes: list[float] = field(default_factory=list)  # each call's outcome seen
    latencies_ms: list[float] = field(default_factory=list)  # the steady rate's calls
    # CPU readings: (time, CPU seconds so far by part; PostgreSQL's backends as "postgres:<pid>").
    cpu: list[tuple[float, dict[str, float]]] = field(default_factory=list)


def per_second(times: list[float]) -> tuple[list[int], list[int]]:
    """Events per whole second from the first: (seconds, counts)."""
    if not times:
        return [], []
    counts = [0] * (int(max(times)) + 1)
    for t in times:
        if t >= 0:
            counts[int(t)] += 1
    return list(range(len(counts))), counts


def cores_used(readings: list[tuple[float, dict[str, float]]]) -> tuple[list[float], dict[str, list[float]]]:
    """Cores each part used between consecutive readings (backends summed into their part)."""
    times: list[float] = []
    parts: dict[str, list[float]] = {}
    for (t0, r0), (t1, r1) in itertools.pairwise(readings):
        used: dict[str, float] = {}
        for key, seconds in r1.items():
            part = key.split(":")[0]
            used[part] = used.get(part, 0.0) + max(0.0, seconds - r0.get(key, 0.0)) / (t1 - t0)
        times.append(t1)
        for part in used.keys() | parts.keys():
            parts.setdefault(part, [0.0] * (len(times) - 1)).append(used.get(part, 0.0))
    return times, parts


def draw(path: Path, rounds: list[Round], deliveries: list[float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((burst, latency), (cpu, sent)) = plt.subplots(2, 2, figsize=(14, 9))
    fig.suptitle(title)
    for r in rounds:
        seconds, counts = per_second(r.outcomes)
        burst.step(seconds, counts, where="post", label=f"{r.label} ({len(r.outcomes):,} calls)")
    burst.set(title="Burst: calls reaching their outcome", xlabel="seconds from the burst's start")
    burst.set_ylabel("calls per second")
    burst.set_ylim(bottom=0)
    burst.legend()

    for r in rounds:
        if r.latencies_ms:
            ordered = sorted(r.latencies_ms)
            p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            label = f"{r.label}: p50 {p50:.0f} ms, p99 {p99:.0f} ms"
            latency.hist(ordered, bins=60, alpha=0.6, label=label)
            latency.axvline(p99, linestyle="--", linewidth=1)
    latency.set(title="Steady rate: call → outcome latency", xlabel="ms", ylabel="calls")
    latency.legend()

    if rounds and rounds[0].cpu:
        times, parts = cores_used(rounds[0].cpu)
        order = sorted(parts, key=lambda p: -sum(parts[p]))
        cpu.stackplot(times, [parts[p] for p in order], labels=order)
        cpu.legend(loc="upper right", fontsize="small")
    cpu.set(
        title=f"Where the CPU went ({rounds[0].label if rounds else ''})",
        xlabel="seconds from the burst's start",
        ylabel="cores",
    )

    seconds, counts = per_second(deliveries)
    sent.step(seconds, counts, where="post", label=f"{len(deliveries):,} answered")
    sent.set(title="Notifications: answered by the 100-200 ms sink", xlabel="seconds from planning")
    sent.set_ylabel("per second")
    sent.legend()

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
