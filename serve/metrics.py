"""Prometheus metrics of one service instance (its own registry: no global state).

Labels are the route *template* (e.g. `/v2/models/{name}/infer`), the method and the
status: nothing a client sends ends up in a label, so the set of series is bounded.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["BATCH_BUCKETS", "CONTENT_TYPE", "LATENCY_BUCKETS", "QUEUE_BUCKETS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4"  # the text exposition format generate_latest writes
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
QUEUE_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("ablate_http_requests", "HTTP requests answered.",
                                ["endpoint", "method", "status"], registry=r)
        self.errors = Counter("ablate_http_errors", "HTTP requests answered with 4xx or 5xx.",
                              ["endpoint", "status"], registry=r)
        self.latency = Histogram("ablate_http_request_duration_seconds",
                                 "Time from request to response, by route.", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.items = Counter("ablate_inference_items", "Images inferred.", registry=r)
        self.batches = Counter("ablate_inference_batches", "Forward passes executed.",
                               registry=r)
        self.batch_size = Histogram("ablate_inference_batch_size", "Images per forward pass.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.queue_seconds = Histogram("ablate_inference_queue_seconds",
                                       "Time a request waited before its forward pass.",
                                       buckets=QUEUE_BUCKETS, registry=r)
        self.queue_depth = Gauge("ablate_inference_queue_depth", "Images waiting now.",
                                 registry=r)
        self.inference_seconds = Histogram("ablate_inference_batch_seconds",
                                           "Time of one forward pass.",
                                           buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("ablate_inference_rejected",
                                "Requests refused with 503 because the queue was full.",
                                registry=r)
        self.timeouts = Counter("ablate_inference_timeouts",
                                "Requests that gave up waiting for the model (503).",
                                registry=r)
        self.worker_restarts = Counter("ablate_batcher_worker_failures",
                                       "Times the batcher's worker broke (its requests got "
                                       "500) and was restarted or given up.", registry=r)
        self.decodes = Gauge("ablate_image_decodes", "Images being decoded now.", registry=r)
        self.decodes_rejected = Counter("ablate_image_decodes_rejected",
                                        "Image requests refused with 503 because every "
                                        "decode worker was busy.", registry=r)
        self.decode_timeouts = Counter("ablate_image_decode_timeouts",
                                       "Image decodes stopped at their deadline (413).",
                                       registry=r)
        self.held_body_bytes = Gauge("ablate_http_held_body_bytes",
                                     "Bytes of request bodies held now.", registry=r)
        self.bodies_rejected = Counter("ablate_http_bodies_rejected",
                                       "Requests refused with 503 because the bodies held "
                                       "already filled the budget.", registry=r)
        self.refusals = Counter("ablate_http_refusals",
                                "Answers and closes below the app (its requests are counted "
                                "under endpoint 'connection'), by reason.", ["reason"],
                                registry=r)
        self.model = Gauge("ablate_model_info", "The model served (value 1).",
                           ["name", "version", "study", "arm", "seed"], registry=r)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float | None
                        ) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        if seconds is not None:
            self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
