"""The only module that imports OpenCV, lazily: the webcam and video-file sources need it, the
others run without it."""

from __future__ import annotations

import numpy as np

OPENCV_HINT = "pip install opencv-python-headless"


class OpenCVMissing(ImportError):
    """A webcam or video file was asked for and OpenCV is not installed."""


def import_cv2():
    """The ``cv2`` module; OpenCVMissing, saying what to install, when there is none."""
    try:
        import cv2
    except ImportError as e:
        raise OpenCVMissing(
            f"OpenCV is not installed ({e}): run `{OPENCV_HINT}` to use a webcam or a video "
            "file (the synthetic, folder: and browser cameras work without it)"
        ) from None
    return cv2


def to_rgb(cv2, image: np.ndarray) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or grey) as HxWx3 RGB."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
