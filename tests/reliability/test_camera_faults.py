"""Row 9: camera unplug/replug, 50 cycles of each fault mode against the real server.

The server runs with the fault launcher (``faulty_server.py``): its ``folder:`` camera is a
real ``FolderCamera`` whose reads misbehave as the file ``FAULTS/camera`` says (``noframe``,
``exception``, ``hang``, ``frozen``; ``ok`` is the replug). One python-socketio client notes
when each camera status change and each frame arrives; a thread polls ``/healthz`` meanwhile.
"""

import http.client
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from relhelp import FPS, Server, in_order_client, record, thread_count
from relhelp import worker_pid as find_worker

pytestmark = pytest.mark.reliability

HERE = Path(__file__).resolve().parent
MODES = ("noframe", "exception", "hang", "frozen")
CYCLES = 50
OFFLINE_S = 3.0  # the pass lines
RESUME_S = 5.0
HEALTHZ_MS = 200.0
DRIFT = 2  # threads and open files, either way
QUIET_S = 0.15  # no frame for this long: frames from before the fault have all arrived
WAIT_S = 15.0  # bound on any one wait; far beyond the pass lines
HEALTHZ_PERIOD_S = 0.05
CONTROL_S = 20.0  # /healthz with the camera healthy: what the machine's load alone costs


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pct(values, q: float) -> float:
    values = sorted(values) or [float("inf")]
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


class CameraWatcher:
    """Notes when camera status changes and frames (acknowledged at once) arrive."""

    def __init__(self, url):
        self.statuses: list = []  # (monotonic, status, reason), on changes only
        self.frames: list = []  # (monotonic, index)
        self.sio = in_order_client(reconnection=False)
        self.sio.on("state", self._on_state)
        self.sio.on("frame", self._on_frame)
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)

    def _on_state(self, state):
        camera = state["camera"]
        if not self.statuses or self.statuses[-1][1] != camera["status"]:
            self.statuses.append((time.monotonic(), camera["status"], camera["reason"]))

    def _on_frame(self, data):
        self.frames.append((time.monotonic(), data["index"]))
        return True

    @property
    def status(self) -> str:
        return self.statuses[-1][1] if self.statuses else ""

    def status_after(self, since: int, status: str):
        """The first change to ``status`` among those from position ``since`` on, else None."""
        return next((c for c in self.statuses[since:] if c[1] == status), None)

    def frame_after(self, since: int, index: int):
        """The first frame newer than ``index`` among those from position ``since`` on."""
        return next((f for f in self.frames[since:] if f[1] > index), None)

    def close(self):
        self.sio.disconnect()


class HealthPoller:
    """GETs ``/healthz`` every 50 ms on a thread; keeps (start, ms) of each answer.

    Each GET opens a connection of its own, as a monitoring probe does, with ``http.client``:
    requests costs the client several milliseconds of CPU, which on a loaded machine shows up
    as server latency.
    """

    def __init__(self, port: int):
        self.port = port
        self.answers: list = []
        self.failures: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthz-poller", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(HEALTHZ_PERIOD_S):
            start = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
            except OSError as e:  # refused, reset or timed out
                self.failures.append((start, f"{type(e).__name__}: {e}"))
                continue
            finally:
                connection.close()
            ms = (time.monotonic() - start) * 1000
            if response.status == 200:
                self.answers.append((start, ms))
            else:
                self.failures.append((start, f"{response.status} after {ms:.0f} ms"))

    def times_ms(self, since: float) -> list:
        return [ms for t, ms in self.answers if t >= since]

    def failed(self, since: float) -> list:
        return [text for t, text in self.failures if t >= since]

    def stop(self):
        self._stop.set()
        self._thread.join(10)


def wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"{what}: not within {WAIT_S:g} s")


class Rig:
    def __init__(self, server, faults: Path):
        self.server, self.faults = server, faults
        self.pid = find_worker(server)
        self.poller = HealthPoller(server.port)
        self.watcher = CameraWatcher(server.url)
        wait_for(lambda: self.watcher.status == "online" and self.watcher.frames, "first frames")
        time.sleep(3)  # warm-up: web threads for the poller and the client exist by now
        self.threads, self.files = thread_count(self.pid), open_files(self.pid)
        control = time.monotonic()
        time.sleep(CONTROL_S)
        self.control_ms = self.poller.times_ms(since=control)

    def set_fault(self, mode: str) -> float:
        """Writes ``mode`` atomically; returns the time just before it took effect."""
        staged = self.faults / "camera.new"
        staged.write_text(mode)
        now = time.monotonic()
        os.replace(staged, self.faults / "camera")
        return now

    def cycle(self, mode: str, number: int):
        """One fault and replug; returns (offline delay, resume delay) in seconds."""
        watcher, since = self.watcher, len(self.watcher.statuses)
        faulted = self.set_fault(mode)
        offline = wait_for(
            lambda: watcher.status_after(since, "offline"), f"{mode} #{number}: offline state"
        )
        # frames encoded before the fault may still be on their way; let them land
        wait_for(lambda: time.monotonic() - watcher.frames[-1][0] > QUIET_S, "quiet")
        since, last = len(watcher.frames), watcher.frames[-1][1]
        replugged = self.set_fault("ok")
        resumed = wait_for(lambda: watcher.frame_after(since, last), f"{mode} #{number}: frames")
        wait_for(lambda: watcher.status == "online", f"{mode} #{number}: online state")
        return offline[0] - faulted, resumed[0] - replugged

    def drift(self):
        return thread_count(self.pid) - self.threads, open_files(self.pid) - self.files

    def close(self):
        self.set_fault("ok")
        self.watcher.close()
        self.poller.stop()


@pytest.fixture(scope="module")
def rig(tmp_path_factory, folder_camera, shared_dir):
    started = time.monotonic()
    faults = tmp_path_factory.mktemp("faults")
    server = Server(
        tmp_path_factory.mktemp("rel"),
        folder_camera,
        shared_dir,
        "--camera-fps",
        str(FPS),
        command=[sys.executable, str(HERE / "faulty_server.py"), "--faults", str(faults)],
    )
    try:
        rig = Rig(server, faults)
        try:
            yield rig
            record(
                "9 camera unplug/replug",
                healthz_ms_max_no_fault=round(max(rig.control_ms, default=float("inf")), 1),
                healthz_ms_p99_no_fault=round(pct(rig.control_ms, 99), 1),
                healthz_failures=len(rig.poller.failures),
                healthz_answers=len(rig.poller.answers),
                wall_s=round(time.monotonic() - started, 1),
            )
        finally:
            rig.close()
    finally:
        server.stop()


@pytest.mark.parametrize("mode", MODES)
def test_each_camera_fault_is_reported_and_repaired_50_times(rig, mode):
    start = time.monotonic()
    offline, resume = [], []
    for number in range(CYCLES):
        off, on = rig.cycle(mode, number)
        offline.append(off)
        resume.append(on)
    # the camera settles: a reader replaced during the last cycle may still be ending
    deadline = time.monotonic() + 5
    threads, files = rig.drift()
    while (abs(threads) > DRIFT or abs(files) > DRIFT) and time.monotonic() < deadline:
        time.sleep(0.1)
        threads, files = rig.drift()
    healthz = rig.poller.times_ms(since=start)
    healthz_ms = max(healthz, default=float("inf"))
    failures = rig.poller.failed(since=start)
    record(
        f"9 camera {mode}",
        cycles=CYCLES,
        offline_s_max=round(max(offline), 3),
        offline_s_p95=round(pct(offline, 95), 3),
        resume_s_max=round(max(resume), 3),
        resume_s_p95=round(pct(resume, 95), 3),
        healthz_ms_max=round(healthz_ms, 1),
        healthz_ms_p99=round(pct(healthz, 99), 1),
        healthz_slow=sum(ms >= HEALTHZ_MS for ms in healthz),
        thread_delta=threads,
        fd_delta=files,
        mode_s=round(time.monotonic() - start, 1),
    )
    assert find_worker(rig.server) == rig.pid, "the worker was replaced"
    assert not failures, f"/healthz failed {len(failures)} times: {failures[:3]}"
    assert max(offline) <= OFFLINE_S, f"offline pushed {max(offline):.2f} s after the fault"
    control = max(rig.control_ms, default=float("inf"))
    assert healthz_ms < HEALTHZ_MS, (
        f"/healthz took {healthz_ms:.0f} ms ({control:.0f} ms with the camera healthy)"
    )
    assert max(resume) <= RESUME_S, f"frames resumed {max(resume):.2f} s after the replug"
    assert abs(threads) <= DRIFT, f"threads {threads:+d} against the baseline {rig.threads}"
    assert abs(files) <= DRIFT, f"open files {files:+d} against the baseline {rig.files}"
