"""What the offline tools (``train``, ``evaluate``, ``benchmark``) share: the flags that find the
extractor, embedding a folder of photos once, the held-out split, and how a tool fails."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Tuple

import numpy as np
from PIL import Image

from server import datasets, models
from server.hw import runtime as rt
from server.hw.extractor import Extractor, open_extractor
from server.progress import ProgressBar
from server.settings import TPU_MODES

ERRORS = (datasets.DatasetError, models.ModelError, rt.EdgeTpuUnavailable, rt.NoRuntime)
"""What a tool reports as one ``error:`` line (``fail``) instead of a traceback."""


def add_extractor_arguments(p: argparse.ArgumentParser) -> None:
    """--tpu, --model, --data-dir and --mirror: where the command-line tools find the model."""
    p.add_argument("--tpu", choices=TPU_MODES, default="auto")
    p.add_argument("--model", type=Path, help="the CPU extractor model file")
    p.add_argument("--data-dir", dest="store_dir", type=Path, help="where models are cached")
    p.add_argument("--mirror", type=Path, help="folder holding the model files")


def model_places(args: argparse.Namespace) -> dict:
    """The ``data_dir`` and ``mirror`` keywords of ``models.locate`` from those flags."""
    return {"data_dir": args.store_dir, "mirror": args.mirror}


def open_extractor_from(args: argparse.Namespace) -> Extractor:
    """The extractor those flags name.

    Raises:
      One of ``ERRORS``: no model, no runtime, or ``--tpu on`` without a working Edge TPU.
    """
    return open_extractor(args.tpu, model_path=args.model, **model_places(args))


class Embedded(NamedTuple):
    """A folder's readable images, embedded once.

    Attributes:
      x: NxD embeddings.
      labels: N class indices (into the folder's ``classes``).
      paths: the N image files.
      flipped: NxD embeddings of the mirror images, or None when not asked for.
      thumbnails: N thumbnails (None each when not asked for).
    """

    x: np.ndarray
    labels: np.ndarray
    paths: List[Path]
    flipped: Optional[np.ndarray]
    thumbnails: List[Optional[bytes]]


def embed_folder(
    extractor: Extractor,
    folder: datasets.ImageFolder,
    *,
    label: str = "embedding",
    flip: bool = False,
    thumbnail: Optional[Callable[[Image.Image], bytes]] = None,
) -> Embedded:
    """Embeds every readable image of ``folder``, with a progress bar on stderr.

    Args:
      extractor: turns an image into a D-dimensional embedding (on the Edge TPU or the CPU).
      folder: what ``datasets.scan`` found; unreadable images are skipped with a warning.
      label: the progress bar's label.
      flip: also embed each image's mirror image (``Embedded.flipped``).
      thumbnail: makes each image's thumbnail for ``Embedded.thumbnails``.

    Raises:
      datasets.DatasetError: not one image of the folder is readable.
    """
    xs, fs, labels, paths, thumbs = [], [], [], [], []
    with ProgressBar(len(folder), label) as bar:
        for index, path, image in datasets.iter_images(folder):
            xs.append(extractor.embed(image))
            if flip:
                fs.append(extractor.embed(image, flip=True))
            labels.append(index)
            paths.append(path)
            thumbs.append(thumbnail(image) if thumbnail is not None else None)
            bar.update()
        bar.update(len(folder) - bar.done)
    if not xs:
        raise datasets.DatasetError(f"no readable image in {folder.root}")
    flipped = np.stack(fs) if flip else None
    return Embedded(np.stack(xs), np.array(labels), paths, flipped, thumbs)


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> Tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): ``fraction`` of each class, at least one, goes to test."""
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        test.extend(idx[:k])
        train.extend(idx[k:])
    return np.array(train), np.array(test)


def fail(message: str) -> int:
    """Prints ``error: message`` on stderr; returns the tools' exit status for it (2)."""
    print(f"error: {message}", file=sys.stderr)
    return 2
