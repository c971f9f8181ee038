"""Prometheus metrics of one recognizer, in a registry of its own (several may run in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from homesec.contract import RecognitionResult, SnapshotMeta

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Recognition stages take milliseconds on a desktop and up to seconds on a Pi.
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, gallery_size: Callable[[], float]) -> None:
        self.registry = r = CollectorRegistry()
        self.snapshots = Counter(
            "homesec_snapshots_processed", "Snapshots recognized", ["camera"], registry=r
        )
        self.verdicts = Counter("homesec_verdicts", "Recognition verdicts", ["verdict"], registry=r)
        self.alerts = Counter("homesec_alerts", "Alerts published", ["camera"], registry=r)
        self.stage_seconds = Histogram(
            "homesec_stage_seconds",
            "Time per recognition stage",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.lag_seconds = Histogram(
            "homesec_snapshot_lag_seconds",
            "From a snapshot's capture to its result (transport and queueing included)",
            buckets=(*_STAGE_BUCKETS, 30.0, 60.0),
            registry=r,
        )
        self.errors = Counter("homesec_errors", "Requests refused or failed", ["kind"], registry=r)
        self.http_requests = Counter(
            "homesec_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "homesec_http_request_seconds", "HTTP request time", ["route"], buckets=_STAGE_BUCKETS, registry=r
        )
        gallery = Gauge("homesec_gallery_enrollments", "Enrollments in the gallery", registry=r)
        gallery.set_function(gallery_size)

    def recognized(self, meta: SnapshotMeta, result: RecognitionResult, alerted: bool) -> None:
        """Count one recognized snapshot; its lag runs from the capture to the result."""
        self.lag_seconds.observe(max(0.0, (result.ts - meta.ts).total_seconds()))
        self.snapshots.labels(result.camera).inc()
        self.verdicts.labels(result.verdict.value).inc()
        if alerted:
            self.alerts.labels(result.camera).inc()
        for stage, ms in result.timings_ms.items():
            self.stage_seconds.labels(stage).observe(ms / 1000)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
