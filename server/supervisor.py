"""Why the worker process ended, told to the gunicorn master that starts the next one.

The master (``server.__main__``) forks one worker; when it dies, the master forks another.
A worker that dies of an Edge TPU fault (libedgetpu aborting on a USB error, a hung
``invoke``, a device that fails every call) must not be replaced by one that opens the same
Edge TPU again: the next worker runs on the CPU and says so, until a planned restart (the
operator's "restart" button, or restarting the service) tries the Edge TPU again.

A crash leaves no time to explain, so the rule is the other way round: a worker that ends
*on purpose* says so first, in one byte of memory it shares with the master (an anonymous
shared mapping made before the fork); any other end counts as a fault.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading

log = logging.getLogger(__name__)

FAULT_EXIT_CODE = 70  # EX_SOFTWARE: the extractor hung or failed; not gunicorn's 3 or 4

_PLANNED = 1
_shared = mmap.mmap(-1, 1)  # made on import, in the master, so every worker shares it
_faults = 0  # the master's count of unplanned worker ends (each worker inherits a copy)

AVOID_TPU_NOTICE = (
    "The Edge TPU stopped working, so the camera runs on the CPU (slower). Restart the kiosk "
    "to use the Edge TPU again."
)


def exit_later(code: int, *, planned: bool, delay: float = 0.5) -> None:
    """Ends this worker process in ``delay`` s (time for the last messages to go out)."""
    _shared[0] = _PLANNED if planned else 0
    log.warning("the worker exits with code %d (%s)", code, "planned" if planned else "fault")
    threading.Timer(delay, os._exit, args=(code,)).start()


def worker_ended(server=None, worker=None) -> None:
    """gunicorn's ``child_exit`` hook, in the master: counts the worker's end if unplanned."""
    global _faults
    if _shared[0] == _PLANNED:
        _faults = 0  # a planned restart tries the Edge TPU again
    else:
        _faults += 1
    _shared[0] = 0


def avoid_tpu() -> str:
    """In a worker: why not to open the Edge TPU (a sentence for the user), else ``""``."""
    return AVOID_TPU_NOTICE if _faults else ""
