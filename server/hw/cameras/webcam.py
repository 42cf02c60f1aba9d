"""A V4L2/USB webcam through OpenCV, and the list of the machine's V4L2 devices."""

from __future__ import annotations

import glob
import logging
import os
import re
from typing import List, Optional, Tuple, Union

import numpy as np

from server.hw.cameras.base import STALL_TIMEOUT, Camera, CameraError
from server.hw.cameras.opencv import import_cv2, to_rgb

log = logging.getLogger(__name__)


class V4L2Camera(Camera):
    """A V4L2/USB webcam through OpenCV, at the size and rate it is asked for if it can.

    The device may be missing at start: the camera stays offline ("camera unplugged") and
    opens it once it is plugged in.

    Args:
      device: an index (0 for ``/dev/video0``) or a device path, stable ones such as
        ``/dev/v4l/by-id/...`` included.
      fps, size: the rate and (width, height) requested from the camera.
    """

    def __init__(
        self,
        device: Union[int, str],  # noqa: UP007 (no X | Y: vermin checks 3.9)
        *,
        fps: float = 30.0,
        size: Tuple[int, int] = (640, 480),
        stall_timeout: float = STALL_TIMEOUT,
    ):
        self.device = device
        self.path = f"/dev/video{device}" if isinstance(device, int) else str(device)
        super().__init__(f"v4l2:{self.path}", stall_timeout=stall_timeout)
        self.requested_fps = fps
        self.size = tuple(size)
        self._cap = None

    def _open(self) -> None:
        cv2 = import_cv2()
        if not os.path.exists(self.path):
            raise CameraError(f"camera unplugged: {self.path}")
        if not os.access(self.path, os.R_OK | os.W_OK):
            raise CameraError(
                f"no permission to use {self.path}: add this user to the video group "
                "(sudo usermod -aG video $USER) and log in again"
            )
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open {self.path}: is another program using the camera?")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
        log.info(
            "%s opened at %dx%d, %.0f fps",
            self.name,
            cap.get(cv2.CAP_PROP_FRAME_WIDTH),
            cap.get(cv2.CAP_PROP_FRAME_HEIGHT),
            cap.get(cv2.CAP_PROP_FPS),
        )
        self._cap = cap

    def _read(self) -> Optional[np.ndarray]:
        cv2 = import_cv2()
        cap = self._cap
        if cap is None:
            raise CameraError(f"{self.name} is closed")
        ok, image = cap.read()
        if not ok or image is None:
            if not os.path.exists(self.path):
                raise CameraError(f"camera unplugged: {self.path}")
            return None
        return to_rgb(cv2, image)

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def video_devices(dev: str = "/dev") -> List[str]:
    """V4L2 device nodes in numeric order, e.g. ``["/dev/video0", "/dev/video2"]``."""

    def number(path: str) -> Tuple[int, str]:
        match = re.search(r"(\d+)$", path)
        return (int(match.group(1)) if match else 1 << 30, path)

    return sorted(glob.glob(os.path.join(dev, "video*")), key=number)
