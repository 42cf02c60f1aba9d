"""Row: the Edge TPU missing or lost — the server carries on on the CPU and says so.

A fake Edge TPU (``faulty_server.py``: the real CPU model behind a fake delegate) fails to
load at start, or, mid-run, aborts the process (as libedgetpu does on a USB error), is killed,
hangs, or fails every call. Each time the server must end up serving on the CPU with
everything taught still there, and tell its clients.
"""

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import requests
from relhelp import Server, eventually, in_order_client, record, worker_pid

pytestmark = pytest.mark.reliability

HERE = Path(__file__).resolve().parent
DETECT_LIMIT = 10.0  # s: a hang is detected within this
START_LIMIT = 10.0  # s: start on the CPU within this


def faulty_server(tmp_path, digits_dir, shared_dir, **faults):
    folder = tmp_path / "faults"
    folder.mkdir()
    for name, mode in faults.items():
        (folder / name).write_text(mode)
    server = Server(
        tmp_path / "data",
        f"folder:{digits_dir / '3'}",
        shared_dir,
        "--tpu",
        "auto",
        command=[sys.executable, str(HERE / "faulty_server.py"), "--faults", str(folder)],
    )
    server.faults = folder
    return server


def healthz(server) -> dict:
    try:
        return requests.get(server.url + "/healthz", timeout=2).json()
    except (requests.RequestException, ValueError):
        return {}  # between two workers


def state(server) -> dict:
    return requests.get(server.url + "/api/state", timeout=5).json()


def teach(server, digits_dir) -> dict:
    """Two classes with three uploaded photos each; returns what /api/state says."""
    origin = {"Origin": server.url}
    for digit in (1, 7):
        made = requests.post(
            server.url + "/api/classes", json={"name": f"digit {digit}"}, headers=origin, timeout=10
        )
        assert made.status_code == 201, made.text
        paths = sorted((digits_dir / str(digit)).iterdir())[:3]
        files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
        added = requests.post(
            f"{server.url}/api/classes/{made.json()['id']}/examples",
            files=files,
            headers=origin,
            timeout=30,
        )
        assert added.json() == {"added": 3}, added.text
    return taught(server)


def taught(server) -> list:
    return [(c["id"], c["name"], c["examples"]) for c in state(server)["classes"]]


def cpu_again(server, old_pid: int, timeout: float = 30.0) -> float:
    """Seconds until a new worker serves on the CPU with status ok."""
    start = time.monotonic()

    def ready():
        h = healthz(server)
        pids = [p for p in server.pids() if p != server.proc.pid]
        return h.get("status") == "ok" and h.get("backend") == "cpu" and old_pid not in pids

    eventually(ready, timeout=timeout, what="a new worker on the CPU")
    return time.monotonic() - start


def test_a_delegate_that_does_not_load_starts_on_the_cpu_and_says_so(
    tmp_path, digits_dir, shared_dir
):
    start = time.monotonic()
    server = faulty_server(tmp_path, digits_dir, shared_dir, tpu="present", edgetpu="raise")
    try:
        started = time.monotonic() - start
        assert healthz(server)["backend"] == "cpu"
        notices = {n["code"]: n["message"] for n in state(server)["notices"]}
        assert "could not be used" in notices["edgetpu_failed"]
        log = Path(server.log.name).read_text()
        assert "Edge TPU not used, running on the CPU" in log
        record("Edge TPU missing at start", start_s=round(started, 1))
        assert started <= START_LIMIT
    finally:
        server.stop()


@pytest.mark.parametrize("fault", ["abort", "kill", "fail", "hang"])
def test_a_lost_edge_tpu_restarts_the_worker_on_the_cpu_with_the_state_intact(
    fault, tmp_path, digits_dir, shared_dir
):
    server = faulty_server(tmp_path, digits_dir, shared_dir, tpu="present")
    client = in_order_client(reconnection=False)
    errors = []
    client.on("frame", lambda data: True)
    client.on("error", lambda payload: errors.append((time.monotonic(), payload)))
    try:
        assert healthz(server)["backend"] == "edgetpu"
        before = teach(server, digits_dir)
        client.connect(server.url, transports=["websocket"], wait_timeout=10)
        pid = worker_pid(server)
        faulted = time.monotonic()
        if fault == "kill":
            os.kill(pid, signal.SIGKILL)
        else:
            (server.faults / "edgetpu").write_text(fault)
        recovered = cpu_again(server, pid)
        detected = None
        if fault in ("fail", "hang"):  # the server's own detection, told to its clients
            assert errors and errors[0][1]["code"] == "extractor_failed", errors
            detected = errors[0][0] - faulted
        after = state(server)
        notices = {n["code"]: n["message"] for n in after["notices"]}
        record(
            f"Edge TPU lost: {fault}",
            detected_s=round(detected, 1) if detected is not None else None,
            back_on_cpu_s=round(recovered, 1),
            classes=len(before),
        )
        assert taught(server) == before  # nothing taught is lost
        assert "runs on the CPU" in notices["edgetpu_failed"]
        if detected is not None:
            assert detected <= DETECT_LIMIT
        assert server.proc.poll() is None  # the master carried on
    finally:
        if client.connected:
            client.disconnect()
        server.stop()
