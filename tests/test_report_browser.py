"""report.html in a real headless chromium: no console errors, no network, the plots render.

Chromium is driven over the DevTools protocol on loopback with a minimal websocket client
(below), so the test needs nothing beyond the standard library and Debian's chromium.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from stress.report import write_reports
from tests.test_report_fixtures import loss_result, memory_result, seed_results, timeout_result

CHROMIUM = Path("/usr/bin/chromium")
ACCENT = (0x25, 0x63, 0xEB)  # the plotted series' stroke colour in report.html's CSS
HOSTILE_TITLE = '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2">'

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("STRESS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing and STRESS_REQUIRE_BROWSER=1: apt-get install chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); "
                "set STRESS_REQUIRE_BROWSER=1 to make this a failure")


class DevTools:
    """Just enough of RFC 6455 and the DevTools protocol: masked text frames out, events in."""

    def __init__(self, ws_url: str, timeout_s: float = 30.0) -> None:
        url = urlparse(ws_url)
        assert url.hostname in ("127.0.0.1", "localhost"), ws_url
        self._sock = socket.create_connection((url.hostname, url.port or 80), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall((f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                           .encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self._sock.recv(4096)
            assert chunk, "DevTools closed the connection during the handshake"
            response += chunk
        head, _, self._buffer = response.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split()[1] == b"101", head
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._sock.close()

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self._sock.recv(max(65536, size - len(self._buffer)))
            assert chunk, "DevTools closed the connection"
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self._sock.sendall(header + mask + masked)

    def _message(self) -> dict[str, Any]:
        parts: list[bytes] = []
        while True:
            first, second = self._exactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._exactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._exactly(8))
            payload = self._exactly(size)
            opcode = first & 0x0F
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            assert opcode != 0x8, "DevTools closed the websocket"
            if opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
            if first & 0x80 and parts:
                message: dict[str, Any] = json.loads(b"".join(parts))
                return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._send_frame(0x1, json.dumps({"id": self._next_id, "method": method,
                                          "params": params}).encode())
        while True:
            message = self._message()
            if message.get("id") == self._next_id:
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def wait_for(self, method: str, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        for event in self.events:
            if event.get("method") == method:
                return event
        while time.monotonic() < deadline:
            message = self._message()
            self.events.append(message)
            if message.get("method") == method:
                return message
        raise AssertionError(f"no {method} within {timeout_s}s")

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")


@dataclasses.dataclass
class LoadedPage:
    devtools: DevTools
    path: Path
    screenshot: Path


def _start_chromium(profile: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop_chromium(process: subprocess.Popen[bytes]) -> None:
    """Its own process group (renderers included): terminate, then kill if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    # Renderers outlive a browser that exits first: clear the group either way.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _devtools_url(profile: Path, process: subprocess.Popen[bytes]) -> str:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"chromium exited with {process.returncode}"
        if port_file.exists() and port_file.read_text().strip():
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
        time.sleep(0.1)
    raise AssertionError("chromium did not open its DevTools port within 30s")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedPage]:
    _require_chromium()
    out = tmp_path_factory.mktemp("report")
    results = seed_results()
    results[0] = dataclasses.replace(
        results[0],
        artifacts={"log": "stress-test-short.log", "memray_flamegraph": "short-memray.html"},
        notes=("Under the memory profiler: 9100 tokens/sec, overhead x2.43",))
    (out / "stress-test-short.log").write_text("log\n", encoding="utf-8")
    hostile = loss_result()
    hostile = dataclasses.replace(
        hostile, scenario=dataclasses.replace(hostile.scenario, title=HOSTILE_TITLE),
        notes=(HOSTILE_TITLE,))
    results += [timeout_result(), memory_result(), hostile]
    write_reports(results, out, baseline=seed_results())

    profile = tmp_path_factory.mktemp("chromium-profile")
    process = _start_chromium(profile)
    try:
        devtools = DevTools(_devtools_url(profile, process))
        for domain in ("Page", "Runtime", "Log", "Network"):
            devtools.call(f"{domain}.enable")
        devtools.call("Emulation.setDeviceMetricsOverride", width=1200, height=900,
                      deviceScaleFactor=1, mobile=False)
        devtools.call("Page.navigate", url=(out / "report.html").as_uri())
        devtools.wait_for("Page.loadEventFired")
        size = devtools.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = devtools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": size["width"],
                                   "height": min(size["height"], 4000), "scale": 1})
        screenshot = out / "report.png"
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        if keep := os.environ.get("STRESS_SCREENSHOT_DIR"):
            shutil.copy(screenshot, Path(keep) / "report.png")
        yield LoadedPage(devtools=devtools, path=out / "report.html", screenshot=screenshot)
        devtools.close()
    finally:
        _stop_chromium(process)


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """Width, height, bytes per pixel and raw pixels of an 8-bit RGB(A) non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat = 8, b""
    width = height = channels = 0
    while offset < len(data):
        (length,) = struct.unpack("!I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack("!IIBBBBB", body)
            assert (depth, interlace) == (8, 0), "only 8-bit non-interlaced PNGs are decoded"
            assert colour in (2, 6), f"PNG colour type {colour}: expected RGB or RGBA"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    pixels, previous = bytearray(), bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        method, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if method == 1:
                line[i] = (line[i] + left) & 0xFF
            elif method == 2:
                line[i] = (line[i] + up) & 0xFF
            elif method == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif method == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        pixels += line
        previous = line
    return width, height, channels, bytes(pixels)


def accent_pixels(png: bytes, box: dict[str, float]) -> int:
    """Pixels close to the series colour inside a box of the screenshot."""
    width, height, channels, pixels = decode_png(png)
    count = 0
    for y in range(max(0, int(box["y"])), min(height, int(box["y"] + box["height"]))):
        for x in range(max(0, int(box["x"])), min(width, int(box["x"] + box["width"]))):
            r, g, b = pixels[(y * width + x) * channels:(y * width + x) * channels + 3]
            if abs(r - ACCENT[0]) + abs(g - ACCENT[1]) + abs(b - ACCENT[2]) < 60:
                count += 1
    return count


def page_problems(events: list[dict[str, Any]]) -> list[str]:
    """Script exceptions, console errors and warnings, and failed loads, from DevTools events."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            problems.append(str(params["exceptionDetails"].get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning"):
            problems.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            problems.append(str(params["entry"].get("text")))
        elif method == "Network.loadingFailed":
            problems.append(f"failed to load: {params.get('errorText')}")
    return problems


def requested_urls(events: list[dict[str, Any]]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events
            if e.get("method") == "Network.requestWillBeSent"]


def test_the_page_loads_with_no_console_error_and_no_network(page: LoadedPage) -> None:
    page.devtools.evaluate("1")  # drain events that arrived after the load
    assert page_problems(page.devtools.events) == []
    # The page itself and nothing else: no CDN, no font, no favicon.
    assert requested_urls(page.devtools.events) == [page.path.as_uri()]


def test_the_plots_render(page: LoadedPage) -> None:
    charts = page.devtools.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(svg => {"
        " const box = svg.getBoundingClientRect();"
        " return {kind: svg.classList[1], x: box.x, y: box.y + window.scrollY,"
        " width: box.width, height: box.height,"
        " points: svg.querySelector('polyline.series').points.length}; })")
    assert len(charts) == 2 * 8  # RSS and throughput for each of the eight scenarios
    assert {c["kind"] for c in charts} == {"rss", "throughput"}
    assert all(c["width"] > 300 and c["height"] > 100 and c["points"] > 10 for c in charts)
    png = page.screenshot.read_bytes()
    first_rss, first_rate = charts[0], charts[1]
    # The drawn lines are in the screenshot, not just in the DOM.
    assert accent_pixels(png, first_rss) > 200
    assert accent_pixels(png, first_rate) > 200


def test_hostile_text_stays_text(page: LoadedPage) -> None:
    assert page.devtools.evaluate("typeof window.pwned") == "undefined"
    assert page.devtools.evaluate("document.querySelectorAll('img').length") == 0
    assert HOSTILE_TITLE in page.devtools.evaluate("document.body.innerText")


def test_links_point_into_the_results_folder(page: LoadedPage) -> None:
    links = page.devtools.evaluate(
        "[...document.querySelectorAll('ul.artifacts a')].map(a => a.href)")
    folder = page.path.parent.as_uri() + "/"
    assert links == [folder + "stress-test-short.log", folder + "short-memray.html"]
    missing = page.devtools.evaluate(
        "[...document.querySelectorAll('ul.artifacts li')].map(li => li.innerText)")
    assert missing == ["Log: stress-test-short.log",
                       "Memory flamegraph (memray): short-memray.html (missing)"]


def test_the_checks_above_do_see_a_broken_page(page: LoadedPage) -> None:
    """Last in this file: it navigates the shared browser away from the report."""
    broken = page.path.parent / "broken.html"
    broken.write_text('<!DOCTYPE html><link rel="icon" href="data:,"><img src="missing.png">'
                      '<script>console.error("boom"); undefinedFunction();</script>',
                      encoding="utf-8")
    page.devtools.events.clear()
    page.devtools.call("Page.navigate", url=broken.as_uri())
    page.devtools.wait_for("Page.loadEventFired")
    page.devtools.evaluate("1")
    problems = page_problems(page.devtools.events)
    assert any("boom" in p for p in problems), problems
    assert any("Uncaught" in p for p in problems), problems
    assert any(p.startswith("failed to load") for p in problems), problems
    assert (page.path.parent / "missing.png").as_uri() in requested_urls(page.devtools.events)
