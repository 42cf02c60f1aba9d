"""The ``auto`` camera: the first webcam that delivers a frame, else the synthetic scene."""

from __future__ import annotations

import logging
import threading
from typing import Callable, List, Tuple

from server.hw.cameras.base import OPEN_TIMEOUT, Camera, failure_reason
from server.hw.cameras.opencv import OpenCVMissing, import_cv2
from server.hw.cameras.synthetic import SyntheticCamera
from server.hw.cameras.webcam import V4L2Camera

log = logging.getLogger(__name__)


def open_auto(
    *,
    fps: float,
    size: Tuple[int, int],
    stall_timeout: float,
    devices: Callable[[], List[str]],
) -> Camera:
    """The first webcam that opens and delivers a frame, else the synthetic scene."""
    paths = list(devices())
    tried = []
    if paths:
        try:
            import_cv2()
        except OpenCVMissing as e:
            tried.append(str(e))
            paths = []
    for path in paths:
        camera = V4L2Camera(path, fps=fps, size=size, stall_timeout=stall_timeout)
        problem = _probe(camera, timeout=max(OPEN_TIMEOUT, stall_timeout))
        if not problem:
            log.info("camera auto: using %s", camera.name)
            return camera
        log.info("camera auto: %s does not work: %s", path, problem)
        tried.append(f"{path}: {problem}")
    if tried:
        notice = (
            f"no working camera ({'; '.join(tried)}), showing a synthetic test scene instead: "
            "check the webcam and restart"
        )
    else:
        notice = (
            "no camera found (no /dev/video* device), showing a synthetic test scene instead: "
            "plug in a USB webcam and restart"
        )
    log.warning(notice)
    camera = SyntheticCamera(fps=fps, size=size, stall_timeout=stall_timeout)
    camera.notice = camera.status_reason = notice
    return camera


def _probe(camera: Camera, timeout: float) -> str:
    """Opens ``camera`` and reads one frame; returns "" or what went wrong.

    Runs in a helper thread so that a driver that hangs cannot hold up start-up.
    """
    outcome: List[str] = []

    def attempt() -> None:
        try:
            camera._open()
            outcome.append("" if camera._read() is not None else "no frame")
        except Exception as e:
            outcome.append(failure_reason(e, "cannot open it"))

    thread = threading.Thread(target=attempt, name="camera-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    camera._safe_close()
    return outcome[0] if outcome else f"no frame within {timeout:g} s"
