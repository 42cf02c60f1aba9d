"""Exhibit mode: visitor sessions that end after a while without a touch, and the operator's
own settings, which outlive every visitor.

The operator's settings live in ``operator.json`` in the data directory, written only when the
operator changes them (atomically), so a visitor session in privacy mode writes no file at all.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Optional

from server.hw.cameras import check_camera_spec
from server.learn import METHODS
from server.models import atomic_write

log = logging.getLogger(__name__)

OPERATOR_FILE = "operator.json"
PRESET_FILE = "preset.zip"

DEFAULTS = {
    "idle_minutes": 3.0,  # a visitor's session ends after this long without a touch
    "keep_visitor_data": False,  # privacy: visitors' frames and thumbnails never reach disk
    "camera": None,  # None: the --camera setting; else a camera spec (applies on restart)
    "method": None,  # None: keep the current method
    "unknown_quantile": 0.05,
    "smoothing": None,  # None: the --smoothing setting
}

LIMITS = {
    "idle_minutes": (0.5, 240.0),
    "unknown_quantile": (0.0, 0.5),
    "smoothing": (0.0, 0.95),
}
UNSET = ("camera", "method", "smoothing")  # may be None: the start-up setting applies


class OperatorError(ValueError):
    """An operator setting is invalid; the message says which and why, ``setting`` which."""

    def __init__(self, message: str, setting: Optional[str] = None):
        super().__init__(message)
        self.setting = setting

    @property
    def fields(self) -> dict:
        """The setting to blame, for ``server.errors.ServiceError``'s fields (if one is)."""
        return {"setting": self.setting} if self.setting else {}


def validate(changes: dict) -> dict:
    """The recognised, checked settings of ``changes``; OperatorError for anything else."""
    if not isinstance(changes, dict):
        raise OperatorError("Operator settings must be a JSON object.")
    unknown = set(changes) - set(DEFAULTS)
    if unknown:
        raise OperatorError(f"Unknown operator setting(s): {', '.join(sorted(unknown))}.")
    clean = {}
    for key, value in changes.items():
        if value is None and key in UNSET:
            clean[key] = None
            continue
        if key in LIMITS:
            low, high = LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise OperatorError(f"{key} must be a number.", key)
            if not low <= value <= high:
                raise OperatorError(f"{key} must be between {low:g} and {high:g}.", key)
            value = float(value)
        elif key == "keep_visitor_data" and not isinstance(value, bool):
            raise OperatorError("keep_visitor_data must be true or false.", key)
        elif key in ("camera", "method") and not isinstance(value, str):
            raise OperatorError(f"{key} must be text.", key)
        elif key == "method" and value not in METHODS:
            raise OperatorError(f"method must be one of {', '.join(METHODS)}.", key)
        elif key == "camera":
            try:
                value = check_camera_spec(value)
            except ValueError as e:
                raise OperatorError(f"camera: {e}", key) from None
        clean[key] = value
    return clean


class OperatorConfig:
    """The operator's settings, read once and written atomically on change.

    Args:
      data_dir: the data directory (``operator.json`` and ``preset.zip`` live there).
    """

    def __init__(self, data_dir):
        self.path = Path(data_dir) / OPERATOR_FILE
        self.preset_path = Path(data_dir) / PRESET_FILE
        self.values = dict(DEFAULTS)
        if self.path.is_file():
            try:
                saved = json.loads(self.path.read_text())
                if not isinstance(saved, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as e:
                log.warning("ignoring %s (%s): using the defaults", self.path, e)
                return
            # one setting at a time: one that an older version let through, or a hand edit,
            # costs only itself
            for key, value in saved.items():
                try:
                    self.values.update(validate({key: value}))
                except OperatorError as e:
                    log.warning("ignoring %s in %s (%s): using its default", key, self.path, e)

    def __getitem__(self, key: str):
        return self.values[key]

    def update(self, changes: dict) -> dict:
        """Checks, applies and saves ``changes``; returns all values."""
        clean = validate(changes)
        values = dict(self.values, **clean)
        _write_atomically(self.path, json.dumps(values, indent=2).encode())
        self.values = values
        return dict(values)


def _write_atomically(path: Path, data: bytes) -> None:
    atomic_write(lambda f: f.write(data), path)


class IdleTimer:
    """Tells when a visitor has not touched anything for ``timeout`` seconds.

    Args:
      timeout: seconds of no activity after which ``expired()`` is true.
      clock: ``time.monotonic`` or a fake.
    """

    def __init__(self, timeout: float, clock: Callable[[], float]):
        self.timeout = timeout
        self.clock = clock
        self.last = clock()
        self.fired = False

    def touch(self) -> None:
        self.last = self.clock()
        self.fired = False

    def seconds_left(self) -> float:
        return max(0.0, self.timeout - (self.clock() - self.last))

    def expired(self) -> bool:
        """True once per idle period (until the next ``touch``)."""
        if self.fired or self.clock() - self.last < self.timeout:
            return False
        self.fired = True
        return True


def preset_bytes(config: OperatorConfig) -> Optional[bytes]:
    """The saved preset project (a bundle zip), or None when the operator saved none."""
    try:
        return config.preset_path.read_bytes()
    except FileNotFoundError:
        return None


def save_preset(config: OperatorConfig, bundle: bytes) -> None:
    _write_atomically(config.preset_path, bundle)


class ExhibitSession:
    """Everything exhibit mode adds to the pipeline.

    Attributes:
      config: the operator's settings.
      timer: the visitor's idle timer.
      privacy: visitors' data stays in memory (nothing is written to disk).
      attract: the attract screen is showing (after an idle reset, until the next touch).
    """

    def __init__(self, config: OperatorConfig, clock: Callable[[], float]):
        self.config = config
        self.timer = IdleTimer(config["idle_minutes"] * 60.0, clock)
        self.privacy = not config["keep_visitor_data"]
        self.attract = True

    def public(self) -> dict:
        return {
            "attract": self.attract,
            "privacy": self.privacy,
            "idle_minutes": self.config["idle_minutes"],
            "preset": self.config.preset_path.is_file(),
        }
