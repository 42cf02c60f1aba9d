"""Project bundles: a whole kiosk project (classes, examples, thumbnails) as one zip file.

Layout (format version 1)::

    manifest.json                      format, version, created, method, extractor, classes
    classes/000/embeddings.npy         NxD float32 (little-endian), one row per example
    classes/000/thumbnails.bin         the class's JPEG thumbnails, one after the other
    classes/000/thumbnail_sizes.npy    (N,) int64 byte sizes (0: that example has none)
    classes/001/...

``manifest.json``::

    {"format": "teachable-project", "version": 1, "created": "2025-01-31T12:00:00+00:00",
     "method": "auto",
     "extractor": {"name": "mobilenet_v1_embedding", "file": "mobilenet_v1_..._extractor.tflite",
                   "sha256": "f409…", "dim": 1024},
     "classes": [{"name": "rock", "color": "#cc6677", "examples": 40, "thumbnails": true}, ...]}

The thumbnail files exist only for classes with ``"thumbnails": true``. Thumbnails are packed
per class rather than one file per example, so that a project of any allowed size stays a few
entries per class, far below the entry limit.

Reading trusts nothing: ``read_bundle`` checks the size, the entry count, every entry's name
(no absolute path, no ``..``, no backslash, no duplicate even by case), type (no link, no
device, no encryption), declared size, total size and compression ratio before it decompresses
anything, then the manifest's schema and version, the extractor model, and every array's dtype,
shape and values. Nothing is written anywhere: the result is arrays in memory, which the caller
hands to ``Store.replace_all`` (one transaction: all or nothing).

Numpy, json and zipfile only: no Flask, no database.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from server import models
from server.store import StoreError, check_color, check_name

FORMAT = "teachable-project"
VERSION = 1
MANIFEST = "manifest.json"
MIB = 1024 * 1024
MAX_DIM = 8192

_JPEG_MAGIC = b"\xff\xd8\xff"
_NPY_HEADER_ROOM = 4096  # an .npy header is at most a few hundred bytes
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"[A-Za-z]:")
_EOCD = struct.Struct("<4s4H2LH")  # the zip's end record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_MAX_DIRECTORY_ENTRY = 512  # central directory bytes per entry: 46 + a 255-byte name + extras

# The Edge TPU build is the CPU model compiled by edgetpu_compiler: the same network and
# quantisation, so their embeddings are interchangeable and a project moves between them.
_SAME_EMBEDDINGS = ({models.EXTRACTOR_CPU.sha256, models.EXTRACTOR_EDGETPU.sha256},)


class Limits(NamedTuple):
    """What a bundle may be; anything beyond is refused before it is decompressed.

    Attributes:
      max_bytes: the zip file's size.
      max_entries: zip entries (files and folders).
      max_classes: classes in the manifest.
      max_examples: examples per class (the kiosk passes its ``--max-examples``).
      max_unpacked: the sum of the entries' uncompressed sizes.
      max_ratio: an entry's uncompressed size over its compressed size (checked for entries
        above 1 MB; real embeddings deflate about 3:1, thumbnails are stored).
      max_thumbnail: one thumbnail's bytes.
      max_manifest: ``manifest.json``'s bytes.
    """

    max_bytes: int = 64 * MIB
    max_entries: int = 1000
    max_classes: int = 200
    max_examples: int = 1000
    max_unpacked: int = 256 * MIB
    max_ratio: float = 200.0
    max_thumbnail: int = 256 * 1024
    max_manifest: int = 1 * MIB


class BundleError(Exception):
    """A bundle is refused: ``code`` for programs, the message for people, an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


class ExtractorId(NamedTuple):
    """Which embedding extractor made the embeddings: its name, file name, sha256 and D."""

    name: str
    file: str
    sha256: str
    dim: int

    def describe(self) -> str:
        return f"{self.name} (sha256 {self.sha256[:12]}…)" if self.sha256 else self.name


class ClassData(NamedTuple):
    """One class of a project: name, ``#rrggbb`` colour, NxD examples, N thumbnails or None."""

    name: str
    color: Optional[str]
    examples: np.ndarray
    thumbnails: Optional[List[Optional[bytes]]]


class Project(NamedTuple):
    """A whole project, as a bundle holds it and ``Store.replace_all`` takes it."""

    classes: List[ClassData]
    method: str
    extractor: ExtractorId
    created: str = ""

    @property
    def examples(self) -> int:
        return sum(len(c.examples) for c in self.classes)

    def store_classes(self) -> List[dict]:
        """The classes as ``Store.replace_all`` takes them."""
        return [
            {"name": c.name, "color": c.color, "examples": c.examples, "thumbnails": c.thumbnails}
            for c in self.classes
        ]


def identify(model_path, dim: int) -> ExtractorId:
    """The identity of an extractor model file (known models get their registry name).

    A missing path (a test's fake extractor) gives the name ``unknown`` and no sha256.
    """
    path = Path(model_path) if model_path else None
    if path is None or not path.is_file():
        return ExtractorId("unknown", "", "", int(dim))
    sha = models.sha256_of(path)
    for info in models.KNOWN.values():
        if info.sha256 == sha:
            return ExtractorId(info.name, info.filename, sha, int(dim))
    return ExtractorId(path.stem, path.name, sha, int(dim))


def compatible(made_with: ExtractorId, running: ExtractorId) -> bool:
    """Whether embeddings of ``made_with`` mean the same to ``running``."""
    if made_with.dim != running.dim:
        return False
    if not running.sha256:  # the running model is unknown (tests): the size must do
        return True
    if made_with.sha256 == running.sha256:
        return True
    return any({made_with.sha256, running.sha256} <= family for family in _SAME_EMBEDDINGS)


# ----- writing ----------------------------------------------------------------------------
def _entry(index: int, name: str) -> str:
    return f"classes/{index:03d}/{name}"


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_bundle(project: Project) -> bytes:
    """The zip file of ``project`` (see the module docstring for its layout)."""
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": project.created or now_iso(),
        "method": project.method,
        "extractor": project.extractor._asdict(),
        "classes": [],
    }
    out = io.BytesIO()
    # level 1: a quarter of level 6's time on embeddings, for about 15 % more bytes
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for index, c in enumerate(project.classes):
            x = np.ascontiguousarray(c.examples, "<f4")
            thumbs = list(c.thumbnails) if c.thumbnails is not None else [None] * len(x)
            keep = any(thumbs)
            manifest["classes"].append(
                {"name": c.name, "color": c.color, "examples": len(x), "thumbnails": keep}
            )
            zf.writestr(_entry(index, "embeddings.npy"), _npy(x))
            if keep:
                sizes = np.array([len(t) if t else 0 for t in thumbs], "<i8")
                # JPEGs do not deflate: stored, they cost no time to write or read
                zf.writestr(
                    _entry(index, "thumbnails.bin"),
                    b"".join(t for t in thumbs if t),
                    compress_type=zipfile.ZIP_STORED,
                )
                zf.writestr(_entry(index, "thumbnail_sizes.npy"), _npy(sizes))
        zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    return out.getvalue()


# ----- reading ----------------------------------------------------------------------------
def read_bundle(
    data: bytes, *, running: Optional[ExtractorId] = None, limits: Limits = Limits()
) -> Project:
    """Reads and validates a bundle completely, in memory.

    Args:
      data: the zip file's bytes.
      running: the extractor the kiosk runs; a bundle made with an incompatible one is refused.
        None accepts any extractor.
      limits: see ``Limits``.

    Returns:
      The project, every array checked.

    Raises:
      BundleError: with a sentence that says what is wrong (status 413 for a too large file).
    """
    if len(data) > limits.max_bytes:
        raise BundleError(
            "too_large",
            f"The project file has {len(data) / MIB:.1f} MB; at most "
            f"{limits.max_bytes / MIB:g} MB are accepted.",
            413,
        )
    declared = _central_directory(data)
    if declared is not None and (
        declared[0] > limits.max_entries or declared[1] > limits.max_entries * _MAX_DIRECTORY_ENTRY
    ):
        # refused before zipfile parses a directory that could hold a million entries
        raise BundleError(
            "too_many_entries",
            f"The project file declares {declared[0]} entries; a project has at most "
            f"{limits.max_entries}.",
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise BundleError(
            "bad_bundle", f"This is not a project file (a zip file), or it is damaged ({e})."
        ) from None
    with zf:
        files = _check_entries(infos, limits)
        manifest = _parse_manifest(_read(zf, files, MANIFEST, limits.max_manifest), limits)
        made_with = manifest["extractor"]
        if running is not None and not compatible(made_with, running):
            raise BundleError(
                "wrong_model",
                f"This project was made with the extractor model {made_with.describe()} "
                f"({made_with.dim} values per example), but this kiosk runs "
                f"{running.describe()} ({running.dim} values): its examples would mean nothing "
                "here. Import it on a kiosk that runs the same model, or teach the classes again.",
            )
        expected = {MANIFEST}
        for index, c in enumerate(manifest["classes"]):
            expected.add(_entry(index, "embeddings.npy"))
            if c["thumbnails"]:
                expected.update(
                    {_entry(index, "thumbnails.bin"), _entry(index, "thumbnail_sizes.npy")}
                )
        extra, missing = sorted(set(files) - expected), sorted(expected - set(files))
        if extra:
            raise BundleError(
                "unexpected_entry", f"The project file holds an unknown file {extra[0]!r}."
            )
        if missing:
            raise BundleError("missing_entry", f"The project file lacks {missing[0]}.")
        classes = [
            _read_class(zf, files, index, c, made_with.dim, limits)
            for index, c in enumerate(manifest["classes"])
        ]
    return Project(classes, manifest["method"], made_with, manifest["created"])


def _central_directory(data: bytes) -> Optional[Tuple[int, int]]:
    """(entries, bytes) of the central directory as the end record declares them, or None."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - _EOCD.size - 65535))
    if at < 0 or at + _EOCD.size > len(data):
        return None  # not a zip: zipfile says so
    _, _, _, _, entries, size, _, _ = _EOCD.unpack_from(data, at)
    locator = at - _ZIP64_LOCATOR.size
    if locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        _, _, offset, _ = _ZIP64_LOCATOR.unpack_from(data, locator)
        if offset + 56 <= len(data) and data[offset : offset + 4] == b"PK\x06\x06":
            entries, size = struct.unpack_from("<QQ", data, offset + 32)
    return int(entries), int(size)


def _bad_name(name: str, why: str) -> BundleError:
    return BundleError("bad_entry", f"The project file holds an entry {name!r}: {why}.")


def _check_entries(infos: Sequence[zipfile.ZipInfo], limits: Limits) -> Dict[str, zipfile.ZipInfo]:
    """The file entries by name, after every check that needs no decompression."""
    if len(infos) > limits.max_entries:
        raise BundleError(
            "too_many_entries",
            f"The project file has {len(infos)} entries; a project has at most "
            f"{limits.max_entries}.",
        )
    files: Dict[str, zipfile.ZipInfo] = {}
    seen: Dict[str, str] = {}
    total = 0
    for info in infos:
        raw = info.orig_filename
        name = info.filename
        if not raw or len(raw) > 255 or "\x00" in raw or any(ord(ch) < 32 for ch in raw):
            raise _bad_name(raw, "an empty, overlong or control-character name")
        if "\\" in raw:
            raise _bad_name(raw, "backslashes are not allowed in names")
        if raw.startswith("/") or _DRIVE.match(raw):
            raise _bad_name(raw, "absolute paths are not allowed")
        parts = raw.rstrip("/").split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise _bad_name(raw, "'..', '.' and empty path parts are not allowed")
        key = raw.rstrip("/").casefold()
        if key in seen:
            raise _bad_name(raw, f"it appears twice (also as {seen[key]!r})")
        seen[key] = raw
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a symbolic link" if kind == stat.S_IFLNK else "a special file"
            raise _bad_name(raw, f"it is {what}; only plain files are allowed")
        if info.flag_bits & 0x1:
            raise _bad_name(raw, "it is encrypted")
        if info.is_dir():
            continue
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad_name(raw, "only stored or deflated entries are allowed")
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio and info.file_size > MIB:
            raise BundleError(
                "zip_bomb",
                f"The project file's entry {raw!r} would expand {ratio:.0f} times (at most "
                f"{limits.max_ratio:g}): refused as a possible zip bomb.",
            )
        total += info.file_size
        if total > limits.max_unpacked:
            raise BundleError(
                "zip_bomb",
                f"The project file would unpack to more than {limits.max_unpacked / MIB:g} MB: "
                "refused as a possible zip bomb.",
            )
        files[name] = info
    return files


def _read(zf: zipfile.ZipFile, files: Dict[str, zipfile.ZipInfo], name: str, limit: int) -> bytes:
    """An entry's bytes, refusing more than ``limit`` (declared or actual)."""
    info = files.get(name)
    if info is None:
        raise BundleError("missing_entry", f"The project file lacks {name}.")
    if info.file_size > limit:
        raise BundleError(
            "too_large_entry",
            f"The project file's {name} has {info.file_size} bytes; at most {limit} fit its "
            "manifest.",
        )
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as e:
        raise BundleError(
            "bad_bundle", f"The project file is damaged or truncated ({name}: {e})."
        ) from None
    if len(data) > limit:
        raise BundleError("too_large_entry", f"The project file's {name} is too large.")
    return data


def _field(obj: dict, key: str, kind, where: str):
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BundleError("bad_manifest", f"manifest.json: {where}{key} is missing or wrong.")
    return value


def _parse_manifest(raw: bytes, limits: Limits) -> dict:
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError("bad_manifest", f"manifest.json is not valid JSON ({e}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(
            "bad_manifest", f"manifest.json does not describe a project (format {FORMAT!r})."
        )
    version = _field(manifest, "version", int, "")
    if version > VERSION:
        raise BundleError(
            "newer_version",
            f"This project file has format version {version}, made by a newer kiosk; this "
            f"kiosk reads up to version {VERSION}. Update the kiosk to import it.",
        )
    if version < 1:
        raise BundleError("bad_manifest", f"manifest.json: unknown version {version}.")
    extractor = _field(manifest, "extractor", dict, "")
    name = _field(extractor, "name", str, "extractor.")
    sha = _field(extractor, "sha256", str, "extractor.")
    dim = _field(extractor, "dim", int, "extractor.")
    if not _SHA256.fullmatch(sha) or not 0 < dim <= MAX_DIM:
        raise BundleError("bad_manifest", "manifest.json: extractor.sha256 or .dim is invalid.")
    file = extractor.get("file") if isinstance(extractor.get("file"), str) else ""
    classes = _field(manifest, "classes", list, "")
    if len(classes) > limits.max_classes:
        raise BundleError(
            "too_many_classes",
            f"The project has {len(classes)} classes; at most {limits.max_classes} are accepted.",
        )
    parsed, names = [], {}
    for number, c in enumerate(classes, 1):
        where = f"classes[{number - 1}]."
        if not isinstance(c, dict):
            raise BundleError("bad_manifest", f"manifest.json: {where[:-1]} is not an object.")
        try:
            class_name = check_name(c.get("name"))
            color = None if c.get("color") is None else check_color(c.get("color"))
        except StoreError as e:
            raise BundleError("bad_manifest", f"manifest.json: class {number}: {e}.") from None
        if class_name.casefold() in names:
            raise BundleError(
                "bad_manifest", f'manifest.json: two classes are called "{class_name}".'
            )
        names[class_name.casefold()] = class_name
        count = _field(c, "examples", int, where)
        if not 0 <= count <= limits.max_examples:
            raise BundleError(
                "too_many_examples",
                f'Class "{class_name}" has {count} examples; this kiosk keeps at most '
                f"{limits.max_examples} per class (start it with a larger --max-examples).",
            )
        thumbs = c.get("thumbnails", False)
        if not isinstance(thumbs, bool):
            raise BundleError(
                "bad_manifest", f"manifest.json: {where}thumbnails must be true/false."
            )
        parsed.append({"name": class_name, "color": color, "examples": count, "thumbnails": thumbs})
    method = manifest.get("method")
    created = manifest.get("created")
    return {
        "extractor": ExtractorId(name, file, sha, dim),
        "classes": parsed,
        "method": method if isinstance(method, str) else "",
        "created": created if isinstance(created, str) else "",
    }


def _load_npy(raw: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BundleError(
            "bad_array", f"The project file's {name} is not a valid array ({e})."
        ) from None


def _read_class(zf, files, index: int, c: dict, dim: int, limits: Limits) -> ClassData:
    n = c["examples"]
    name = _entry(index, "embeddings.npy")
    x = _load_npy(_read(zf, files, name, _NPY_HEADER_ROOM + n * dim * 4), name)
    if x.dtype != np.float32 or x.shape != (n, dim):
        raise BundleError(
            "bad_array",
            f'Class "{c["name"]}": {name} holds {x.dtype} {x.shape}, not float32 ({n}, {dim}) '
            "as the manifest says.",
        )
    if not np.all(np.isfinite(x)):
        raise BundleError("bad_array", f'Class "{c["name"]}": {name} holds NaN or infinity.')
    thumbnails = None
    if c["thumbnails"]:
        sizes_name = _entry(index, "thumbnail_sizes.npy")
        sizes = _load_npy(_read(zf, files, sizes_name, _NPY_HEADER_ROOM + n * 8), sizes_name)
        if sizes.dtype.kind not in "iu" or sizes.shape != (n,):
            raise BundleError("bad_array", f"{sizes_name} must hold {n} integer sizes.")
        sizes = sizes.astype(np.int64)
        if np.any(sizes < 0) or np.any(sizes > limits.max_thumbnail):
            raise BundleError(
                "bad_array",
                f"{sizes_name}: a thumbnail size is negative or above "
                f"{limits.max_thumbnail} bytes.",
            )
        blob_name = _entry(index, "thumbnails.bin")
        total = int(sizes.sum())
        blob = _read(zf, files, blob_name, total)
        if len(blob) != total:
            raise BundleError(
                "bad_array", f"{blob_name} has {len(blob)} bytes, its sizes add up to {total}."
            )
        thumbnails, start = [], 0
        for size in sizes.tolist():
            thumb = blob[start : start + size] if size else None
            if thumb is not None and not thumb.startswith(_JPEG_MAGIC):
                raise BundleError("bad_array", f"{blob_name}: a thumbnail is not a JPEG image.")
            thumbnails.append(thumb)
            start += size
    return ClassData(c["name"], c["color"], np.ascontiguousarray(x, np.float32), thumbnails)
