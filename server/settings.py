"""One typed, validated settings object, built from command-line flags and the environment.

Every flag has an environment variable ``TEACHABLE_<NAME>`` (for example ``--camera`` and
``TEACHABLE_CAMERA``); a flag wins over the variable. A bad value stops start-up with one line
that says what to fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

from server.learn import METHODS  # the learners' registry is the one list of methods
from server.models import DATA_DIR_ENV, default_data_dir

TPU_MODES = ("auto", "on", "off")  # the one list: the extractor and the offline tools read it
ENV_PREFIX = "TEACHABLE_"


class SettingsError(ValueError):
    """A setting is invalid; the message is one line saying what to fix."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the server needs to know at start-up."""

    host: str = "0.0.0.0"
    port: int = 5000
    camera: str = "auto"
    camera_fps: float = 30.0
    tpu: str = "auto"
    edgetpu_lib: Optional[Path] = None
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    model: Optional[Path] = None
    mirror: Optional[Path] = None
    pin: Optional[str] = None
    allow_origins: Tuple[str, ...] = ()
    thumbnails: bool = True
    method: str = "auto"
    record_interval_ms: int = 100
    max_examples: int = 200
    smoothing: float = 0.5
    max_clients: int = 32
    max_upload_mb: float = 8.0
    max_upload_files: int = 50
    ack_timeout_s: float = 10.0
    jpeg_quality: int = 75
    stream_width: int = 640
    stream_fps: float = 30.0
    log_level: str = "INFO"
    exhibit: bool = False

    def __post_init__(self):
        _check(0 < self.port < 65536, "--port must be between 1 and 65535")
        _check(0 < self.camera_fps <= 1000, "--camera-fps must be above 0 and at most 1000")
        _check(self.tpu in TPU_MODES, f"--tpu must be one of {', '.join(TPU_MODES)}")
        _check(self.method in METHODS, f"--method must be one of {', '.join(METHODS)}")
        _check(
            self.pin is None or re.fullmatch(r"\d{4,12}", self.pin) is not None,
            "--pin must be 4 to 12 digits",
        )
        for origin in self.allow_origins:
            _check(
                re.fullmatch(r"https?://[^/\s*]+", origin) is not None,
                f"--allow-origin {origin!r} must look like http://host[:port] (no '*', no path)",
            )
        _check(10 <= self.record_interval_ms <= 5000, "--record-interval-ms must be 10 to 5000")
        _check(1 <= self.max_examples <= 1000, "--max-examples must be 1 to 1000")
        _check(0.0 <= self.smoothing < 1.0, "--smoothing must be at least 0 and below 1")
        _check(1 <= self.max_clients <= 500, "--max-clients must be 1 to 500")
        _check(0 < self.max_upload_mb <= 100, "--max-upload-mb must be above 0 and at most 100")
        _check(1 <= self.max_upload_files <= 1000, "--max-upload-files must be 1 to 1000")
        _check(1.0 <= self.ack_timeout_s <= 300, "--ack-timeout-s must be 1 to 300")
        _check(10 <= self.jpeg_quality <= 95, "--jpeg-quality must be 10 to 95")
        _check(160 <= self.stream_width <= 1920, "--stream-width must be 160 to 1920")
        _check(1 <= self.stream_fps <= 120, "--stream-fps must be 1 to 120")
        _check(
            self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
            "--log-level must be DEBUG, INFO, WARNING or ERROR",
        )
        _check(
            not self.exhibit or self.pin is not None,
            "--exhibit needs --pin: the operator's page and actions are behind it",
        )
        if self.model is not None:
            _check(Path(self.model).is_file(), f"--model {self.model} is not a file")
        if self.edgetpu_lib is not None:
            _check(
                Path(self.edgetpu_lib).is_file(),
                f"--edgetpu-lib {self.edgetpu_lib} is not a file (give the libedgetpu.so.1 "
                "to use, or leave it out to let the loader find it)",
            )

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "teachable.sqlite3"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SettingsError(message)


def _flag(field: dataclasses.Field) -> str:
    return "--" + field.name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m server",
        description="The teachable camera kiosk: serves the live view and learning to browsers.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--host", help="address to listen on (default 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, help="port (default 5000)")
    p.add_argument(
        "--camera",
        help="auto (default), 0 or /dev/video0, file:PATH, folder:PATH, synthetic, browser",
    )
    p.add_argument("--camera-fps", type=float, help="frames per second for folder/synthetic")
    p.add_argument("--tpu", help="auto (default), on or off")
    p.add_argument(
        "--edgetpu-lib", type=Path, help="the libedgetpu file to use (default: libedgetpu.so.1)"
    )
    p.add_argument("--data-dir", type=Path, help=f"database and models (or ${DATA_DIR_ENV})")
    p.add_argument("--model", type=Path, help="an explicit CPU extractor model file")
    p.add_argument("--mirror", type=Path, help="folder holding the model files")
    p.add_argument("--pin", help="PIN (digits) that destructive actions need")
    p.add_argument(
        "--allow-origin",
        dest="allow_origins",
        action="append",
        help="another web origin allowed to connect (repeatable)",
    )
    p.add_argument(
        "--no-thumbnails",
        dest="thumbnails",
        action="store_false",
        help="store no image at all (privacy mode for exhibits)",
    )
    p.add_argument("--method", help="learning method at first start: auto, imprinting, ...")
    p.add_argument("--record-interval-ms", type=int, help="one example every N ms (default 100)")
    p.add_argument("--max-examples", type=int, help="examples per class (default 200)")
    p.add_argument("--smoothing", type=float, help="0 = none; 0.5 (default) to 0.9 = steadier")
    p.add_argument("--max-clients", type=int, help="browsers connected at once (default 32)")
    p.add_argument("--max-upload-mb", type=float, help="largest upload (default 8)")
    p.add_argument("--max-upload-files", type=int, help="files per upload (default 50)")
    p.add_argument("--ack-timeout-s", type=float, help="drop a client that acks no frame")
    p.add_argument("--jpeg-quality", type=int, help="live view JPEG quality (default 75)")
    p.add_argument("--stream-width", type=int, help="live view width in pixels (default 640)")
    p.add_argument(
        "--stream-fps",
        type=float,
        help="most live-view frames a second sent to each browser (default 30); the camera "
        "may run faster, and every frame is still classified",
    )
    p.add_argument("--log-level", help="DEBUG, INFO (default), WARNING or ERROR")
    p.add_argument(
        "--exhibit",
        action="store_true",
        help="exhibit mode: visitor sessions reset when idle, operator page, privacy",
    )
    return p


def _from_env(environ: Mapping[str, str]) -> dict:
    values = {}
    for field in dataclasses.fields(Settings):
        raw = environ.get(ENV_PREFIX + field.name.upper())
        if raw is None or raw == "":
            continue
        values[field.name] = _convert(field, raw)
    return values


def _convert(field: dataclasses.Field, raw: str):
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "on")
        if "Tuple" in kind:
            return tuple(s.strip() for s in raw.split(",") if s.strip())
        if "Path" in kind:
            return Path(raw)
    except ValueError:
        raise SettingsError(
            f"{ENV_PREFIX}{field.name.upper()}={raw!r} is not a valid value"
        ) from None
    return raw


def from_args(
    argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None
) -> Settings:
    """Settings from flags over environment variables over defaults.

    Raises:
      SettingsError: with one line that says what to fix.
    """
    environ = os.environ if environ is None else environ
    values = _from_env(environ)
    args = vars(build_parser().parse_args(argv))
    if "allow_origins" in args:
        args["allow_origins"] = tuple(args["allow_origins"])
    values.update(args)
    if "log_level" in values:
        values["log_level"] = values["log_level"].upper()
    try:
        return Settings(**values)
    except TypeError as e:
        raise SettingsError(str(e)) from None
