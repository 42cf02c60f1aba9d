"""Figures of the live server on loopback (a benchmark, not a test: it prints, asserts nothing).

    .venv/bin/python tests/bench_server.py [--seconds 20] [--rss-minutes 10] [--json]

Starts ``python -m server`` (gunicorn, CPU backend, ``folder:`` camera over the sign-language
digits) and connects python-socketio clients that acknowledge every frame, then measures:

* frames per second each client receives and the server processes, with 1 and with 10
  clients, and the frame-to-prediction latency (camera capture → prediction ready) p50/p95;
* the other clients' frame rate with and without one client that never acknowledges;
* throughput with the camera unthrottled (``folder:`` over digit 3, 1000 fps) and one client,
  against the extractor's bare ``invoke()`` rate measured in this process, alternating
  (``--rounds``);
* the server's resident memory after ``--rss-minutes`` with 10 clients;
* teaching two digits through the REST API (10 photos each) and predicting 20 others.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server import models  # noqa: E402
from server.hw.extractor import open_extractor, preprocess  # noqa: E402

from liveserver import Server, in_order_client  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
DIGITS = SHARED / "data" / "sign-language-digits"


class Viewer:
    """A client that counts frames and collects prediction latencies."""

    def __init__(self, url: str, ack: bool = True):
        self.sio = in_order_client(reconnection=False)
        self.frames = 0
        self.latencies = []
        self.counting = False
        self.release = threading.Event()

        def on_frame(data):
            if self.counting:
                self.frames += 1
            if not ack:
                self.release.wait(120)
            return True

        def on_prediction(p):
            if self.counting:
                self.latencies.append(p["latency_ms"])

        self.sio.on("frame", on_frame)
        self.sio.on("prediction", on_prediction)
        self.sio.connect(url, transports=["websocket"], wait_timeout=20)

    def close(self):
        self.release.set()
        try:
            self.sio.disconnect()
        except Exception as e:  # a dropped client is expected here
            print(f"  (disconnect: {e})", file=sys.stderr)


def worker_rss_mb(server: Server) -> float:
    """Resident memory of the gunicorn worker (the master's child), in MB."""
    pids = [p for p in server.pids() if p != server.proc.pid] or [server.proc.pid]
    total = 0.0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def server_fps(server: Server) -> float:
    return requests.get(server.url + "/healthz", timeout=5).json()["fps"]


def watch(server: Server, viewers, seconds: float) -> dict:
    for v in viewers:
        v.frames, v.latencies, v.counting = 0, [], True
    fps_samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1)
        fps_samples.append(server_fps(server))
    for v in viewers:
        v.counting = False
    lat = [x for v in viewers for x in v.latencies]
    return {
        "client_fps": [round(v.frames / seconds, 1) for v in viewers],
        "server_fps": round(statistics.median(fps_samples), 1),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat else None,
        "latency_p95_ms": round(float(np.percentile(lat, 95)), 1) if lat else None,
    }


def bare_invoke_fps(data_dir: Path) -> float:
    extractor = open_extractor("off", data_dir=data_dir, mirror=SHARED / "models")
    image = np.zeros((224, 224, 3), np.uint8)
    x = preprocess(image, extractor.size)[np.newaxis]
    index = extractor.interpreter.get_input_details()[0]["index"]
    times = []
    for _ in range(300):
        extractor.interpreter.set_tensor(index, x)
        start = time.perf_counter()
        extractor.interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times[20:])


def unthrottled(tmp: Path, camera: str, seconds: float, rounds: int) -> dict:
    """Server throughput with the camera at 1000 fps and one client, against bare invoke().

    Alternates the two (bare, server, bare, server, ..., bare) so that both see the same
    load; the ratio is of the medians.
    """
    bare, served, latencies = [bare_invoke_fps(tmp)], [], []
    for r in range(rounds):
        server = Server(tmp / f"unthrottled-{r}", camera, SHARED, "--camera-fps", "1000")
        try:
            viewer = Viewer(server.url)
            time.sleep(3)
            seen = watch(server, [viewer], seconds)
            viewer.close()
        finally:
            server.stop()
        served.append(seen["server_fps"])
        latencies.append(seen["latency_p95_ms"])
        bare.append(bare_invoke_fps(tmp))
    return {
        "bare_invoke_fps": round(statistics.median(bare), 1),
        "bare_rounds": [round(b, 1) for b in bare],
        "server_fps": round(statistics.median(served), 1),
        "server_rounds": served,
        "latency_p95_ms": statistics.median(latencies),
        "ratio_to_bare": round(statistics.median(served) / statistics.median(bare), 3),
    }


def rest_accuracy(server: Server) -> dict:
    ids = {}
    for digit in (1, 7):
        ids[digit] = requests.post(
            server.url + "/api/classes", json={"name": f"digit {digit}"}
        ).json()["id"]
        paths = sorted((DIGITS / str(digit)).iterdir())
        files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in paths[:10]]
        requests.post(
            f"{server.url}/api/classes/{ids[digit]}/examples", files=files, timeout=60
        ).raise_for_status()
    right = total = 0
    for digit in (1, 7):
        for p in sorted((DIGITS / str(digit)).iterdir())[100:110]:
            r = requests.post(
                server.url + "/api/predict",
                files={"image": (p.name, p.read_bytes(), "image/jpeg")},
                timeout=30,
            )
            right += r.json()["class_id"] == ids[digit]
            total += 1
    return {"taught_per_class": 10, "predicted": total, "accuracy": right / total}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rss-minutes", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3, help="unthrottled rounds (bare, server)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models.locate(models.EXTRACTOR_CPU, data_dir=tmp, mirror=SHARED / "models")
        camera = f"folder:{DIGITS}"

        server = Server(tmp / "a", camera, SHARED)
        try:
            report["rest_teaching"] = rest_accuracy(server)
            for n in (1, 10):
                viewers = [Viewer(server.url) for _ in range(n)]
                time.sleep(2)
                report[f"clients_{n}"] = watch(server, viewers, args.seconds)
                for v in viewers:
                    v.close()
            fast = [Viewer(server.url) for _ in range(5)]
            time.sleep(2)
            alone = watch(server, fast, args.seconds)
            slow = Viewer(server.url, ack=False)
            with_slow = watch(server, fast, min(args.seconds, 9.0))  # before it is dropped
            slow.close()
            for v in fast:
                v.close()
            a, b = statistics.mean(alone["client_fps"]), statistics.mean(with_slow["client_fps"])
            report["slow_client"] = {
                "fast_fps_alone": a,
                "fast_fps_with_slow": b,
                "drop_pct": round(100 * (1 - b / a), 1),
            }
        finally:
            server.stop()

        # the example camera: one digit's 205 photos, decoded once and then replayed,
        # so the figure is the server's steady state, not the first pass's JPEG decoding
        report["unthrottled"] = unthrottled(
            tmp, f"folder:{DIGITS / '3'}", args.seconds, args.rounds
        )
        report["bare_invoke_fps"] = report["unthrottled"]["bare_invoke_fps"]

        if args.rss_minutes > 0:
            server = Server(tmp / "c", camera, SHARED)
            try:
                viewers = [Viewer(server.url) for _ in range(10)]
                time.sleep(5)
                start_rss = worker_rss_mb(server)
                time.sleep(args.rss_minutes * 60)
                report["rss"] = {
                    "minutes": args.rss_minutes,
                    "clients": 10,
                    "start_mb": round(start_rss, 1),
                    "end_mb": round(worker_rss_mb(server), 1),
                    "server_fps_end": server_fps(server),
                }
                for v in viewers:
                    v.close()
            finally:
                server.stop()
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
