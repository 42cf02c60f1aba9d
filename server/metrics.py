"""Counters and gauges for ``/metrics`` (Prometheus text format), one registry per app."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
EVENT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """What the kiosk counts. Gauges read their value when scraped (``bind``)."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames = Counter(
            "teachable_frames_processed", "Frames embedded and classified", registry=r
        )
        self.latency = Histogram(
            "teachable_inference_latency_seconds",
            "Camera capture to prediction, per frame",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.examples = Counter(
            "teachable_examples_recorded", "Examples added (recorded or uploaded)", registry=r
        )
        self.trainings = Counter(
            "teachable_trainings", "Trainings finished", ["method"], registry=r
        )
        self.resets = Counter(
            "teachable_resets", "Start-overs and idle resets", ["reason"], registry=r
        )
        self.events = Histogram(
            "teachable_event_handler_seconds",
            "Socket.IO event handling, from the handler's start to its answer",
            ["event"],
            buckets=EVENT_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "teachable_errors", "Failed frames, commands and trainings", registry=r
        )
        self.fps = Gauge("teachable_fps", "Frames processed per second", registry=r)
        self.clients = Gauge("teachable_clients", "Browsers connected", registry=r)
        self.backend = Gauge(
            "teachable_backend_info", "Where the extractor runs (value 1)", ["backend"], registry=r
        )

    def bind(
        self, *, fps: Callable[[], float], clients: Callable[[], int], backend: Callable[[], str]
    ) -> None:
        """Reads the live values from the given callables at every scrape."""
        self.fps.set_function(fps)
        self.clients.set_function(clients)
        self._backend = backend

    def render(self) -> bytes:
        if hasattr(self, "_backend"):
            self.backend.clear()
            self.backend.labels(self._backend()).set(1)
        return generate_latest(self.registry)
