"""The master learns whether its worker ended on purpose, through memory they share."""

import faulthandler
import os
import resource
import signal
import time

import pytest

from server import supervisor


@pytest.fixture(autouse=True)
def fresh_master(monkeypatch):
    monkeypatch.setattr(supervisor, "_faults", 0)
    supervisor._shared[0] = 0


def run_worker(body) -> int:
    """Forks a 'worker' that runs ``body``; the master reaps it as gunicorn does."""
    pid = os.fork()
    if pid == 0:  # the worker: never returns into pytest
        try:
            body()
            time.sleep(5)  # exit_later ends it before this
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    supervisor.worker_ended()
    return status


def crash():
    """What libedgetpu does on a USB error (no traceback dump, no core file)."""
    faulthandler.disable()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.abort()


def test_a_planned_exit_keeps_the_edge_tpu():
    status = run_worker(lambda: supervisor.exit_later(75, planned=True, delay=0.05))
    assert os.WEXITSTATUS(status) == 75
    assert supervisor.avoid_tpu() == ""


def test_an_abort_makes_the_next_worker_avoid_the_edge_tpu():
    status = run_worker(crash)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGABRT
    assert "runs on the CPU" in supervisor.avoid_tpu()


def test_a_fault_exit_makes_the_next_worker_avoid_the_edge_tpu():
    code = supervisor.FAULT_EXIT_CODE
    status = run_worker(lambda: supervisor.exit_later(code, planned=False, delay=0.05))
    assert os.WEXITSTATUS(status) == code
    assert supervisor.avoid_tpu() == supervisor.AVOID_TPU_NOTICE


def test_a_planned_restart_after_a_fault_tries_the_edge_tpu_again():
    run_worker(crash)
    assert supervisor.avoid_tpu()
    run_worker(lambda: supervisor.exit_later(75, planned=True, delay=0.05))
    assert supervisor.avoid_tpu() == ""
