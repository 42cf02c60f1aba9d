"""A real ``python -m server`` (gunicorn) in a child process, for tests and benchmarks."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m server`` in a child process of its own session.

    ``command`` replaces ``python -m server`` (e.g. the reliability suite's fault launcher);
    ``env`` adds environment variables.
    """

    def __init__(self, data_dir, camera, shared_dir, *extra, port=None, command=None, env=None):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            TEACHABLE_MODEL_MIRROR=str(shared_dir / "models"),
            PYTHONUNBUFFERED="1",
            **(env or {}),
        )
        args = [
            *(command or [sys.executable, "-m", "server"]),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--camera",
            camera,
            "--data-dir",
            str(data_dir),
            "--tpu",
            "off",
            *extra,
        ]
        self.log = open(Path(data_dir) / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # never leave a server running behind a failed start
            raise

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {Path(self.log.name).read_text()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok:
                    return
            except requests.RequestException:  # not listening, or still loading the app
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready: {Path(self.log.name).read_text()}")

    def pids(self):
        """The master and every process of its session."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "-s", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        try:  # anything of its session still alive (a worker, say) goes too
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the whole group is gone already: the normal case
        self.log.close()


def eventually(predicate, timeout=20.0, what="condition"):
    """Waits (bounded) until ``predicate()`` is true; fails the test otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


def in_order_client(**kwargs):
    """A python-socketio client that handles messages in the order they arrive.

    python-socketio's threaded client hands every Engine.IO message to a new thread, so the
    two halves of a binary event (our ``frame``: a header, then the JPEG) can be reassembled
    out of order and fail to decode; a browser's client never does that. This one handles each
    message on the reading thread, as a browser does.
    """
    import socketio

    client = socketio.Client(**kwargs)
    trigger = client.eio._trigger_event

    def in_order(event, *args, **options):
        if event == "message":
            options["run_async"] = False
        return trigger(event, *args, **options)

    client.eio._trigger_event = in_order
    return client
