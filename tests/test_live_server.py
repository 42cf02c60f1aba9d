"""The real server (``python -m server``, gunicorn) on loopback, with python-socketio clients."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from liveserver import ROOT, Server, eventually, in_order_client


@pytest.fixture
def folder_camera(digits_dir):
    return f"folder:{digits_dir / '3'}"


@pytest.fixture
def server(tmp_path, folder_camera, shared_dir):
    s = Server(tmp_path, folder_camera, shared_dir)
    yield s
    s.stop()


class Client:
    """A python-socketio client that records what it receives and acks frames (or not)."""

    def __init__(self, url, ack=True):
        self.sio = in_order_client(reconnection=False)
        self.states, self.frames, self.errors = [], [], []
        self.release = threading.Event()
        self.sio.on("state", self.states.append)
        self.sio.on("error", self.errors.append)

        def on_frame(data):
            self.frames.append((time.monotonic(), data["index"]))
            if not ack:
                self.release.wait(60)  # a client that never answers
            return True

        self.sio.on("frame", on_frame)
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)

    def call(self, event, payload):
        return self.sio.call(event, payload, timeout=15)

    def close(self):
        self.release.set()
        self.sio.disconnect()


def test_clients_see_each_others_changes_and_recording_adds_examples(server):
    a, b = Client(server.url), Client(server.url)
    try:
        created = a.call("add_class", {"name": "three"})
        assert created["ok"]
        class_id = created["class"]["id"]
        eventually(
            lambda: any(s["classes"] and s["classes"][0]["name"] == "three" for s in b.states),
            what="b sees the new class",
        )
        assert a.call("record_start", {"class_id": class_id})["ok"]
        eventually(
            lambda: any(s["classes"] and s["classes"][0]["examples"] >= 5 for s in b.states),
            what="recording adds examples",
        )
        assert a.call("record_stop", {})["ok"]
        count = requests.get(server.url + "/api/state").json()["classes"][0]["examples"]
        assert 5 <= count <= 200
        eventually(lambda: len(a.frames) > 10 and len(b.frames) > 10, what="frames stream")
        assert max(s["clients"] for s in b.states) == 2
    finally:
        a.close(), b.close()


def test_a_client_that_never_acknowledges_does_not_hold_up_the_others(server):
    fast = Client(server.url)
    slow = Client(server.url, ack=False)
    try:
        eventually(lambda: len(slow.frames) >= 1, what="the slow client gets a frame")
        before = len(fast.frames)
        time.sleep(3)
        # the slow client has at most the two unacknowledged frames; the fast one keeps going
        assert len(slow.frames) <= 2
        assert len(fast.frames) - before >= 20
        # the server drops it (its own reading thread is stuck, as a frozen phone's would be)
        eventually(
            lambda: requests.get(server.url + "/healthz").json()["clients"] == 1,
            timeout=25,
            what="the server drops the slow client",
        )
        assert fast.sio.connected
    finally:
        fast.close(), slow.close()


def test_the_worker_starts_its_whole_pool_and_ends_each_sockets_threads(
    tmp_path, folder_camera, shared_dir
):
    # gunicorn's pool (max clients + 8 threads) otherwise starts a thread whenever none is
    # idle and keeps it: browsers reconnecting at the same time made the count creep up
    s = Server(tmp_path, folder_camera, shared_dir, "--max-clients", "4")
    try:
        (worker,) = [p for p in s.pids() if p != s.proc.pid]

        def threads():
            return len(os.listdir(f"/proc/{worker}/task"))

        before = threads()
        assert before >= 4 + 8 + 3  # the pool, the main thread, the pipeline's own
        for _ in range(3):
            clients = [Client(s.url) for _ in range(4)]
            eventually(lambda c=clients: all(len(x.frames) > 2 for x in c), what="frames")
            for c in clients:
                c.close()
            # each WebSocket's reader, writer and ping threads end with it (the ping thread
            # used to sleep out its 10 s interval); engineio's service thread stays
            eventually(lambda: threads() <= before + 1, timeout=3, what=f"{before} threads")
    finally:
        s.stop()


def test_state_survives_kill_9_and_nothing_is_left_behind(
    tmp_path, folder_camera, shared_dir, digits_dir
):
    first = Server(tmp_path, folder_camera, shared_dir)
    try:
        for digit in (3, 6):
            r = requests.post(first.url + "/api/classes", json={"name": f"digit {digit}"})
            files = [
                ("image", (p.name, p.read_bytes(), "image/jpeg"))
                for p in sorted((digits_dir / str(digit)).iterdir())[:5]
            ]
            added = requests.post(f"{first.url}/api/classes/{r.json()['id']}/examples", files=files)
            assert added.json() == {"added": 5}
        before = requests.get(first.url + "/api/state").json()
        pids = first.pids()
        assert len(pids) >= 2  # gunicorn master and its worker
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        eventually(lambda: not first.pids(), timeout=10, what="the worker dies with its master")
    finally:
        first.stop()
    second = Server(tmp_path, folder_camera, shared_dir)  # same port would also be free now
    try:
        after = requests.get(second.url + "/api/state").json()
        assert after["classes"] == before["classes"]
        assert after["method"] == before["method"]
    finally:
        second.stop()


def test_bad_settings_stop_start_up_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", "99999", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --port must be between 1 and 65535"


def test_missing_model_is_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TEACHABLE_MODEL_MIRROR"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "--data-dir",
            str(tmp_path),
            "--model",
            str(tmp_path / "nope.tflite"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "is not a file" in result.stderr and "Traceback" not in result.stderr
