"""Camera sources behind one interface, with latest-frame semantics and self-repair.

Every source hands out its newest RGB frame (``Camera.latest``): a slow consumer skips frames
instead of working through a backlog. The base class owns the threads and the fault handling
(reads that fail, hang or freeze; unplug and replug); a source implements three small hooks,
``_open()``, ``_read()`` and ``_close()``. ``open_camera(spec)`` is the one factory:

  ``0``, ``/dev/video0``   a V4L2/USB webcam through OpenCV
  ``file:PATH``            a video file through OpenCV, looping, at the file's own rate
  ``folder:PATH``          image files (recursively, sorted by relative path), looping
  ``synthetic``            a generated moving scene, numpy only
  ``browser``              JPEG/PNG frames pushed by the web page (``BrowserCamera.push``)
  ``auto``                 the first webcam that delivers a frame, else ``synthetic``

This is the only module that imports OpenCV, lazily, so the server runs without it on the
``synthetic``, ``folder:`` and ``browser`` sources.
"""

from __future__ import annotations

import collections
import glob
import io
import logging
import math
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
_FOLDER_FORMATS = ("JPEG", "PNG", "BMP", "WEBP")
# What a browser may send. Pillow opens many more formats, some through external programs
# (EPS runs Ghostscript): bytes from the network only reach these decoders.
_BROWSER_FORMATS = ("JPEG", "PNG", "WEBP")
MAX_PUSH_BYTES = 2 * 1024 * 1024
MAX_PUSH_SIDE = 4096

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
SYNTHETIC_PERIOD = 3.0  # seconds per turn of the synthetic scene's disc

OPENCV_HINT = "pip install opencv-python-headless"


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


class OpenCVMissing(ImportError):
    """A webcam or video file was asked for and OpenCV is not installed."""


def _import_cv2():
    try:
        import cv2
    except ImportError as e:
        raise OpenCVMissing(
            f"OpenCV is not installed ({e}): run `{OPENCV_HINT}` to use a webcam or a video "
            "file (the synthetic, folder: and browser cameras work without it)"
        ) from None
    return cv2


def _reason(error: BaseException, context: str) -> str:
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
                    reason = _reason(error, f"cannot open {self.name}")
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
                reason = _reason(error, "camera read failed")
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


# -- sources -----------------------------------------------------------------------------------


def _to_rgb(cv2, image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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
        cv2 = _import_cv2()
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
        cv2 = _import_cv2()
        cap = self._cap
        if cap is None:
            raise CameraError(f"{self.name} is closed")
        ok, image = cap.read()
        if not ok or image is None:
            if not os.path.exists(self.path):
                raise CameraError(f"camera unplugged: {self.path}")
            return None
        return _to_rgb(cv2, image)

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


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
        cv2 = _import_cv2()
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot read the video {self.path}")
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        fps = file_fps if 0 < file_fps <= 240 else self.fallback_fps
        self._interval = 1.0 / fps
        self._cap, self._frames = cap, 0

    def _read(self) -> Optional[np.ndarray]:
        cv2 = _import_cv2()
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
        return _to_rgb(cv2, image)

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def _list_images(root: Path) -> List[Path]:
    """Image files under ``root``, recursively, sorted by relative path; hidden ones skipped."""
    found = []
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if path.suffix.lower() in IMAGE_SUFFIXES and not any(p.startswith(".") for p in parts):
            if path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _load_rgb(path: Path, size: Tuple[int, int]) -> np.ndarray:
    with Image.open(path, formats=_FOLDER_FORMATS) as image:
        image.draft("RGB", tuple(size))  # a big JPEG decodes at a smaller scale, still >= size
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGB"))


class FolderCamera(Camera):
    """Image files played as a video at ``fps``, looping; decoded with Pillow.

    Files are found recursively and sorted by relative path, so sub-folders ``a/`` and ``b/``
    play all of ``a`` and then all of ``b``. Frames keep each file's size (a large JPEG is
    decoded at the smallest scale that is still at least ``size``). An unreadable file is
    skipped with one warning.
    """

    detect_frozen = False  # a folder may hold one image, or the same image twice
    cache_bytes = 256 * 1024 * 1024  # decoded frames kept, so replaying costs no decoding

    def __init__(
        self,
        root: Union[str, Path],  # noqa: UP007
        *,
        fps: float = 30.0,
        size: Tuple[int, int] = (640, 480),
        stall_timeout: float = STALL_TIMEOUT,
    ):
        self.root = Path(root)
        super().__init__(f"folder:{self.root}", fps=fps, stall_timeout=stall_timeout)
        self.size = tuple(size)
        self._files: List[Path] = []
        self._position = 0
        self._unreadable: set = set()
        self._decoded: Dict[Path, np.ndarray] = {}
        self._decoded_bytes = 0

    def _open(self) -> None:
        files = _list_images(self.root)
        if not files:
            raise CameraError(f"no images in {self.root}")
        if files != self._files:
            self._files, self._position = files, 0
            self._decoded, self._decoded_bytes = {}, 0

    def _read(self) -> Optional[np.ndarray]:
        for _ in range(len(self._files)):
            path = self._files[self._position]
            self._position = (self._position + 1) % len(self._files)
            if path in self._unreadable:
                continue
            cached = self._decoded.get(path)
            if cached is not None:
                return cached
            try:
                image = _load_rgb(path, self.size)
                if self._decoded_bytes + image.nbytes <= self.cache_bytes:
                    image.setflags(write=False)
                    self._decoded[path] = image
                    self._decoded_bytes += image.nbytes
                return image
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                self._unreadable.add(path)
                log.warning("skipping the unreadable image %s: %s", path, e)
        raise CameraError(f"none of the images in {self.root} can be read")


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


def decode_browser_frame(data: bytes) -> np.ndarray:
    """Decodes a JPEG, PNG or WebP frame sent by the web page into an HxWx3 uint8 RGB array.

    Raises:
      ValueError: not such an image, more than 2 MB, or more than 4096 pixels on a side.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"a browser frame must be bytes, not {type(data).__name__}")
    if len(data) > MAX_PUSH_BYTES:
        raise ValueError(f"browser frame too large: {len(data) / 1e6:.1f} MB (at most 2 MB)")
    try:
        image = Image.open(io.BytesIO(bytes(data)), formats=_BROWSER_FORMATS)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"browser frame is not a JPEG, PNG or WebP image ({e})") from None
    width, height = image.size
    if width > MAX_PUSH_SIDE or height > MAX_PUSH_SIDE:
        raise ValueError(
            f"browser frame too large: {width}x{height} pixels (at most "
            f"{MAX_PUSH_SIDE}x{MAX_PUSH_SIDE})"
        )
    try:
        return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"browser frame is not a readable image ({e})") from None


class BrowserCamera(Camera):
    """Frames pushed by the web page (``push``); no reader thread.

    ``start()`` only starts the monitor, which reports the camera offline when the page has
    sent nothing for ``stall_timeout``. Pushes after ``stop()`` are ignored.
    """

    detect_frozen = False
    uses_reader = False

    def __init__(self, *, stall_timeout: float = STALL_TIMEOUT):
        super().__init__("browser", stall_timeout=stall_timeout)
        self.status_reason = "waiting for the browser to send frames"

    def push(self, data: bytes) -> None:
        """Makes one encoded image from the page the latest frame.

        Raises:
          ValueError: the bytes are not an acceptable image; the previous frame stays latest.
        """
        self._publish(decode_browser_frame(data))

    def _silence_reason(self) -> str:
        return (
            f"no frame from the browser for {self.stall_timeout:g} s: open the kiosk page "
            "and allow it to use the camera"
        )


# -- the factory -------------------------------------------------------------------------------


def video_devices(dev: str = "/dev") -> List[str]:
    """V4L2 device nodes in numeric order, e.g. ``["/dev/video0", "/dev/video2"]``."""

    def number(path: str) -> Tuple[int, str]:
        match = re.search(r"(\d+)$", path)
        return (int(match.group(1)) if match else 1 << 30, path)

    return sorted(glob.glob(os.path.join(dev, "video*")), key=number)


_SPECS = (
    "use auto, synthetic, browser, a webcam number (0) or device (/dev/video0), "
    "file:VIDEO or folder:IMAGES"
)


def open_camera(
    spec: str,
    *,
    fps: float = 30.0,
    size: Tuple[int, int] = (640, 480),
    stall_timeout: float = STALL_TIMEOUT,
    devices: Callable[[], List[str]] = video_devices,
) -> Camera:
    """Opens the camera that ``spec`` names; call ``start()`` on it to get frames.

    Args:
      spec: ``auto``, ``synthetic``, ``browser``, ``0`` / ``/dev/video0`` (also
        ``v4l2:0``), ``file:PATH`` or ``folder:PATH``.
      fps: the rate to request from a webcam, to play a folder or the synthetic scene at, and
        to play a video file at when it does not give its own.
      size: the (width, height) to request from a webcam and to generate.
      stall_timeout: seconds without a new frame before the camera counts as offline.
      devices: lists the V4L2 devices for ``auto`` (tests inject fakes).

    Raises:
      ValueError: an unknown spec, a missing or unreadable file or folder, bad fps or size;
        the message is one line that says what to fix.
      OpenCVMissing: a webcam or video file is asked for and OpenCV is not installed.
    """
    given, spec = spec, (spec or "").strip()  # the kinds below: also in check_camera_spec
    if not fps > 0:
        raise ValueError(f"the camera fps must be positive, not {fps}")
    if len(size) != 2 or min(int(size[0]), int(size[1])) <= 0:
        raise ValueError(f"the camera size must be (width, height) in pixels, not {size}")
    common = {"stall_timeout": stall_timeout}
    kind, colon, arg = spec.partition(":")
    if spec == "auto":
        return _open_auto(fps=fps, size=size, devices=devices, **common)
    if spec == "synthetic":
        return SyntheticCamera(fps=fps, size=size, **common)
    if spec == "browser":
        return BrowserCamera(**common)
    if kind == "v4l2" and colon:
        spec = arg
    if spec.isdigit() or spec.startswith("/dev/"):
        _import_cv2()
        device = int(spec) if spec.isdigit() else spec
        return V4L2Camera(device, fps=fps, size=size, **common)
    if kind == "file" and colon:
        return VideoFileCamera(_video_path(arg), fps=fps, **common)
    if kind == "folder" and colon:
        return FolderCamera(_folder_path(arg), fps=fps, size=size, **common)
    raise ValueError(f"unknown camera {given!r}: {_SPECS}")


def check_camera_spec(spec) -> str:
    """``spec``, stripped, if it names a kind of camera that ``open_camera`` knows (the device
    or path itself may be missing until the camera opens); ValueError otherwise. The same
    grammar as ``open_camera``'s: a new kind of camera goes into both."""
    text = spec.strip() if isinstance(spec, str) else ""
    kind, colon, arg = text.partition(":")
    device = arg if kind == "v4l2" and colon else text
    if (
        text in ("auto", "synthetic", "browser")
        or device.isdigit()
        or device.startswith("/dev/")
        or (kind in ("file", "folder") and colon and arg)
    ):
        return text
    raise ValueError(f"unknown camera {str(spec)[:80]!r}: {_SPECS}")


def _video_path(arg: str) -> Path:
    if not arg:
        raise ValueError("file: needs a video, e.g. file:/home/pi/demo.mp4")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise ValueError(f"video file not found: {path}")
    cv2 = _import_cv2()
    capture = cv2.VideoCapture(str(path))
    try:
        readable = capture.isOpened() and capture.read()[0]
    finally:
        capture.release()
    if not readable:
        raise ValueError(f"OpenCV cannot read a video from {path}: is it a video file?")
    return path


def _folder_path(arg: str) -> Path:
    if not arg:
        raise ValueError("folder: needs a folder of images, e.g. folder:/home/pi/photos")
    path = Path(arg).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"image folder not found: {path}")
    if not _list_images(path):
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ValueError(f"no images ({suffixes}) in the folder {path}")
    return path


def _open_auto(
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
            _import_cv2()
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
            outcome.append(_reason(e, "cannot open it"))

    thread = threading.Thread(target=attempt, name="camera-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    camera._safe_close()
    return outcome[0] if outcome else f"no frame within {timeout:g} s"
