"""Known models: name, sha256 and upstream address; locate, verify and fetch them.

Lookup order for a model file (first hit that verifies wins):

1. an explicit path (``--model PATH``);
2. the cache directory (``<data dir>/models``);
3. a mirror directory (``--mirror DIR`` or ``$TEACHABLE_MODEL_MIRROR``), copied into the cache;
4. the pinned upstream address, downloaded with a timeout into the cache.

Every file is checked against its sha256 before use, and written atomically (temporary file,
then rename), so a cache never holds a half-written model.

Command line::

    python -m server.models fetch [--mirror DIR] [--data-dir DIR] [--all]
    python -m server.models list
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import NamedTuple, Optional

log = logging.getLogger(__name__)

MIRROR_ENV = "TEACHABLE_MODEL_MIRROR"
DATA_DIR_ENV = "TEACHABLE_DATA_DIR"
_UPSTREAM = (
    "https://github.com/google-coral/test_data/raw/104342d2d3480b3e66203073dac24f4e2dbb4c41/"
)


class ModelInfo(NamedTuple):
    """One known model file."""

    name: str
    filename: str
    sha256: str
    url: str
    edgetpu: bool


EXTRACTOR_CPU = ModelInfo(
    name="mobilenet_v1_embedding",
    filename="mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    sha256="f409ef4f73fcbb9667841965623c5c8524aac33d41b9bf5f3667161fb4a76319",
    url=_UPSTREAM + "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    edgetpu=False,
)
EXTRACTOR_EDGETPU = ModelInfo(
    name="mobilenet_v1_embedding_edgetpu",
    filename="mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite",
    sha256="33a249155302975d7e28f72a5250903cdf7f7afb7bd1ceec3d2cd8ca9ce6a609",
    url=_UPSTREAM + "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite",
    edgetpu=True,
)
KNOWN = {m.name: m for m in (EXTRACTOR_CPU, EXTRACTOR_EDGETPU)}


class ModelError(Exception):
    """A model file is missing or does not match its sha256; the message says how to fix it."""


def default_data_dir() -> Path:
    """The data directory: ``$TEACHABLE_DATA_DIR`` or ``~/.local/share/teachable``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path.home() / ".local" / "share" / "teachable"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fix_command(info: ModelInfo) -> str:
    return (
        "run `python -m server.models fetch` (downloads it), or "
        f"`python -m server.models fetch --mirror DIR` with a folder DIR that holds {info.filename}"
    )


def _problem(info: ModelInfo, what: str) -> ModelError:
    return ModelError(
        f"model {info.filename} {what}; expected sha256 {info.sha256}. Fix: {fix_command(info)}"
    )


def verify(path: Path, info: ModelInfo) -> Path:
    """Returns ``path`` if it holds ``info``'s exact bytes, else raises ModelError."""
    if not path.is_file():
        raise _problem(info, f"not found at {path}")
    actual = sha256_of(path)
    if actual != info.sha256:
        raise _problem(info, f"at {path} is corrupt or another file (sha256 {actual})")
    return path


def atomic_write(write, dest: Path) -> None:
    """Writes ``dest`` through ``write(fileobj)`` into a temporary file, then renames it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _from_file(src: Path, info: ModelInfo, dest: Path) -> Optional[Path]:
    if not src.is_file():
        return None
    if sha256_of(src) != info.sha256:
        log.warning("ignoring %s: its sha256 does not match %s", src, info.sha256)
        return None

    def write(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f)

    atomic_write(write, dest)
    return verify(dest, info)


def _download(info: ModelInfo, dest: Path, timeout: float) -> Path:
    log.info("downloading %s from %s", info.filename, info.url)

    def write(f):
        with urllib.request.urlopen(info.url, timeout=timeout) as response:
            shutil.copyfileobj(response, f)

    try:
        atomic_write(write, dest)
    except OSError as e:  # URLError and socket timeouts are OSErrors
        raise _problem(info, f"could not be downloaded from {info.url} ({e})") from None
    try:
        return verify(dest, info)
    except ModelError:
        dest.unlink(missing_ok=True)
        raise


def locate(
    info: ModelInfo,
    *,
    path: Optional[Path] = None,
    data_dir: Optional[Path] = None,
    mirror: Optional[Path] = None,
    download: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Finds, verifies and if needed fetches one model file.

    Args:
      info: the model to find.
      path: an explicit file; when given, it is the only place looked at.
      data_dir: the data directory whose ``models/`` folder is the cache.
      mirror: a folder holding model files; defaults to ``$TEACHABLE_MODEL_MIRROR``.
      download: whether to try the upstream address as a last resort.
      timeout: seconds for the download's connection and each read.

    Returns:
      The path of a verified copy of the model.

    Raises:
      ModelError: with a message naming the file, its sha256 and the command that fixes it.
    """
    if path is not None:
        return verify(Path(path), info)
    cache = Path(data_dir or default_data_dir()) / "models" / info.filename
    if cache.is_file():
        if sha256_of(cache) == info.sha256:
            return cache
        log.warning("cached %s is corrupt; fetching it again", cache)
    mirror = mirror or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
    if mirror is not None:
        found = _from_file(Path(mirror) / info.filename, info, cache)
        if found is not None:
            return found
        log.warning("mirror %s has no valid %s", mirror, info.filename)
    if not download:
        raise _problem(info, f"is not in {cache.parent}" + (f" nor in {mirror}" if mirror else ""))
    return _download(info, cache, timeout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.models", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="fetch and verify the models into the data directory")
    fetch.add_argument(
        "--mirror", type=Path, help=f"folder holding the model files (or ${MIRROR_ENV})"
    )
    fetch.add_argument("--data-dir", type=Path, help=f"data directory (or ${DATA_DIR_ENV})")
    fetch.add_argument("--no-download", action="store_true", help="never use the network")
    fetch.add_argument(
        "--cpu-only", action="store_true", help="skip the Edge TPU build of the extractor"
    )
    sub.add_parser("list", help="list the known models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "list":
        for m in KNOWN.values():
            print(f"{m.name}\t{m.filename}\t{m.sha256}")
        return 0
    wanted = [EXTRACTOR_CPU] if args.cpu_only else list(KNOWN.values())
    try:
        for info in wanted:
            found = locate(
                info, data_dir=args.data_dir, mirror=args.mirror, download=not args.no_download
            )
            print(f"ok {found}")
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
