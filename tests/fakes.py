"""Fakes injected through the same interfaces the real parts use."""

from __future__ import annotations

import threading
import time
from typing import NamedTuple, Optional

import numpy as np


class Frame(NamedTuple):
    index: int
    image: np.ndarray
    time: float


class FakeCamera:
    """A camera whose frames the test puts in by hand (``show``), with latest-frame semantics."""

    name = "fake"
    notice = ""

    def __init__(self):
        self.status = "online"
        self.status_reason = ""
        self.on_status = None
        self.started = False
        self._cond = threading.Condition()
        self._frame: Optional[Frame] = None

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def show(self, image: np.ndarray) -> int:
        with self._cond:
            index = self._frame.index + 1 if self._frame else 0
            self._frame = Frame(index, image, time.monotonic())
            self._cond.notify_all()
            return index

    def latest(self, after: int = -1, timeout: float = 1.0) -> Optional[Frame]:
        with self._cond:
            ok = self._cond.wait_for(lambda: self._frame and self._frame.index > after, timeout)
            return self._frame if ok else None

    def set_status(self, status: str, reason: str = "") -> None:
        self.status, self.status_reason = status, reason
        if self.on_status:
            self.on_status(status, reason)
