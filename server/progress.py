"""A small progress bar on stderr for the command-line tools (no dependency)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """``with ProgressBar(total, label) as bar: bar.update()``; redraws at most 5 times a second."""

    def __init__(self, total: int, label: str, stream=None, width: int = 30):
        self.total, self.label, self.width = max(total, 1), label, width
        self.stream = stream or sys.stderr
        self.done = 0
        self._start = self._drawn = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn >= 0.2 or self.done >= self.total:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        filled = int(self.width * min(self.done, self.total) / self.total)
        rate = self.done / max(now - self._start, 1e-9)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:.1f}/s")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()
