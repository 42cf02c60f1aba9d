"""Frames pushed by the web page (JPEG, PNG or WebP), with no reader thread."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from server.hw.cameras.base import STALL_TIMEOUT, Camera

# What a browser may send. Pillow opens many more formats, some through external programs
# (EPS runs Ghostscript): bytes from the network only reach these decoders.
_BROWSER_FORMATS = ("JPEG", "PNG", "WEBP")
MAX_PUSH_BYTES = 2 * 1024 * 1024
MAX_PUSH_SIDE = 4096


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
