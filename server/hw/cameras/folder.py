"""Image files in a folder (recursively, sorted by relative path) played as a video, looping.

``IMAGE_FORMATS`` is the one list of image files the project reads from a folder: this camera
and the offline tools (``server.datasets``) both take exactly these.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

from server.hw.cameras.base import STALL_TIMEOUT, Camera, CameraError

log = logging.getLogger(__name__)

# file suffix -> the Pillow decoder allowed to open it: only these decoders ever see the bytes
IMAGE_FORMATS = {
    ".bmp": "BMP",
    ".gif": "GIF",
    ".jpeg": "JPEG",
    ".jpg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
IMAGE_SUFFIXES = frozenset(IMAGE_FORMATS)
DECODERS = tuple(sorted(set(IMAGE_FORMATS.values())))


def list_images(root: Path) -> List[Path]:
    """Image files under ``root``, recursively, sorted by relative path; hidden ones skipped."""
    found = []
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if path.suffix.lower() in IMAGE_SUFFIXES and not any(p.startswith(".") for p in parts):
            if path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _load_rgb(path: Path, size: Tuple[int, int]) -> np.ndarray:
    with Image.open(path, formats=DECODERS) as image:
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
        files = list_images(self.root)
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


def folder_path(arg: str) -> Path:
    """The folder ``folder:ARG`` names, resolved; ValueError unless it holds an image."""
    if not arg:
        raise ValueError("folder: needs a folder of images, e.g. folder:/home/pi/photos")
    path = Path(arg).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"image folder not found: {path}")
    if not list_images(path):
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ValueError(f"no images ({suffixes}) in the folder {path}")
    return path
