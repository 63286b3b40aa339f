"""The report page in a real browser: headless Chromium renders it, every request it makes is caught by a recording
proxy on 127.0.0.1, and the screenshot (kept as test-artifacts/report.png) must show the charts' colours. The page
`llmasos simulate` writes, drawn by the same SVG module, is checked the same way (test-artifacts/simulate.png).

Why a proxy and not only a grep: a grep sees `src=` attributes, not what CSS, SVG or a browser quirk might fetch. The
proxy sees every http(s) request the browser makes; Chromium's own service calls (updates, accounts) are known hosts
and are set aside by name. A tampered page with one remote image shows the detector works. Needs Debian `chromium`.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmasos.cli import main
from tests.integration.prom import REPO
from tests.unit.report.sample import external_references, sample_jobs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")]

# Hosts Chromium itself calls (component updater, network time, sign-in), never fetched by a page.
BROWSER_SERVICE_HOSTS = {"update.googleapis.com", "accounts.google.com", "clients1.google.com", "clients2.google.com",
                         "safebrowsing.googleapis.com", "optimizationguide-pa.googleapis.com",
                         "content-autofill.googleapis.com", "redirector.gvt1.com"}
WIDTH, HEIGHT = 1200, 2600


class RecordingProxy:
    """Accepts proxy connections and records each request line (GET http://..., CONNECT host:443)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(32)
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(4096).split(b"\r\n")[0].decode(errors="replace"))
                except OSError:
                    self.requests.append("(unreadable request)")

    def page_requests(self) -> list[str]:
        def host(line: str) -> str:
            target = line.split(" ")[1] if " " in line else line
            return target.split("://")[-1].split("/")[0].split(":")[0]

        return [r for r in self.requests if host(r) not in BROWSER_SERVICE_HOSTS]

    def close(self) -> None:
        self._server.close()


def screenshot(page: Path, png: Path, proxy: RecordingProxy, profile: Path) -> None:
    """A fresh profile per run (as on CI), so first-run behaviour is what is tested, every time."""
    assert CHROMIUM is not None
    cmd = [CHROMIUM, f"--user-data-dir={profile}", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
           "--disable-default-apps", "--disable-domain-reliability", "--force-device-scale-factor=1",
           f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
           f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={png}", page.resolve().as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert png.exists(), run.stderr[-2000:]
    time.sleep(1.0)  # let the proxy thread read connections still queued when the browser exited


def decode_png(data: bytes) -> tuple[int, int, list[bytes], int]:
    """(width, height, unfiltered rows, bytes per pixel) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            header = data[pos + 8:pos + 8 + length]
        elif kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert colour in (2, 6), colour
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((x + up) & 255 for x, up in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a, b, c = (line[i - bpp], prev[i], prev[i - bpp]) if i >= bpp else (0, prev[i], 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def count_colour(rows: list[bytes], bpp: int, rgb: tuple[int, int, int]) -> int:
    target = bytes(rgb)
    return sum(1 for row in rows for x in range(0, len(row), bpp) if row[x:x + 3] == target)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "llmjobs.json").write_text(json.dumps(sample_jobs()))
    assert main(["report", "--from-file", str(tmp / "llmjobs.json"), "--out", str(tmp / "out")]) == 0
    return tmp / "out"


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    p = RecordingProxy()
    yield p
    p.close()


def test_report_renders_offline_with_its_charts(
    report_dir: Path, proxy: RecordingProxy, tmp_path: Path
) -> None:
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    png = artifacts / "report.png"
    png.unlink(missing_ok=True)
    shutil.copy(report_dir / "report.html", artifacts / "report.html")
    page = (report_dir / "report.html").read_text()
    assert external_references(page) == []
    screenshot(report_dir / "report.html", png, proxy, tmp_path / "profile")
    assert proxy.page_requests() == [], f"the report fetched: {proxy.page_requests()} (all: {proxy.requests})"
    width, height, rows, bpp = decode_png(png.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    # The SVG bars in their palette colours: green (actual, savings), red (run-now), blue (per-day columns).
    assert count_colour(rows, bpp, (0x2E, 0x7D, 0x32)) > 2000
    assert count_colour(rows, bpp, (0xC6, 0x28, 0x28)) > 500
    assert count_colour(rows, bpp, (0x15, 0x65, 0xC0)) > 2000


def test_the_proxy_catches_a_page_that_fetches(report_dir: Path, proxy: RecordingProxy, tmp_path: Path) -> None:
    """Negative control: the same report without its CSP and with one remote image must be caught."""
    page = (report_dir / "report.html").read_text()
    tampered = page.replace('<meta http-equiv="Content-Security-Policy"', '<meta name="x"').replace(
        "<body>", '<body><img src="http://cdn.example.invalid/logo.png" alt="">', 1)
    (tmp_path / "tampered.html").write_text(tampered)
    assert external_references(tampered) == ["<img src=http://cdn.example.invalid/logo.png>"]
    screenshot(tmp_path / "tampered.html", tmp_path / "tampered.png", proxy, tmp_path / "profile")
    assert proxy.page_requests() == ["GET http://cdn.example.invalid/logo.png HTTP/1.1"]


def test_simulate_page_renders_offline_with_its_chart(proxy: RecordingProxy, tmp_path: Path) -> None:
    """`llmasos simulate` draws with the same SVG module and the report's CSP: it must render offline as well."""
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("id,submitted_at,duration,slack,interruptible\n"
                    "a,2021-06-01T08:00:00Z,6h,24h,false\nb,2021-06-01T20:00:00Z,3h,36h,true\n")
    assert main(["simulate", "--zone", "US-CAL-CISO", "--jobs", str(jobs), "--out", str(tmp_path / "sim")]) == 0
    page = tmp_path / "sim" / "simulate.html"
    assert external_references(page.read_text()) == []
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    png = artifacts / "simulate.png"
    png.unlink(missing_ok=True)
    screenshot(page, png, proxy, tmp_path / "profile")
    assert proxy.page_requests() == [], f"the page fetched: {proxy.page_requests()} (all: {proxy.requests})"
    _, _, rows, bpp = decode_png(png.read_bytes())
    # The lanes' bars in the palette: green (planned windows), red (running at submission); the intensity line blue.
    assert count_colour(rows, bpp, (0x2E, 0x7D, 0x32)) > 200
    assert count_colour(rows, bpp, (0xC6, 0x28, 0x28)) > 200
    assert count_colour(rows, bpp, (0x15, 0x65, 0xC0)) > 200
