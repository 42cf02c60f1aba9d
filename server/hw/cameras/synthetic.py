"""A generated moving scene, numpy only: for demos and tests without a camera."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from server.hw.cameras.base import STALL_TIMEOUT, Camera

SYNTHETIC_PERIOD = 3.0  # seconds per turn of the synthetic scene's disc


class SyntheticCamera(Camera):
    """A generated scene: a disc circling over a colour gradient, at ``fps`` and ``size``.

    For demos and tests without a camera; every frame differs from the last.
    """

    detect_frozen = False

    def __init__(
        self,
        *,
        fps: float = 30.0,
        size: Tuple[int, int] = (640, 480),
        stall_timeout: float = STALL_TIMEOUT,
    ):
        super().__init__("synthetic", fps=fps, stall_timeout=stall_timeout)
        self.size = (int(size[0]), int(size[1]))
        self._frame_rate = fps
        self._tick = 0
        width, height = self.size
        background = np.empty((height, width, 3), np.uint8)
        background[..., 0] = np.linspace(40, 220, width, dtype=np.float32)[np.newaxis, :]
        background[..., 1] = 90
        background[..., 2] = np.linspace(220, 40, height, dtype=np.float32)[:, np.newaxis]
        self._background = background

    def _open(self) -> None:
        pass

    def _read(self) -> Optional[np.ndarray]:
        width, height = self.size
        angle = 2 * math.pi * self._tick / (self._frame_rate * SYNTHETIC_PERIOD)
        self._tick += 1
        orbit, radius = min(width, height) / 3, max(2.0, min(width, height) / 8)
        cx, cy = width / 2 + orbit * math.cos(angle), height / 2 + orbit * math.sin(angle)
        x0, x1 = max(0, int(cx - radius)), min(width, int(cx + radius) + 1)
        y0, y1 = max(0, int(cy - radius)), min(height, int(cy + radius) + 1)
        ys, xs = np.ogrid[y0:y1, x0:x1]
        disc = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
        image = self._background.copy()
        image[y0:y1, x0:x1][disc] = (255, 210, 0)
        return image
