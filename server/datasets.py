"""Folders of images, one sub-folder per class: what the evaluation and training CLIs read."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Tuple

from PIL import Image, UnidentifiedImageError

from server.hw.cameras import IMAGE_SUFFIXES

log = logging.getLogger(__name__)


class DatasetError(Exception):
    """The folder cannot be used; the message says why."""


class ImageFolder(NamedTuple):
    """Class names (sorted) and, per class, its image files (sorted)."""

    root: Path
    classes: List[str]
    files: List[List[Path]]

    def __len__(self) -> int:
        return sum(len(f) for f in self.files)


def scan(root, classes: Optional[List[str]] = None, min_classes: int = 2) -> ImageFolder:
    """Lists ``root``'s class folders and their image files.

    Args:
      root: a folder with one sub-folder of images per class.
      classes: take exactly these class folders (an error names any that is missing).
      min_classes: fewer classes than this is an error.

    Raises:
      DatasetError: no such folder, too few classes, or a class folder without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    if classes is None:
        classes = sorted(
            p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    if len(classes) < min_classes:
        raise DatasetError(
            f"{root} has {len(classes)} class folder(s); at least {min_classes} are needed "
            "(one sub-folder of images per class)"
        )
    files = []
    for name in classes:
        folder = root / name
        if not folder.is_dir():
            raise DatasetError(f"{root} has no folder for class {name!r}")
        images = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise DatasetError(f"class folder {folder} holds no images")
        files.append(images)
    return ImageFolder(root, list(classes), files)


def load_rgb(path: Path) -> Optional[Image.Image]:
    """The image at ``path`` in RGB, or None (with one warning) when it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        log.warning("skipping %s: not a readable image (%s)", path, e)
        return None


def iter_images(folder: ImageFolder) -> Iterator[Tuple[int, Path, Image.Image]]:
    """(class index, path, RGB image) for every readable image, class by class."""
    for label, paths in enumerate(folder.files):
        for path in paths:
            image = load_rgb(path)
            if image is not None:
                yield label, path, image
