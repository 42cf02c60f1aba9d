"""Camera sources behind one interface, with latest-frame semantics and self-repair.

Every source hands out its newest RGB frame (``Camera.latest``): a slow consumer skips frames
instead of working through a backlog. The base class (``base``) owns the threads and the fault
handling; each source is one module. ``open_camera(spec)`` is the one factory, and ``KINDS``
below the one table of what a spec may say, which ``check_camera_spec`` reads too:

  ``0``, ``/dev/video0``   a V4L2/USB webcam through OpenCV (``webcam``)
  ``file:PATH``            a video file through OpenCV, looping, at the file's own rate (``file``)
  ``folder:PATH``          image files (recursively, sorted by relative path), looping (``folder``)
  ``synthetic``            a generated moving scene, numpy only (``synthetic``)
  ``browser``              JPEG/PNG/WebP frames pushed by the web page (``browser``)
  ``auto``                 the first webcam that delivers a frame, else ``synthetic`` (``auto``)

Only ``opencv`` imports OpenCV, lazily, so the server runs without it on the ``synthetic``,
``folder:`` and ``browser`` sources.
"""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional, Tuple

from server.hw.cameras.auto import open_auto
from server.hw.cameras.base import MONITOR_PERIOD, STALL_TIMEOUT, Camera, CameraError, Frame
from server.hw.cameras.browser import (
    MAX_PUSH_BYTES,
    MAX_PUSH_SIDE,
    BrowserCamera,
    decode_browser_frame,
)
from server.hw.cameras.file import VideoFileCamera, video_path
from server.hw.cameras.folder import IMAGE_FORMATS, IMAGE_SUFFIXES, FolderCamera, folder_path
from server.hw.cameras.opencv import OPENCV_HINT, OpenCVMissing, import_cv2
from server.hw.cameras.synthetic import SyntheticCamera
from server.hw.cameras.webcam import V4L2Camera, video_devices

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "KINDS",
    "MAX_PUSH_BYTES",
    "MAX_PUSH_SIDE",
    "MONITOR_PERIOD",
    "OPENCV_HINT",
    "STALL_TIMEOUT",
    "BrowserCamera",
    "Camera",
    "CameraError",
    "CameraKind",
    "FolderCamera",
    "Frame",
    "OpenCVMissing",
    "SyntheticCamera",
    "V4L2Camera",
    "VideoFileCamera",
    "check_camera_spec",
    "decode_browser_frame",
    "open_camera",
    "video_devices",
]


class Options(NamedTuple):
    """What ``open_camera`` hands every kind's opener besides the spec's argument."""

    fps: float
    size: Tuple[int, int]
    stall_timeout: float
    devices: Callable[[], List[str]]


def _always(arg: str) -> bool:
    return True


class CameraKind(NamedTuple):
    """One kind of camera in the spec grammar.

    Attributes:
      written: how the kind is written, for the message that lists every kind.
      parse: the stripped spec -> the kind's argument ("" for none), or None: another kind.
      open: (argument, options) -> an unstarted camera; a ValueError says what to fix.
      check: whether ``check_camera_spec`` accepts the argument without opening anything (the
        device or path itself may be missing until the camera opens).
    """

    written: str
    parse: Callable[[str], Optional[str]]
    open: Callable[[str, Options], Camera]
    check: Callable[[str], bool] = _always


def _named(name: str) -> Callable[[str], Optional[str]]:
    return lambda spec: "" if spec == name else None


def _prefixed(prefix: str) -> Callable[[str], Optional[str]]:
    def parse(spec: str) -> Optional[str]:
        kind, colon, arg = spec.partition(":")
        return arg if colon and kind == prefix else None

    return parse


def _webcam_device(spec: str) -> Optional[str]:
    """``0`` or ``/dev/...``, either also after ``v4l2:``."""
    kind, colon, arg = spec.partition(":")
    device = arg if colon and kind == "v4l2" else spec
    return device if device.isdigit() or device.startswith("/dev/") else None


def _open_auto(arg: str, o: Options) -> Camera:
    return open_auto(fps=o.fps, size=o.size, stall_timeout=o.stall_timeout, devices=o.devices)


def _open_synthetic(arg: str, o: Options) -> Camera:
    return SyntheticCamera(fps=o.fps, size=o.size, stall_timeout=o.stall_timeout)


def _open_browser(arg: str, o: Options) -> Camera:
    return BrowserCamera(stall_timeout=o.stall_timeout)


def _open_webcam(device: str, o: Options) -> Camera:
    import_cv2()  # OpenCVMissing now, not in the reader thread
    number_or_path = int(device) if device.isdigit() else device
    return V4L2Camera(number_or_path, fps=o.fps, size=o.size, stall_timeout=o.stall_timeout)


def _open_file(arg: str, o: Options) -> Camera:
    return VideoFileCamera(video_path(arg), fps=o.fps, stall_timeout=o.stall_timeout)


def _open_folder(arg: str, o: Options) -> Camera:
    # FolderCamera is looked up here at call time: tests/reliability/faulty_server.py swaps in
    # a subclass that injects faults by assigning server.hw.cameras.FolderCamera
    return FolderCamera(folder_path(arg), fps=o.fps, size=o.size, stall_timeout=o.stall_timeout)


KINDS: Tuple[CameraKind, ...] = (
    CameraKind("auto", _named("auto"), _open_auto),
    CameraKind("synthetic", _named("synthetic"), _open_synthetic),
    CameraKind("browser", _named("browser"), _open_browser),
    CameraKind("a webcam number (0) or device (/dev/video0)", _webcam_device, _open_webcam),
    CameraKind("file:VIDEO", _prefixed("file"), _open_file, check=bool),
    CameraKind("folder:IMAGES", _prefixed("folder"), _open_folder, check=bool),
)
_USE = "use " + ", ".join(k.written for k in KINDS[:-1]) + " or " + KINDS[-1].written


def _kind_of(spec: str) -> Optional[Tuple[CameraKind, str]]:
    """The first kind that ``spec`` (stripped) parses as, with its argument; else None."""
    for kind in KINDS:
        arg = kind.parse(spec)
        if arg is not None:
            return kind, arg
    return None


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
    if not fps > 0:
        raise ValueError(f"the camera fps must be positive, not {fps}")
    if len(size) != 2 or min(int(size[0]), int(size[1])) <= 0:
        raise ValueError(f"the camera size must be (width, height) in pixels, not {size}")
    found = _kind_of((spec or "").strip())
    if found is None:
        raise ValueError(f"unknown camera {spec!r}: {_USE}")
    kind, arg = found
    return kind.open(arg, Options(fps, size, stall_timeout, devices))


def check_camera_spec(spec) -> str:
    """``spec``, stripped, if it names a kind of camera that ``open_camera`` knows (the device
    or path itself may be missing until the camera opens); ValueError otherwise."""
    text = spec.strip() if isinstance(spec, str) else ""
    found = _kind_of(text)
    if found is None or not found[0].check(found[1]):
        raise ValueError(f"unknown camera {str(spec)[:80]!r}: {_USE}")
    return text
