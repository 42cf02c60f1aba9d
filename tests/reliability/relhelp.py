"""Helpers for the reliability suite: process figures, report, clients and raw sockets.

Every figure a test measures goes to one report (``$TEACHABLE_ARTIFACTS/reliability.json``,
else ``/tmp/teachable-artifacts/reliability.json``) and is printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # liveserver, beside conftest

from liveserver import Server, eventually, in_order_client  # noqa: E402,F401

FPS = 30
_REPORT: dict = {}


def write_report() -> None:
    folder = Path(os.environ.get("TEACHABLE_ARTIFACTS", "/tmp/teachable-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reliability.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(_REPORT)
    path.write_text(json.dumps(old, indent=2, default=str))


def start_server(tmp_path_factory, folder_camera, shared_dir, *extra):
    return Server(
        tmp_path_factory.mktemp("rel"), folder_camera, shared_dir, "--camera-fps", str(FPS), *extra
    )


def record(row: str, **figures) -> None:
    """Keeps (and prints) the figures one test measured."""
    _REPORT.setdefault(row, {}).update(figures)
    print(f"\n[reliability] {row}: {json.dumps(figures, default=str)}")


# -- the worker process -------------------------------------------------------------------


def worker_pid(server) -> int:
    """gunicorn's one worker: the master's child."""
    others = [p for p in server.pids() if p != server.proc.pid]
    assert len(others) == 1, f"expected one worker, found {others}"
    return others[0]


def memory_kb(pid: int) -> dict:
    """VmRSS and VmHWM (peak RSS) of ``pid``, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def health(server) -> dict:
    return requests.get(server.url + "/healthz", timeout=5).json()


def handler_buckets(server) -> dict:
    """``/metrics``' Socket.IO handler-time histogram: {event: {le: count}}."""
    text = requests.get(server.url + "/metrics", timeout=5).text
    buckets: dict = {}
    for match in re.finditer(
        r'^teachable_event_handler_seconds_bucket\{event="([^"]*)",le="([^"]+)"\} (\S+)$',
        text,
        re.MULTILINE,
    ):
        buckets.setdefault(match.group(1), {})[float(match.group(2))] = float(match.group(3))
    return buckets


def frames_processed(server) -> float:
    """``/metrics``' count of frames the pipeline embedded and classified."""
    text = requests.get(server.url + "/metrics", timeout=5).text
    match = re.search(r"^teachable_frames_processed_total (\S+)$", text, re.MULTILINE)
    assert match, "no teachable_frames_processed_total in /metrics"
    return float(match.group(1))


def handler_p99(before: dict, after: dict) -> tuple:
    """(events handled, the histogram bound under which 99 % of them finished, share ≤ 20 ms,
    {event: how many of it took longer than 20 ms})."""
    delta: dict = {}
    slow: dict = {}
    for event, counts in after.items():
        for le, n in counts.items():
            delta[le] = delta.get(le, 0.0) + n - before.get(event, {}).get(le, 0.0)
        over = counts[float("inf")] - counts[0.02]
        over -= before.get(event, {}).get(float("inf"), 0.0) - before.get(event, {}).get(0.02, 0.0)
        if over:
            slow[event] = int(over)
    delta = dict(sorted(delta.items()))
    total = delta.get(float("inf"), 0.0)
    if not total:
        return 0, None, None, slow
    p99 = next(le for le, n in delta.items() if n >= 0.99 * total)
    return int(total), p99, round(delta[0.02] / total, 4), slow


def clients_drop_to(server, n: int, timeout: float) -> float:
    """Seconds until ``/healthz`` reports at most ``n`` clients (fails after ``timeout``)."""
    start = time.monotonic()
    eventually(lambda: health(server)["clients"] <= n, timeout=timeout, what=f"clients <= {n}")
    return time.monotonic() - start


# -- clients ------------------------------------------------------------------------------


class Watcher:
    """A python-socketio client that acks every frame and notes when each one arrived."""

    def __init__(self, url, **connect):
        self.sio = in_order_client(reconnection=False)
        self.frames: list = []
        self.latencies: list = []
        self.states: list = []
        self.errors: list = []
        self.training: list = []
        self.sio.on("state", self.states.append)
        self.sio.on("error", self.errors.append)
        self.sio.on("training", self.training.append)
        self.sio.on("prediction", lambda p: self.latencies.append((time.monotonic(), p)))

        def on_frame(data):
            self.frames.append(time.monotonic())
            return True

        self.sio.on("frame", on_frame)
        self.sio.connect(url, transports=["websocket"], wait_timeout=10, **connect)

    def rate(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.frames) / (end - start)

    def gaps_ms(self, start: float, end: float) -> list:
        times = [t for t in self.frames if start <= t < end]
        return [(b - a) * 1000 for a, b in zip(times, times[1:])]

    def latency_ms(self, start: float, end: float) -> list:
        return [p.get("latency_ms") or 0.0 for t, p in self.latencies if start <= t < end]

    def close(self):
        with contextlib.suppress(Exception):  # already gone: nothing to close
            self.sio.disconnect()


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q / 100 * len(values)))], 1)


_BINARY_EVENT = re.compile(r"^45\d+-(/[^,]*,)?(\d+)\[")


class RawClient:
    """Socket.IO spoken by hand over a raw WebSocket (``websocket-client``).

    With ``read=True`` a thread answers pings and (``ack=True``) acknowledges frames, so the
    server has no reason of its own to drop the connection; ``closed_at`` is when it ended.
    """

    def __init__(self, server, *, handshake=True, read=True, ack=True, origin=None, header=None):
        import websocket

        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        options = {"timeout": 10, "header": header or []}
        if origin is None:
            options["suppress_origin"] = True
        else:
            options["origin"] = origin
        self.ws = websocket.create_connection(url, **options)
        self.closed_at = None
        self.received = 0
        self.probes = 0
        self.texts: list = []
        opened = self.ws.recv()
        assert opened.startswith("0"), opened
        if handshake:
            self.ws.send("40")
            for _ in range(10):  # the connect handler's ``state`` may come before the answer
                answer = self.ws.recv()
                if answer.startswith("40"):
                    break
            else:
                raise AssertionError(f"no connect answer: {answer[:200]}")
        self.ack = ack
        self._lock = threading.Lock()
        if read:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def send(self, data) -> bool:
        """Sends one WebSocket message (str: text, bytes: binary); False once closed."""
        import websocket

        try:
            with self._lock:
                if isinstance(data, bytes):
                    self.ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY)
                else:
                    self.ws.send(data)
            return True
        except (OSError, websocket.WebSocketException):
            self._closed()
            return False

    def _closed(self):
        if self.closed_at is None:
            self.closed_at = time.monotonic()

    def _read(self):
        deadline = time.monotonic() + 600  # bounded: no test runs that long
        self.ws.settimeout(1)
        import websocket

        while self.closed_at is None and time.monotonic() < deadline:
            try:
                opcode, data = self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except (OSError, websocket.WebSocketException):
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            self.received += 1
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            text = data.decode("utf-8", "replace")
            if len(self.texts) < 50:
                self.texts.append(text[:200])
            if text == "2":
                self.send("3")
            if text.startswith("44/probe,"):
                self.probes += 1
            match = _BINARY_EVENT.match(text)
            if match and self.ack and '"frame"' in text[:40]:
                self.send(f"43{match.group(2)}[true]")
        self._closed()

    def probe(self, timeout: float = 5.0) -> bool:
        """True once the server answered a namespace probe sent now, i.e. read all before it;
        False when the connection closed (or the answer took longer than ``timeout``)."""
        seen = self.probes
        if not self.send("40/probe,"):
            return False
        deadline = time.monotonic() + timeout
        while self.probes == seen and self.closed_at is None and time.monotonic() < deadline:
            time.sleep(0.002)
        return self.probes > seen

    def wait_closed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.closed_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.closed_at is not None

    def close(self):
        self._closed()
        with contextlib.suppress(Exception):  # already gone: nothing to close
            self.ws.close(timeout=1)


class DeflateSocket:
    """A WebSocket spoken over a plain socket, for what websocket-client cannot send: frames
    compressed with permessage-deflate (RFC 7692)."""

    def __init__(self, server):
        import base64
        import socket

        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        self.response = head.split(b"\r\n\r\n")[0].decode("latin-1")
        self.deflate = "permessage-deflate" in self.response.lower()

    def send_frame(self, payload: bytes, opcode: int = 1, compressed: bool = False) -> None:
        import struct

        first = 0x80 | (0x40 if compressed else 0) | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, n)
        mask = os.urandom(4)
        body = (
            bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if n < 4096
            else _mask(payload, mask)
        )
        self.sock.sendall(header + mask + body)

    def closed_within(self, timeout: float) -> bool:
        """Reads (and discards) until the server closes the connection or sends a close frame."""
        import socket

        deadline = time.monotonic() + timeout
        buffer = b""
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return True
            if not chunk:
                return True
            buffer += chunk
            while len(buffer) >= 2:  # walk the server's frames, looking for a close
                opcode, length, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
                if length == 126:
                    if len(buffer) < 4:
                        break
                    length, start = int.from_bytes(buffer[2:4], "big"), 4
                elif length == 127:
                    if len(buffer) < 10:
                        break
                    length, start = int.from_bytes(buffer[2:10], "big"), 10
                if len(buffer) < start + length:
                    break
                if opcode == 8:
                    return True
                buffer = buffer[start + length :]
        return False

    def close(self):
        self.sock.close()


def _mask(payload: bytes, mask: bytes) -> bytes:
    import numpy as np

    data = np.frombuffer(payload, dtype=np.uint8)
    key = np.resize(np.frombuffer(mask, dtype=np.uint8), len(data))
    return (data ^ key).tobytes()
