"""A real HTTP server on 127.0.0.1 that plays Electricity Maps: scripted replies per path, every request recorded.

Tests talk to it through the real httpx client and the real network stack, so timeouts, connection handling,
headers and query strings are exercised for real; only the answers are scripted (including malformed ones).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from llmasos.api.clock import format_instant

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def forecast_body(zone: str, base: datetime, step: timedelta, values: list[int], issued: datetime,
                  tail: int = 0, tail_value: int = 0) -> dict[str, Any]:
    """Electricity Maps' forecast shape: one point per `step` from `base` (`values`, then `tail` points of
    `tail_value`), issued at `issued`."""
    series = [*values, *[tail_value] * tail]
    points = [{"carbonIntensity": v, "datetime": format_instant(base + i * step)} for i, v in enumerate(series)]
    return {"zone": zone, "forecast": points, "updatedAt": format_instant(issued)}


@dataclass
class Reply:
    """One scripted answer; `body` is JSON-encoded unless it is already bytes."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeElectricityMaps:
    """`queue(path, *replies)` scripts a path (the last reply repeats); `requests` lists what arrived."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with owner._lock:
                    owner.requests.append(
                        Recorded(parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()})
                    )
                    replies = owner.routes.get(parts.path)
                    reply = (
                        (replies.pop(0) if len(replies) > 1 else replies[0])
                        if replies
                        else Reply({"error": "not found"}, 404)
                    )
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v3"

    def queue(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self.routes[f"/v3/{path}"] = list(replies)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == f"/v3/{path}")

    def __enter__(self) -> FakeElectricityMaps:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
