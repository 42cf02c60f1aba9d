"""``python -m server``: parse the settings, check the models, serve the kiosk.

Serves through gunicorn (one worker process with threads: Flask-SocketIO's documented
deployment for threading mode), embedded so that one command starts everything. The worker
asks Linux to kill it when the gunicorn master dies, so even ``kill -9`` of the master leaves
nothing holding the port or the database. When the worker dies (libedgetpu aborting) or ends
itself because the extractor hangs or keeps failing, the master starts a new one, on the CPU
(``server.supervisor``); the state is in SQLite, so nothing taught is lost.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

from server import memory, models, supervisor
from server.hw import probe
from server.hw import runtime as rt
from server.settings import Settings, SettingsError, from_args

log = logging.getLogger("server")

PR_SET_PDEATHSIG = 1


def post_fork(server=None, worker=None) -> None:
    """gunicorn post_fork hook, in the new worker."""
    memory.limit_arenas()
    die_with_parent(server, worker)


def die_with_parent(server=None, worker=None) -> None:
    """The worker gets SIGKILL when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning(
            "could not tie the worker's life to the master's (errno %d)", ctypes.get_errno()
        )
    if worker is not None and os.getppid() != worker.ppid:
        os._exit(1)  # the master died before prctl took effect


def worker_exit(server, worker) -> None:
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("teachable") if app is not None else None
    if services is not None:
        services.close()


def restart_after_fault(reason: str) -> None:
    """The pipeline's ``on_fault``: the master starts a new worker, on the CPU."""
    supervisor.exit_later(supervisor.FAULT_EXIT_CODE, planned=False, delay=1.0)


def check_models(settings: Settings) -> None:
    """Fails fast, before any process starts, when the CPU model cannot be had."""
    models.locate(
        models.EXTRACTOR_CPU,
        path=settings.model,
        data_dir=settings.data_dir,
        mirror=settings.mirror,
    )


def probe_edgetpu(settings: Settings):
    """The Edge TPU probe, in a child process, before any worker starts (None: not needed).

    ``--tpu on`` always probes; ``auto`` only when Linux sees an Edge TPU, so that a machine
    without one starts as fast as before.
    """
    if settings.tpu == "off" or (settings.tpu == "auto" and not rt.edgetpu_devices()):
        return None
    result = probe.probe_edgetpu(
        settings.edgetpu_lib,
        cpu_model=settings.model,
        data_dir=settings.data_dir,
        mirror=settings.mirror,
        download=settings.tpu == "on",
    )
    log.log(
        logging.INFO if result.ok else logging.WARNING,
        "Edge TPU probe: %s: %s",
        result.outcome,
        result.diagnosis,
    )
    return result


def serve(settings: Settings, probe_result=None) -> None:
    from gunicorn.app.base import BaseApplication

    from server import create_app

    class KioskServer(BaseApplication):
        def load_config(self):
            config = {
                "bind": f"{settings.host}:{settings.port}",
                "workers": 1,
                "worker_class": "server.web.gunicorn_worker.KioskThreadWorker",
                # every websocket holds one thread for its lifetime; a few spare for HTTP
                "threads": settings.max_clients + 8,
                "timeout": 30,
                "graceful_timeout": 5,
                "keepalive": 5,
                "post_fork": post_fork,
                "worker_exit": worker_exit,
                "child_exit": supervisor.worker_ended,
                "loglevel": settings.log_level.lower(),
                "accesslog": None,
                "proc_name": "teachable-kiosk",
            }
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24
                config["control_socket_disable"] = True  # no file outside the data dir
            for key, value in config.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app(
                settings,
                avoid_tpu=supervisor.avoid_tpu(),
                on_fault=restart_after_fault,
                probe_result=probe_result,
            )

    KioskServer().run()


def main(argv=None) -> int:
    try:
        settings = from_args(argv)
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        check_models(settings)
    except models.ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = probe_edgetpu(settings)
    if settings.tpu == "on" and not result.ok:
        print(f"error: --tpu on: Edge TPU {result.outcome}: {result.diagnosis}", file=sys.stderr)
        return 1
    log.info(
        "serving on http://%s:%d (camera %s, tpu %s, data %s)",
        settings.host,
        settings.port,
        settings.camera,
        settings.tpu,
        settings.data_dir,
    )
    serve(settings, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
