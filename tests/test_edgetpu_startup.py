"""``python -m server`` and ``python -m server.benchmark`` with stand-in libedgetpu libraries.

The stand-ins (tests/standin.py) crash, hang, abort or find no device the way broken Edge TPU
installs do. ``--tpu on`` must exit non-zero promptly with the probe's one-line diagnosis and
no worker started; ``--tpu auto`` on a machine where Linux sees an Edge TPU must serve on the
CPU with the diagnosis in the page's notices and ``/healthz``; and no serving process ever
maps the library. These show the failure paths only: no real Edge TPU is involved.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import requests

import standin
from liveserver import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
BROKEN = {
    "segv": "crashed",
    "ill": "crashed",
    "abort": "aborted",
    "nodevice": "no_device",
    "hang": "hung",
}


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("standin")
    return {mode: standin.build(mode, folder) for mode in BROKEN}


def server_args(data_dir, lib, tpu):
    return ["--host", "127.0.0.1", "--port", str(free_port()), "--camera", "synthetic"] + [
        "--data-dir",
        str(data_dir),
        "--tpu",
        tpu,
        "--edgetpu-lib",
        str(lib),
    ]


@pytest.mark.parametrize("mode", sorted(BROKEN))
def test_tpu_on_exits_with_the_diagnosis_and_starts_no_worker(mode, libs, tmp_path, shared_dir):
    done = subprocess.run(
        [sys.executable, "-m", "server", *server_args(tmp_path, libs[mode], "on")],
        cwd=ROOT,
        env={"TEACHABLE_MODEL_MIRROR": str(shared_dir / "models"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: --tpu on: Edge TPU {BROKEN[mode]}")
    assert "Traceback" not in done.stderr + done.stdout
    assert "Booting worker" not in done.stderr + done.stdout


@pytest.mark.parametrize("mode", ["segv", "abort", "nodevice"])
def test_tpu_auto_serves_on_the_cpu_with_the_diagnosis(mode, libs, tmp_path, shared_dir):
    launcher = [sys.executable, str(ROOT / "tests" / "sees_edgetpu.py")]
    server = Server(
        tmp_path,
        "synthetic",
        shared_dir,
        "--tpu",
        "auto",
        "--edgetpu-lib",
        str(libs[mode]),
        command=launcher,
    )
    try:
        health = requests.get(server.url + "/healthz", timeout=5).json()
        assert health["status"] == "ok" and health["backend"] == "cpu"
        assert health["edgetpu"]["outcome"] == BROKEN[mode]
        notices = requests.get(server.url + "/api/state", timeout=5).json()["notices"]
        notice = next(n for n in notices if n["code"] == "edgetpu_failed")
        assert notice["outcome"] == BROKEN[mode]
        assert notice["detail"] == health["edgetpu"]["diagnosis"]
        assert notice["detail"] in notice["message"]
        for pid in server.pids():  # the master and its worker
            assert str(libs[mode]) not in Path(f"/proc/{pid}/maps").read_text()
        log = Path(server.log.name).read_text()
        assert f"Edge TPU probe: {BROKEN[mode]}" in log and "SIGSEGV!" not in log
    finally:
        server.stop()


def test_benchmark_reports_the_failure_in_one_line(libs, model_dir):
    done = subprocess.run(
        [sys.executable, "-m", "server.benchmark", "--tpu", "on", "--rounds", "2"]
        + ["--edgetpu-lib", str(libs["segv"]), "--data-dir", str(model_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # not -11: the crash stayed in the probe's child
    assert done.stderr.startswith("error: Edge TPU crashed: the Edge TPU probe")
    assert done.stderr.count("\n") == 1 and done.stdout == ""
