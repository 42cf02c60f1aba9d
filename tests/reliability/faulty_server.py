"""``python -m server`` with fault injection, for the reliability suite.

    python tests/reliability/faulty_server.py --faults DIR [python -m server's arguments]

Runs the real server (settings, gunicorn, worker supervision) after swapping three parts for
fakes behind the interfaces the real ones use, each steered by a one-word file in ``DIR``
that the test rewrites while the server runs (a missing file means ``ok``):

* ``DIR/camera``: every ``folder:`` camera is a ``FaultyFolderCamera``, a real
  ``FolderCamera`` (reader thread, monitor, retries) whose ``_read`` hook misbehaves:
  ``noframe`` (returns None), ``exception`` (raises, as OpenCV does on unplug), ``hang``
  (blocks, ignoring ``_close``, until the file says otherwise) or ``frozen`` (the same image
  again and again).
* ``DIR/tpu``: whether an Edge TPU is plugged in (``present``) or not (``ok``/missing); the
  extractor is then opened (after a fake probe that passes) with a fake ``Runtime`` whose
  ``load_delegate`` gives a fake
  delegate, and whose interpreter, given that delegate, runs the CPU model (so embeddings
  are real) unless ``DIR/edgetpu`` says ``raise`` (the delegate does not load), ``fail``
  (``invoke`` raises), ``abort`` (``invoke`` calls ``os.abort()``, as libedgetpu does on a
  USB error) or ``hang`` (``invoke`` never returns).
* ``DIR/disk``: ``full`` makes every SQLite commit of the store fail the way SQLite reports
  ENOSPC (``sqlite3.OperationalError: database or disk is full``).

gunicorn forks its worker from this process, so the patches hold in the worker too.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server import models  # noqa: E402
from server.hw import cameras, extractor, probe  # noqa: E402
from server.hw import runtime as rt  # noqa: E402

FAULTS: Path = Path(".")


def fault(name: str) -> str:
    try:
        return (FAULTS / name).read_text().strip() or "ok"
    except FileNotFoundError:
        return "ok"


# -- camera ---------------------------------------------------------------------------------


class FaultyFolderCamera(cameras.FolderCamera):
    detect_frozen = True  # a frozen picture is a fault here, as with a webcam

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last = None

    def _read(self):
        mode = fault("camera")
        if mode == "noframe":
            return None
        if mode == "exception":
            raise OSError("VIDIOC_DQBUF: No such device (injected)")
        if mode == "hang":
            while fault("camera") == "hang":  # like a driver read that ignores close()
                time.sleep(0.05)
            return None
        if mode == "frozen" and self._last is not None:
            return self._last
        self._last = super()._read()
        return self._last


# -- Edge TPU -------------------------------------------------------------------------------


class FakeDelegate:
    """What ``load_delegate`` returns; the fake interpreter recognises it."""


class FaultyInterpreter:
    """The real CPU interpreter behind an Edge TPU's interface, with injectable faults."""

    def __init__(self, real, cpu_model: str):
        self._real = real(model_path=cpu_model)

    def __getattr__(self, name):
        return getattr(self._real, name)

    def invoke(self):
        mode = fault("edgetpu")
        if mode == "fail":
            raise RuntimeError("Edge TPU: USB transfer error (injected)")
        if mode == "abort":
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the checkout
            os.abort()
        if mode == "hang":
            threading.Event().wait()
        return self._real.invoke()


def faulty_runtime(real: rt.Runtime, cpu_model: str) -> rt.Runtime:
    def interpreter_class(model_path, experimental_delegates=None, **kwargs):
        if experimental_delegates and isinstance(experimental_delegates[0], FakeDelegate):
            return FaultyInterpreter(real.interpreter_class, cpu_model)
        return real.interpreter_class(model_path=model_path, **kwargs)

    def load_delegate(library, options=None):
        if fault("edgetpu") == "raise":
            raise ValueError(f"Failed to load delegate from {library} (injected)")
        return FakeDelegate()

    return rt.Runtime(real.name, interpreter_class, load_delegate)


def fake_probe(library=None, **kwargs) -> probe.ProbeResult:
    """The fake Edge TPU passes its probe; ``DIR/edgetpu`` faults show once it is opened."""
    return probe.ProbeResult("ok", "a fake Edge TPU", runtime=rt.load_runtime().name)


def patch_extractor() -> None:
    real_open = extractor.open_extractor

    def open_extractor(tpu="auto", **kwargs):
        cpu_model = models.locate(
            models.EXTRACTOR_CPU,
            path=kwargs.get("model_path"),
            data_dir=kwargs.get("data_dir"),
            mirror=kwargs.get("mirror"),
        )
        kwargs["runtime"] = faulty_runtime(rt.load_runtime(), str(cpu_model))
        kwargs["devices"] = lambda: ["usb:fake"] if fault("tpu") == "present" else []
        kwargs["prober"] = fake_probe
        return real_open(tpu, **kwargs)

    extractor.open_extractor = open_extractor


# -- disk -----------------------------------------------------------------------------------


class FullDiskConnection(sqlite3.Connection):
    """Fails every commit while ``DIR/disk`` says ``full``, as SQLite does on ENOSPC.

    (In WAL mode the pages reach the disk at COMMIT, so that is where ENOSPC shows.)
    """

    def execute(self, sql, *args, **kwargs):
        if sql.strip().upper() == "COMMIT" and fault("disk") == "full":
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args, **kwargs)


def patch_store() -> None:
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        kwargs.setdefault("factory", FullDiskConnection)
        return real_connect(*args, **kwargs)

    sqlite3.connect = connect  # the store is this process's only SQLite user


def main(argv=None) -> int:
    global FAULTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=Path, required=True)
    args, rest = parser.parse_known_args(argv)
    FAULTS = args.faults
    FAULTS.mkdir(parents=True, exist_ok=True)
    cameras.FolderCamera = FaultyFolderCamera  # open_camera builds folder: sources from this
    patch_extractor()
    patch_store()
    from server.__main__ import main as serve

    return serve(rest)


if __name__ == "__main__":
    sys.exit(main())
