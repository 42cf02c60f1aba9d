"""TFLite runtime shim and Edge TPU delegate loading.

The only module that imports a TFLite runtime in a serving process (``server.hw.probe``'s
child imports one to try the Edge TPU first). Preference order: ``ai_edge_litert`` (fast
XNNPACK CPU kernels, the default in requirements.txt), ``tflite_runtime`` (what Coral boards
ship, and what pycoral uses), then ``tensorflow.lite``.
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
import platform
from typing import Any, Callable, NamedTuple, Optional

log = logging.getLogger(__name__)

# The Edge TPU runtime library's file name per OS, as pycoral's edgetpu.py names it.
EDGETPU_SHARED_LIB = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}

# USB Accelerator before (1a6e:089a) and after (18d1:9302) its firmware is loaded.
_EDGETPU_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}

_RUNTIMES = (
    ("ai_edge_litert", "ai_edge_litert.interpreter"),
    ("tflite_runtime", "tflite_runtime.interpreter"),
    ("tensorflow", "tensorflow.lite"),
)


class Runtime(NamedTuple):
    """An importable TFLite runtime: its name, Interpreter class and load_delegate function."""

    name: str
    interpreter_class: Any
    load_delegate: Callable[..., Any]


class EdgeTpuUnavailable(RuntimeError):
    """No usable Edge TPU; the message says what to do."""


class NoRuntime(RuntimeError):
    """No TFLite runtime is installed."""


def load_runtime(preferred: Optional[str] = None, *, only: bool = False) -> Runtime:
    """Imports the first available TFLite runtime.

    Args:
      preferred: ``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow`` to try first.
      only: import ``preferred`` or nothing (the Edge TPU path uses the runtime its probe
        passed with, whichever serves the CPU path).

    Raises:
      NoRuntime: when none imports, with the pip command that installs one.
    """
    order = sorted(_RUNTIMES, key=lambda r: r[0] != preferred)
    if only:
        order = [r for r in order if r[0] == preferred]
    for name, module_name in order:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            log.debug("runtime %s not available: %s", name, e)
            continue
        return Runtime(name, module.Interpreter, module.load_delegate)
    raise NoRuntime(
        "no TFLite runtime is installed: run `pip install ai-edge-litert` "
        "(or install Coral's tflite_runtime on a Coral board)"
    )


def edgetpu_devices(sysfs: str = "/sys/bus/usb/devices", dev: str = "/dev") -> list:
    """Edge TPUs visible to Linux: PCIe/M.2 (``/dev/apex_N``) and USB Accelerators.

    A cheap check before loading the delegate, so that a machine without one starts on the CPU
    at once. Returns names such as ``["pci:/dev/apex_0", "usb:2-1"]``.
    """
    found = [f"pci:{p}" for p in sorted(glob.glob(os.path.join(dev, "apex_*")))]
    for device in sorted(glob.glob(os.path.join(sysfs, "*"))):
        try:
            with (
                open(os.path.join(device, "idVendor")) as v,
                open(os.path.join(device, "idProduct")) as p,
            ):
                ids = (v.read().strip(), p.read().strip())
        except OSError:
            continue
        if ids in _EDGETPU_USB_IDS:
            found.append(f"usb:{os.path.basename(device)}")
    return found


def default_threads() -> int:
    return os.cpu_count() or 1


def make_cpu_interpreter(model_path: str, runtime: Runtime, num_threads: Optional[int] = None):
    """An allocated interpreter for ``model_path`` on the CPU."""
    interpreter = runtime.interpreter_class(
        model_path=str(model_path), num_threads=num_threads or default_threads()
    )
    interpreter.allocate_tensors()
    return interpreter


def make_edgetpu_interpreter(
    model_path: str, runtime: Runtime, library: Optional[str] = None, device: Optional[str] = None
):
    """An allocated interpreter with the Edge TPU delegate for an ``_edgetpu`` model.

    Call it only with a ``runtime`` and ``library`` that passed ``server.hw.probe``: a
    libedgetpu built for another TensorFlow version crashes the process right here.

    Args:
      model_path: the ``_edgetpu`` model file.
      runtime: the runtime the probe passed with.
      library: the libedgetpu file (default: this OS's name, ``EDGETPU_SHARED_LIB``).
      device: a device option for the delegate (``usb``, ``usb:0``, ``pci:0``), else any.

    Raises:
      EdgeTpuUnavailable: the library or the device could not be used after all (unplugged
        since the probe, for example).
    """
    lib = library or EDGETPU_SHARED_LIB.get(platform.system(), EDGETPU_SHARED_LIB["Linux"])
    try:
        delegate = runtime.load_delegate(lib, {"device": device} if device else {})
        interpreter = runtime.interpreter_class(
            model_path=str(model_path), experimental_delegates=[delegate]
        )
        interpreter.allocate_tensors()
    except (ValueError, OSError, RuntimeError) as e:
        raise EdgeTpuUnavailable(
            f"the Edge TPU could not be used ({str(e).splitlines()[0]}): plug the Coral USB "
            "Accelerator into a USB 3 port and restart, or start with --tpu off to use the CPU"
        ) from None
    return interpreter
