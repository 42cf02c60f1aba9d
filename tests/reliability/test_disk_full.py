"""Row: the disk fills up (SQLite's ENOSPC, injected by ``faulty_server.py`` at COMMIT).

While the disk is full every change is refused with a clear error and nothing half-saved;
the live view goes on; recording is refused. Once there is room again, recording works, and
the database loads in a fresh process with everything acknowledged.
"""

import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from relhelp import Server, eventually, in_order_client, record

from server.store import Store

pytestmark = pytest.mark.reliability

HERE = Path(__file__).resolve().parent
ERROR_LIMIT = 1.0  # s


class Client:
    """A socket client that counts frames and keeps every error with its arrival time."""

    def __init__(self, url):
        self.sio = in_order_client(reconnection=False)
        self.frames, self.errors, self.states = [], [], []
        self.lock = threading.Lock()
        self.sio.on("frame", self._frame)
        self.sio.on("error", lambda p: self.errors.append((time.monotonic(), p)))
        self.sio.on("state", lambda p: self.states.append(p))
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)

    def _frame(self, data):
        self.frames.append(time.monotonic())
        return True

    def frames_between(self, start, end):
        return sum(start <= t < end for t in self.frames)

    def ask(self, event, payload):
        """Emits and waits for the answer; returns (answer, seconds)."""
        start = time.monotonic()
        answer = self.sio.call(event, payload, timeout=10)
        return answer, time.monotonic() - start

    def error_after(self, start, code):
        eventually(
            lambda: any(t >= start and p["code"] == code for t, p in self.errors),
            timeout=5,
            what=f"an error {code}",
        )
        return min(t for t, p in self.errors if t >= start and p["code"] == code) - start


def test_a_full_disk_refuses_changes_clearly_and_the_camera_goes_on(
    tmp_path, digits_dir, shared_dir
):
    faults = tmp_path / "faults"
    faults.mkdir()
    server = Server(
        tmp_path / "data",
        f"folder:{digits_dir / '3'}",
        shared_dir,
        "--camera-fps",
        "30",
        command=[sys.executable, str(HERE / "faulty_server.py"), "--faults", str(faults)],
    )
    origin = {"Origin": server.url}
    client = None
    try:
        made = requests.post(
            server.url + "/api/classes", json={"name": "three"}, headers=origin, timeout=10
        ).json()
        client = Client(server.url)
        answer, _ = client.ask("record_start", {"class_id": made["id"]})
        assert answer["ok"], answer
        time.sleep(1.0)
        client.ask("record_stop", {})
        stored = requests.get(server.url + "/api/state", timeout=5).json()["classes"][0]
        assert stored["examples"] > 0
        time.sleep(1.0)
        before_start = time.monotonic()
        time.sleep(3.0)
        fps_before = client.frames_between(before_start, time.monotonic()) / 3.0

        # recording when the disk fills up under it
        client.ask("record_start", {"class_id": made["id"]})
        time.sleep(0.5)
        full_at = time.monotonic()
        (faults / "disk").write_text("full")
        during_recording_s = client.error_after(full_at, "storage")
        eventually(lambda: client.states[-1]["recording"] == [], timeout=5, what="not recording")

        # starting to record, adding a class, renaming: refused, each with a clear error
        start = time.monotonic()
        answer, record_s = client.ask("record_start", {"class_id": made["id"]})
        assert not answer["ok"] and answer["error"]["code"] == "storage", answer
        assert "disk is full" in answer["error"]["message"]
        start = time.monotonic()
        rest = requests.post(
            server.url + "/api/classes", json={"name": "four"}, headers=origin, timeout=10
        )
        rest_s = time.monotonic() - start
        assert rest.status_code == 507 and "disk is full" in rest.json()["error"]["message"]
        answer, rename_s = client.ask("rename_class", {"class_id": made["id"], "name": "drei"})
        assert not answer["ok"] and answer["error"]["code"] == "storage", answer

        # the live view goes on meanwhile
        during_start = time.monotonic()
        time.sleep(3.0)
        fps_full = client.frames_between(during_start, time.monotonic()) / 3.0
        state_full = requests.get(server.url + "/api/state", timeout=5).json()
        full_classes = [(c["id"], c["name"], c["examples"]) for c in state_full["classes"]]

        # room again: recording works
        (faults / "disk").write_text("ok")
        answer, _ = client.ask("record_start", {"class_id": made["id"]})
        assert answer["ok"], answer
        time.sleep(1.0)
        client.ask("record_stop", {})
        final = requests.get(server.url + "/api/state", timeout=5).json()["classes"]
        assert final[0]["examples"] > full_classes[0][2]
        acknowledged = [(c["id"], c["name"], c["examples"]) for c in final]
        record(
            "Disk full",
            error_while_recording_s=round(during_recording_s, 2),
            record_start_refused_s=round(record_s, 2),
            rest_refused_s=round(rest_s, 2),
            rename_refused_s=round(rename_s, 2),
            fps_before=round(fps_before, 1),
            fps_while_full=round(fps_full, 1),
        )
        assert max(during_recording_s, record_s, rest_s, rename_s) <= ERROR_LIMIT
        assert full_classes == [(made["id"], "three", full_classes[0][2])]  # nothing changed
        assert fps_full >= 0.75 * fps_before, (fps_full, fps_before)  # it goes on (noisy)
    finally:
        if client is not None and client.sio.connected:
            client.sio.disconnect()
        server.stop()

    # the stored state loads in a fresh process, as acknowledged
    db = tmp_path / "data" / "teachable.sqlite3"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(db) as store:
        assert [(c.id, c.name, c.examples) for c in store.classes()] == acknowledged
