"""The camera base: latest-frame semantics, the reader and monitor threads, self-repair.

A source subclasses ``Camera`` and implements three small hooks (``_open``, ``_read``,
``_close``); everything about threads and faults (reads that fail, hang or freeze; unplug and
replug) lives here, once.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np

log = logging.getLogger(__name__)

RETRY_FIRST = 0.5  # seconds before reopening after a failure; doubles up to RETRY_MAX
RETRY_MAX = 2.0
FPS_WINDOW = 2.0  # seconds over which ``Camera.fps`` is measured
# A fault is shown within 3 s: a failed read at once; silence, a hang or a frozen image after
# STALL_TIMEOUT, noticed within MONITOR_PERIOD, leaving ~0.8 s to tell every client.
STALL_TIMEOUT = 2.0
MONITOR_PERIOD = 0.2
OPEN_TIMEOUT = 5.0  # seconds an open may take (a webcam negotiating its format) before it hangs
JOIN_TIMEOUT = 2.0  # per thread, in stop()
UNTAKEN_WAIT = 0.5  # seconds a paced source waits for its last frame to be taken


class Frame(NamedTuple):
    """One camera frame.

    Attributes:
      index: increases by 1 for every new frame the camera delivers (0 for the first).
      image: HxWx3 uint8 RGB array, read-only (copy it before drawing on it).
      time: ``time.monotonic()`` when it was captured.
    """

    index: int
    image: np.ndarray
    time: float


class CameraError(RuntimeError):
    """A source hook failed; the message is what the user sees as the status reason."""


def failure_reason(error: BaseException, context: str) -> str:
    """A status sentence for a failed hook: a CameraError speaks for itself."""
    if isinstance(error, CameraError):
        return str(error)
    return f"{context}: {type(error).__name__}: {error}"


class Camera:
    """A frame source with latest-frame semantics that repairs itself.

    ``start()`` runs two daemon threads. ``camera-reader`` calls the hooks in a loop and
    publishes every new image. ``camera-monitor`` looks every 0.2 s at when the last frame
    arrived and at how long the current hook call has been running, so that a read stuck in
    the driver is noticed although the reader itself is stuck. A read that raises or returns
    None (an unplugged webcam) turns the status ``offline`` at once; one that blocks, a frozen
    image or silence do after ``stall_timeout`` (2 s) plus up to 0.2 s, so every fault is
    shown within 3 s. An open may block for ``OPEN_TIMEOUT`` (5 s) before it counts as hung.
    The source is reopened with backoff (0.5 s doubling to 2 s) and turns ``online`` again
    with its next frame, so a replugged webcam resumes without a restart.

    A blocked hook gets ``_close()`` called from the monitor, which usually unblocks it; the
    monitor starts a new reader once the old one has exited. A reader that stays stuck even
    so is abandoned (logged) and replaced, but only one abandoned thread is ever left alive.

    Subclasses implement the hooks:

    * ``_open()`` acquires the device, or raises (a ``CameraError`` with a sentence for the
      user) when it cannot.
    * ``_read()`` returns the next HxWx3 uint8 RGB image, or None or raises on failure. It may
      block (a webcam paces itself); a source built with ``fps`` is paced by the reader.
    * ``_close()`` releases the device. It must be idempotent and safe to call from another
      thread while ``_read()`` blocks.

    Attributes:
      name: where frames come from, e.g. ``"v4l2:/dev/video0"``.
      status: ``"starting"``, ``"online"`` or ``"offline"``.
      status_reason: a sentence for the user, e.g. ``"no frame for 2 s"``; ``""`` while online.
      notice: something to tell every client (``auto`` fell back to ``synthetic``), else ``""``.
      on_status: called with ``(status, reason)`` on every change, from a camera thread (or the
        thread calling ``stop()`` or ``push()``), one call at a time; keep it quick.
      stall_timeout: seconds without a new frame before the camera counts as offline.
      detect_frozen: whether a byte-identical image for ``stall_timeout`` is a fault; off for
        sources that legitimately repeat an image.
    """

    detect_frozen = True
    uses_reader = True  # False: frames arrive from outside (BrowserCamera.push)

    def __init__(self, name: str, *, fps: float = 0.0, stall_timeout: float = STALL_TIMEOUT):
        self.name = name
        self.status = "starting"
        self.status_reason = f"opening {name}"
        self.notice = ""
        self.on_status: Optional[Callable[[str, str], None]] = None
        self.stall_timeout = float(stall_timeout)
        self._interval = 1.0 / fps if fps > 0 else 0.0
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._frame_taken = threading.Condition(self._lock)
        self._taken = -1  # index of the newest frame ``latest()`` has handed out
        self._status_lock = threading.RLock()
        self._stopping = threading.Event()
        self._running = False
        self._frame: Optional[Frame] = None
        self._frame_times: collections.deque = collections.deque(maxlen=512)
        self._last_frame_time = time.monotonic()
        self._busy_since: Optional[float] = None
        self._busy_allowance = 0.0  # seconds the current hook call may take before it hangs
        self._problem = ""
        self._generation = 0
        self._reader: Optional[threading.Thread] = None
        self._monitor: Optional[threading.Thread] = None
        self._hung: Optional[threading.Thread] = None
        self._hung_since = 0.0
        self._abandoned: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.status}>"

    # -- the hooks a source implements ---------------------------------------------------------

    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> Optional[np.ndarray]:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    # -- public API ----------------------------------------------------------------------------

    @property
    def fps(self) -> float:
        """New frames per second over the last ~2 s (0.0 when none came)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._frame_times if now - t <= FPS_WINDOW]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(now - recent[0], 1e-6)

    def start(self) -> None:
        """Starts the reader and monitor threads; does nothing when already started."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._stopping.clear()
            self._last_frame_time = time.monotonic()
            self._problem = ""
            self._hung = None
            monitor = threading.Thread(target=self._run_monitor, name="camera-monitor", daemon=True)
            self._monitor = monitor
        self._set_status("starting", self.notice or f"opening {self.name}")
        if self.uses_reader:
            self._start_reader()
        monitor.start()

    def stop(self) -> None:
        """Stops and joins the camera's threads (at most ~2 s each) and releases the device."""
        with self._lock:
            self._running = False
            self._stopping.set()
            self._generation += 1  # a reader that wakes up later touches nothing
            self._frame_taken.notify_all()
            monitor, readers = self._monitor, [self._reader, self._hung]
        me = threading.current_thread()
        if monitor is not None and monitor is not me:
            monitor.join(JOIN_TIMEOUT)
        for reader in {t for t in readers if t is not None and t is not me}:
            reader.join(JOIN_TIMEOUT / 2)
            if reader.is_alive():
                self._safe_close()  # unblocks a read that waits on the device
                reader.join(JOIN_TIMEOUT / 2)
            if reader.is_alive():
                log.warning("%s: the reader thread did not stop; leaving it behind", self.name)
        self._safe_close()
        self._set_status("offline", "camera stopped")

    def latest(self, after: int = -1, timeout: float = 1.0) -> Optional[Frame]:
        """The newest frame whose index is greater than ``after``.

        Args:
          after: the index of the last frame the caller has seen (-1: any frame will do).
          timeout: seconds to wait for such a frame.

        Returns:
          The newest frame (frames in between are skipped), or None on timeout.
        """
        with self._new_frame:
            self._new_frame.wait_for(
                lambda: self._frame is not None and self._frame.index > after, max(0.0, timeout)
            )
            frame = self._frame
            if frame is None or frame.index <= after:
                return None
            if frame.index > self._taken:
                self._taken = frame.index
                self._frame_taken.notify_all()
        return frame

    def describe(self) -> dict:
        """Name, status, reason, notice and measured fps, for the status page."""
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.status_reason,
            "notice": self.notice,
            "fps": round(self.fps, 1),
        }

    # -- publishing and status -----------------------------------------------------------------

    def _publish(self, image: np.ndarray) -> None:
        image.setflags(write=False)  # shared with every consumer, and compared for freezes
        now = time.monotonic()
        with self._new_frame:
            if self._stopping.is_set():
                return  # a frame racing stop() would turn a stopped camera online again
            index = self._frame.index + 1 if self._frame is not None else 0
            self._frame = Frame(index, image, now)
            self._frame_times.append(now)
            self._last_frame_time = now
            self._problem = ""
            self._new_frame.notify_all()
        if self.status != "online":
            self._set_status("online", "")

    def _set_status(self, status: str, reason: str) -> None:
        with self._status_lock:  # one callback at a time, in the order of the changes
            if status == self.status and reason == self.status_reason:
                return
            self.status, self.status_reason = status, reason
            if status == "offline":
                log.warning("camera %s offline: %s", self.name, reason)
            else:
                log.info("camera %s %s", self.name, status)
            callback = self.on_status
            if callback is not None:
                try:
                    callback(status, reason)
                except Exception:
                    log.exception("camera status callback failed")

    def _silence_reason(self) -> str:
        return f"no frame for {self.stall_timeout:g} s"

    def _safe_close(self) -> None:
        try:
            self._close()
        except Exception as e:
            log.debug("%s: closing failed: %s", self.name, e)

    @staticmethod
    def _checked(image) -> np.ndarray:
        if not (
            isinstance(image, np.ndarray)
            and image.ndim == 3
            and image.shape[2] == 3
            and image.dtype == np.uint8
        ):
            shape = getattr(image, "shape", type(image).__name__)
            raise CameraError(f"the camera produced {shape}, not an HxWx3 uint8 RGB image")
        return image

    # -- the reader ----------------------------------------------------------------------------

    def _start_reader(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            reader = threading.Thread(
                target=self._run_reader, args=(self._generation,), name="camera-reader", daemon=True
            )
            self._reader = reader
        reader.start()

    def _call_hook(
        self, hook: Callable, generation: int, allowance: float
    ) -> Tuple[bool, object, Optional[Exception]]:
        """Runs a hook where the monitor can see it; returns (still current, result, error).

        The monitor counts the call as hung once it has run for ``allowance`` seconds.
        """
        with self._lock:
            self._busy_since, self._busy_allowance = time.monotonic(), allowance
        result, error = None, None
        try:
            result = hook()
        except Exception as e:
            error = e
        with self._lock:
            current = generation == self._generation
            if current:
                self._busy_since = None
        return current, result, error

    def _run_reader(self, generation: int) -> None:
        try:
            self._read_loop(generation)
        finally:
            with self._lock:
                replaced = self._reader is not threading.current_thread()
            if not replaced:  # a replacement may own the device by now: leave it alone
                self._safe_close()

    def _read_loop(self, generation: int) -> None:
        opened = False
        delay = RETRY_FIRST
        logged = ""
        previous: Optional[np.ndarray] = None
        frozen_since: Optional[float] = None
        due = time.monotonic()
        while not self._stopping.is_set():
            if not opened:
                allowance = max(OPEN_TIMEOUT, self.stall_timeout)
                current, _, error = self._call_hook(self._open, generation, allowance)
                if not current:
                    return
                if error is not None:
                    reason = failure_reason(error, f"cannot open {self.name}")
                    with self._lock:
                        self._problem = reason
                    self._set_status("offline", reason)
                    self._safe_close()
                    delay = self._backoff(delay)
                    continue
                opened = True
            current, image, error = self._call_hook(self._read, generation, self.stall_timeout)
            if not current:
                return
            if error is None and image is None:
                error = CameraError(f"{self.name} returned no frame")
            if error is None:
                try:
                    image = self._checked(image)
                except CameraError as e:
                    error = e
            if error is None and self.detect_frozen:
                now = time.monotonic()
                if previous is not None and np.array_equal(image, previous):
                    frozen_since = frozen_since or now
                    frozen = f"the camera image is frozen (unchanged for {self.stall_timeout:g} s)"
                    with self._lock:
                        self._problem = frozen
                    if now - frozen_since <= self.stall_timeout:
                        due = self._pace(due)
                        continue  # the same picture again is not a new frame
                    error = CameraError(frozen)
                else:
                    previous, frozen_since = image, None
            if error is not None:
                reason = failure_reason(error, "camera read failed")
                with self._lock:
                    self._problem = reason
                # the device is gone (or frozen): say so now, not when the silence is noticed
                self._set_status("offline", reason)
                if reason != logged:
                    log.warning("%s: %s; reopening it", self.name, reason)
                    logged = reason
                self._safe_close()
                opened = False
                delay = self._backoff(delay)
                continue
            delay, logged = RETRY_FIRST, ""
            self._publish(image)
            due = self._pace(due)

    def _backoff(self, delay: float) -> float:
        self._stopping.wait(delay)
        return min(delay * 2, RETRY_MAX)

    def _pace(self, due: float) -> float:
        """Waits for the next frame time of a paced source; returns it.

        A paced source also waits (up to ``UNTAKEN_WAIT``) until its last frame has been
        taken: a folder played at 1000 fps then runs at its reader's rate instead of taking
        the CPU from it for frames nobody sees, and still publishes often enough for the
        monitor to see it alive.
        """
        if not self._interval:
            return due
        due += self._interval
        wait = due - time.monotonic()
        if wait > 0:
            self._stopping.wait(wait)
        elif wait < -self._interval:
            due = time.monotonic()  # fell behind: carry on from now, no burst to catch up
        with self._frame_taken:
            self._frame_taken.wait_for(
                lambda: (
                    self._stopping.is_set()
                    or self._frame is None
                    or self._taken >= self._frame.index
                ),
                UNTAKEN_WAIT,
            )
        return due

    # -- the monitor ---------------------------------------------------------------------------

    def _run_monitor(self) -> None:
        while not self._stopping.wait(MONITOR_PERIOD):
            now = time.monotonic()
            if self.uses_reader:
                self._watch_reader(now)
            with self._lock:
                silent = now - self._last_frame_time
                problem = self._problem
                busy, allowance = self._busy_since is not None, self._busy_allowance
                if not problem and busy:
                    problem = f"{self.name} stopped responding"
            # a slow slideshow (folder at 0.2 fps) is not a stall, nor a webcam slow to open
            limit = max(self.stall_timeout, 2 * self._interval, allowance if busy else 0.0)
            if silent > limit:
                self._set_status("offline", problem or self._silence_reason())

    def _watch_reader(self, now: float) -> None:
        """Unblocks a hung reader and replaces it, leaving at most one thread stuck."""
        with self._lock:
            busy_since, allowance, reader = self._busy_since, self._busy_allowance, self._reader
            hung = self._hung is None and busy_since is not None
            hung = hung and now - busy_since > allowance
            if hung:
                self._generation += 1  # the stuck reader will touch nothing when it returns
                self._busy_since = None
                self._hung, self._hung_since = reader, now
                self._problem = f"{self.name} stopped responding (no frame for {allowance:g} s)"
        if hung:
            repeat = self.status == "offline" and self.status_reason == self._problem
            log.log(
                logging.DEBUG if repeat else logging.WARNING,
                "%s: a read hangs; closing the device to unblock it",
                self.name,
            )
            self._set_status("offline", self._problem)
            self._safe_close()
        elif self._hung is not None:
            self._replace_hung_reader(now)
        elif reader is not None and not reader.is_alive() and not self._stopping.is_set():
            log.error("%s: the reader thread ended unexpectedly; starting a new one", self.name)
            self._start_reader()

    def _replace_hung_reader(self, now: float) -> None:
        hung = self._hung
        if hung is None:
            return
        if not hung.is_alive():
            self._hung = None
            self._start_reader()
        elif now - self._hung_since > self.stall_timeout:
            if self._abandoned is not None and self._abandoned.is_alive():
                return  # one thread is already stuck in the driver: wait rather than pile up
            log.error(
                "%s: the reader is stuck in the driver even after closing the device; "
                "abandoning that thread and starting a new reader",
                self.name,
            )
            self._abandoned, self._hung = hung, None
            self._start_reader()
