"""A video file through OpenCV, looping, at the file's own rate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from server.hw.cameras.base import STALL_TIMEOUT, Camera, CameraError
from server.hw.cameras.opencv import import_cv2, to_rgb


class VideoFileCamera(Camera):
    """A video file through OpenCV, looping at its end, paced at the file's own rate.

    Frames are not checked for freezing: a still scene in a video decodes byte-identical.

    Args:
      path: the video file.
      fps: the rate when the file does not give a plausible one.
    """

    detect_frozen = False

    def __init__(
        self,
        path: Union[str, Path],  # noqa: UP007
        *,
        fps: float = 30.0,
        stall_timeout: float = STALL_TIMEOUT,
    ):
        self.path = Path(path)
        super().__init__(f"file:{self.path}", fps=fps, stall_timeout=stall_timeout)
        self.fallback_fps = fps
        self._cap = None
        self._frames = 0  # read since the last rewind

    def _open(self) -> None:
        cv2 = import_cv2()
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot read the video {self.path}")
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        fps = file_fps if 0 < file_fps <= 240 else self.fallback_fps
        self._interval = 1.0 / fps
        self._cap, self._frames = cap, 0

    def _read(self) -> Optional[np.ndarray]:
        cv2 = import_cv2()
        cap = self._cap
        if cap is None:
            raise CameraError(f"{self.name} is closed")
        ok, image = cap.read()
        if not ok and self._frames:
            # the end: start over (a file that cannot seek fails here and is reopened instead)
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._frames = 0
            ok, image = cap.read()
        if not ok or image is None:
            return None
        self._frames += 1
        return to_rgb(cv2, image)

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def video_path(arg: str) -> Path:
    """The file ``file:ARG`` names; ValueError unless OpenCV reads a frame from it."""
    if not arg:
        raise ValueError("file: needs a video, e.g. file:/home/pi/demo.mp4")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise ValueError(f"video file not found: {path}")
    cv2 = import_cv2()
    capture = cv2.VideoCapture(str(path))
    try:
        readable = capture.isOpened() and capture.read()[0]
    finally:
        capture.release()
    if not readable:
        raise ValueError(f"OpenCV cannot read a video from {path}: is it a video file?")
    return path
