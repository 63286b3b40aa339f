"""Reading pods (Kubernetes objects, the pods file) and the worker's progress endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from llmasos.agent.pods import NodePod, PodsFile, node_pod_from_object, parse_power_annotation
from llmasos.agent.power_policy import PowerSpec
from llmasos.agent.progress import HttpProgressReader, ProgressReading, parse_progress
from llmasos.errors import SpecError, TransientError

WORKER_METRICS = """# HELP llmasos_worker_step Optimizer steps completed.
# TYPE llmasos_worker_step gauge
llmasos_worker_step{job="j"} 120.0
# HELP llmasos_worker_tokens_total Tokens processed (global batch).
# TYPE llmasos_worker_tokens_total counter
llmasos_worker_tokens_total{job="j"} 491520.0
"""


def k8s_pod(annotation: str | None) -> dict[str, object]:
    return {
        "metadata": {
            "name": "llm-w-0",
            "namespace": "team",
            "uid": "u-1",
            "labels": {"llmasos.io/llmjob": "llm"},
            "annotations": {"llmasos.io/power": annotation} if annotation is not None else {},
        },
        "spec": {
            "containers": [
                {
                    "name": "worker",
                    "resources": {"limits": {"nvidia.com/gpu": "4", "cpu": "8"}},
                    "env": [{"name": "LLMASOS_PROGRESS_PORT", "value": "9401"}],
                },
                {"name": "sidecar", "resources": {"limits": {"nvidia.com/gpu": 1}}},
            ]
        },
        "status": {"phase": "Running", "podIP": "10.1.2.3"},
    }


def test_node_pod_from_kubernetes_object() -> None:
    p = node_pod_from_object(k8s_pod('{"policy": "fraction", "fraction": 0.8}'))
    assert p == NodePod(
        "llm-w-0", "team", "u-1", "llm", 5, "Running", PowerSpec("fraction", fraction=0.8), "10.1.2.3", 9401
    )


def test_invalid_power_annotation_means_no_cap() -> None:
    assert node_pod_from_object(k8s_pod('{"policy": "fraction", "fraction": 7}')).power == PowerSpec()
    assert node_pod_from_object(k8s_pod("not json")).power == PowerSpec()
    with pytest.raises(SpecError):
        parse_power_annotation("[1, 2]")


def test_pods_file_forms_and_half_written_file(tmp_path: Path) -> None:
    path = tmp_path / "pods.json"
    assert PodsFile(path).list_node_pods() == []
    path.write_text(json.dumps([k8s_pod(None)]))
    assert [p.name for p in PodsFile(path).list_node_pods()] == ["llm-w-0"]
    path.write_text(json.dumps({"kind": "PodList", "items": [k8s_pod(None)]}))
    assert len(PodsFile(path).list_node_pods()) == 1
    path.write_text('{"items": [')
    with pytest.raises(TransientError):
        PodsFile(path).list_node_pods()


def test_parse_progress_prefers_tokens_and_reads_timestamps() -> None:
    assert parse_progress(WORKER_METRICS, ["llmasos_worker_tokens_total", "llmasos_worker_step"]) == ProgressReading(
        491520.0, None, 491520.0, 120.0
    )
    # Work measured in steps; the token counter still comes along (the operator's energy per token needs it).
    assert parse_progress(WORKER_METRICS, ["llmasos_worker_samples_total", "llmasos_worker_step"]) == ProgressReading(
        120.0, None, 491520.0, 120.0
    )
    stamped = WORKER_METRICS + "llmasos_worker_tokens_updated_timestamp_seconds 1234.5\n"
    assert parse_progress(stamped, ["llmasos_worker_tokens_total"]) == ProgressReading(491520.0, 1234.5, 491520.0,
                                                                                       120.0)
    planned = WORKER_METRICS + "llmasos_worker_planned_steps 500\nllmasos_worker_remaining_seconds 95.5\n"
    assert parse_progress(planned, ["llmasos_worker_tokens_total"]) == ProgressReading(491520.0, None, 491520.0,
                                                                                       120.0, 500.0, 95.5)
    steps_only = "llmasos_worker_step 7\n"
    assert parse_progress(steps_only, ["llmasos_worker_tokens_total", "llmasos_worker_step"]) == ProgressReading(
        7.0, step=7.0)
    assert parse_progress("", ["llmasos_worker_tokens_total"]) is None


@pytest.fixture
def worker() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = WORKER_METRICS.encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_http_progress_reader(worker: int) -> None:
    reader = HttpProgressReader(timeout_s=2.0)
    pod = NodePod("w", "ns", "u", pod_ip="127.0.0.1", progress_port=worker)
    assert reader.read(pod, (0,)) == ProgressReading(491520.0, None, 491520.0, 120.0)
    assert reader.read(NodePod("w", "ns", "u"), (0,)) is None  # no IP yet
    assert reader.read(NodePod("w", "ns", "u", pod_ip="127.0.0.1", progress_port=1), (0,)) is None  # refused
