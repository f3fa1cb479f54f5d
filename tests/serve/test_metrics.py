"""GET /metrics: Prometheus text with request, latency, error and batching figures."""

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.serve.conftest import make_client

MARK = "Qm7MARKq"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_what_happened(model_path: Path) -> None:
    infer = "/v2/models/{model}/infer"
    with make_client(model_path) as c:
        body = {"inputs": [{"name": "input", "shape": [3, 784], "datatype": "UINT8",
                            "data": [0] * (3 * 784)}]}
        for _ in range(4):
            assert c.post("/v2/models/mnist/infer", json=body).status_code == 200
        assert c.post("/v2/models/mnist/infer", content=b"{" + MARK.encode()).status_code == 400
        assert c.post(f"/v2/models/{MARK}/infer", json=body).status_code == 404
        assert c.get(f"/{MARK}/nowhere").status_code == 404
        assert c.post("/v1/predict", json={"pixels": [0] * 784}).status_code == 200
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert MARK not in r.text  # labels are route templates, never what the client sent
    s = samples(r.text)
    req = "ablate_http_requests_total"
    assert s[(req, (("endpoint", infer), ("method", "POST"), ("status", "200")))] == 4
    assert s[(req, (("endpoint", infer), ("method", "POST"), ("status", "400")))] == 1
    assert s[(req, (("endpoint", infer), ("method", "POST"), ("status", "404")))] == 1
    assert s[("ablate_http_errors_total", (("endpoint", infer), ("status", "400")))] == 1
    assert s[(req, (("endpoint", "unmatched"), ("method", "GET"), ("status", "404")))] == 1
    assert s[("ablate_http_request_duration_seconds_count", (("endpoint", infer),))] == 6
    # 4 requests x 3 images + 1 predict; one forward pass per request (sequential client).
    assert s[("ablate_inference_items_total", ())] == 13
    assert s[("ablate_inference_batches_total", ())] == 5
    assert s[("ablate_inference_batch_size_count", ())] == 5
    assert s[("ablate_inference_batch_size_sum", ())] == 13
    assert s[("ablate_inference_batch_size_bucket", (("le", "4.0"),))] == 5
    assert s[("ablate_inference_queue_seconds_count", ())] == 5
    assert s[("ablate_inference_queue_depth", ())] == 0
    assert s[("ablate_inference_rejected_total", ())] == 0
    assert any(name == "ablate_model_info" and dict(labels)["name"] == "mnist"
               for name, labels in s)
