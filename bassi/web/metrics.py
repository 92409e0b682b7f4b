"""`/metrics`: the store's and the service's counters in the Prometheus text format.

Store counters are read from `EventStore.stats()` at scrape time; commit batch sizes and
latencies are observed through the store's `commit_listeners`; session counts come from the
read model. Each app has its own registry, so several apps in one process do not collide.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bassi.manager import SessionManager

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_STATUSES = ("idle", "running", "awaiting_approval", "ended")


class Metrics:
    """The registry of one app and the instruments the web layer updates itself."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.registry = CollectorRegistry()
        self.commit_batch_size = Histogram(
            "bassi_commit_batch_size",
            "Events written by one group commit.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "bassi_commit_seconds",
            "Wall time of one group commit.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.streams = Gauge(
            "bassi_open_streams",
            "Open event streams, by kind.",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("websocket", "sse"):
            self.streams.labels(kind).set(0)
        self.retired_drops = 0
        """Drops not held by a live subscriber: those of closed ones, and the events a stream
        read from the log after it fell out of its session's live feed."""
        self.sessions_by_status: Counter[str] = Counter()
        self.registry.register(_ServiceCollector(self))

    def observe_commit(self, batch_size: int, seconds: float) -> None:
        """A store commit listener: one group commit of `batch_size` events took `seconds`."""
        if batch_size:
            self.commit_batch_size.observe(batch_size)
            self.commit_seconds.observe(seconds)

    async def render(self) -> bytes:
        """The Prometheus text, with the session counts refreshed from the read model."""
        summaries = await self.manager.list()
        self.sessions_by_status = Counter(s.status for s in summaries)
        return generate_latest(self.registry)


class _ServiceCollector(Collector):
    """Reads counters that live elsewhere (the store, the manager) when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        manager = self.metrics.manager
        stats = manager.store.stats()
        yield _counter("bassi_events_appended", "Events handed to the store.", stats.appended)
        yield _counter("bassi_events_committed", "Events committed to the log.", stats.committed)
        yield _counter("bassi_commit_batches", "Group commits.", stats.batches)
        yield _counter(
            "bassi_commit_failures",
            "Batches that failed past the retry limit.",
            stats.failed_batches,
        )
        yield _gauge("bassi_store_lag", "Events appended but not yet committed.", stats.queued)
        yield _gauge("bassi_store_healthy", "1 while the store can commit, else 0.", stats.healthy)
        yield _gauge("bassi_subscribers", "Live subscribers of the store.", len(stats.subscribers))
        drops = self.metrics.retired_drops + sum(s.drops for s in stats.subscribers)
        yield _counter(
            "bassi_subscriber_drops",
            "Live events skipped for slow drop-mode subscribers (each caught up from the log).",
            drops,
        )
        yield _gauge("bassi_active_runs", "Runs in progress.", manager.active_runs())
        sessions = GaugeMetricFamily("bassi_sessions", "Sessions, by status.", labels=["status"])
        counts = self.metrics.sessions_by_status
        for status in sorted({*_STATUSES, *counts}):
            sessions.add_metric([status], counts.get(status, 0))
        yield sessions


def _counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> Metric:
    return GaugeMetricFamily(name, documentation, value=value)
