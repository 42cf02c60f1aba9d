"""Frame → embedding with the frozen MobileNet extractor, on the Edge TPU or the CPU.

The base graph runs on the Edge TPU when one is present (the ``_edgetpu`` build of the model),
on the CPU otherwise; either way the result is a float32 embedding of 1024 values that the
learners in ``server.learn`` turn into class scores on the CPU.
"""

from __future__ import annotations

import collections
import logging
import statistics
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import cv2
import numpy as np

from server import models
from server.hw import probe
from server.hw import runtime as rt

log = logging.getLogger(__name__)

TPU_MODES = ("auto", "on", "off")

# The interpreter's threads use every core; OpenCV's own thread pool would only compete with
# them, and a 224x224 resize is faster on one thread anyway (62 vs 97 us here).
cv2.setNumThreads(1)


def input_size(interpreter) -> tuple:
    """The model's input (width, height)."""
    _, height, width, _ = interpreter.get_input_details()[0]["shape"]
    return int(width), int(height)


def preprocess(image, size: tuple, flip: bool = False) -> np.ndarray:
    """Turns an RGB image into the model's uint8 input.

    Centre-crops to a square and resizes with OpenCV: bilinear when enlarging, pixel-area
    averaging when shrinking (no aliasing from a 640x480 webcam frame). OpenCV releases the
    GIL and takes ~0.1 ms for a 100x100 photo where Pillow took ~0.7 ms, time the 2-core
    board otherwise takes from the interpreter (README). On the sign-language digits the
    bilinear enlargement matches Pillow's to within one grey level; bicubic resizing,
    zooming in by 15 % and padding all scored no better.

    Args:
      image: a PIL image or an HxWx3 uint8 RGB array.
      size: the model input (width, height).
      flip: mirror horizontally (training-time augmentation).

    Returns:
      A height x width x 3 uint8 array.
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    else:
        image = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    height, width = image.shape[:2]
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top : top + side, left : left + side]
    if (side, side) != tuple(size):
        shrink = side > min(size)
        image = cv2.resize(
            image, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
    if flip:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


class Extractor:
    """Embeds images with an allocated TFLite interpreter.

    Args:
      interpreter: an allocated interpreter of an embedding extractor whose output is
        ``[1, ..., D]`` (quantised or float).
      backend: ``"edgetpu"`` or ``"cpu"``: where the base graph runs.
      model_path: the model file, for reports.
      runtime: the runtime's name, for reports.
      notice: why the extractor runs on the CPU although an Edge TPU is plugged in (a
        sentence for the user), else ``""``.
      probe: the Edge TPU probe's result when one ran (``server.hw.probe``), else None.
    """

    def __init__(
        self,
        interpreter,
        *,
        backend: str,
        model_path: str = "",
        runtime: str = "",
        notice: str = "",
        probe: Optional[probe.ProbeResult] = None,
    ):
        self.interpreter = interpreter
        self.probe = probe
        self.backend = backend
        self.notice = notice
        self.model_path = str(model_path)
        self.runtime = runtime
        self.size = input_size(interpreter)
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        self._input_index = inp["index"]
        self._output_index = out["index"]
        self._input_dtype = inp["dtype"]
        scale, zero_point = out["quantization"]
        self._scale = np.float32(scale if scale else 1.0)
        self._zero_point = np.float32(zero_point if scale else 0.0)
        self.dim = int(np.prod(out["shape"][1:]))
        self._latencies = collections.deque(maxlen=100)

    @property
    def latency_ms(self) -> float:
        """Median of the last 100 ``embed`` calls, preprocessing included (0 before any)."""
        return statistics.median(self._latencies) if self._latencies else 0.0

    def invoke(self, model_input: np.ndarray) -> np.ndarray:
        """Runs the model on one preprocessed HxWx3 input; returns the float32 embedding (D,)."""
        self.interpreter.set_tensor(self._input_index, model_input[np.newaxis])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._output_index).reshape(-1)
        return (raw.astype(np.float32) - self._zero_point) * self._scale

    def embed(self, image, flip: bool = False) -> np.ndarray:
        """Embeds one RGB image (PIL image or HxWx3 uint8 array).

        Returns:
          A float32 array of shape (D,), dequantised with the output's scale and zero point.
        """
        start = time.monotonic()
        embedding = self.invoke(preprocess(image, self.size, flip))
        self._latencies.append((time.monotonic() - start) * 1000.0)
        return embedding

    def embed_many(self, images: Iterable, flip: bool = False) -> Iterator[np.ndarray]:
        """Embeds images one after the other, yielding (D,) arrays: for offline evaluation."""
        for image in images:
            yield self.embed(image, flip)

    def describe(self) -> dict:
        info = {
            "backend": self.backend,
            "runtime": self.runtime,
            "model": Path(self.model_path).name,
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.probe is not None:
            info["edgetpu"] = {"outcome": self.probe.outcome, "diagnosis": self.probe.diagnosis}
        return info


def open_extractor(
    tpu: str = "auto",
    *,
    model_path: Optional[Path] = None,
    data_dir: Optional[Path] = None,
    mirror: Optional[Path] = None,
    num_threads: Optional[int] = None,
    runtime: Optional[rt.Runtime] = None,
    download: bool = True,
    devices=rt.edgetpu_devices,
    avoid_tpu: str = "",
    edgetpu_lib: Optional[Path] = None,
    probe_result: Optional[probe.ProbeResult] = None,
    prober=probe.probe_edgetpu,
) -> Extractor:
    """Opens the embedding extractor on the Edge TPU or the CPU.

    The Edge TPU is opened in this process only after ``server.hw.probe`` passed in a child
    process with the same library, and with the runtime the probe passed with.

    Args:
      tpu: ``auto`` tries the Edge TPU when Linux sees one and falls back to the CPU with one
        warning; ``on`` requires it (and always probes: the library's own answer counts);
        ``off`` uses the CPU.
      model_path: an explicit CPU model file (overrides the cache and mirror).
      data_dir, mirror, download: where models are found (see ``server.models.locate``).
      num_threads: CPU threads for the interpreter; defaults to the CPU count.
      runtime: a runtime to use instead of the first importable one (tests inject fakes).
      devices: lists the Edge TPUs present (``runtime.edgetpu_devices``; tests inject fakes).
      avoid_tpu: with ``tpu="auto"``, a reason not to use a present Edge TPU (it failed
        earlier in this run); the CPU is used and the reason becomes the ``notice``.
      edgetpu_lib: the libedgetpu file (default: this OS's name, found by the loader).
      probe_result: a probe already run for these settings (``python -m server`` probes once,
        before its worker starts), else ``prober`` runs one.
      prober: ``probe.probe_edgetpu`` (tests inject fakes).

    Raises:
      ValueError: for an unknown ``tpu`` mode.
      models.ModelError: a model is missing or corrupt.
      runtime.EdgeTpuUnavailable: ``tpu="on"`` and no Edge TPU works; the message is the
        probe's diagnosis.
    """
    if tpu not in TPU_MODES:
        raise ValueError(f"--tpu must be one of {', '.join(TPU_MODES)}, not {tpu!r}")
    where = {"data_dir": data_dir, "mirror": mirror, "download": download}
    notice, result = "", None
    if tpu == "off":
        pass
    elif tpu == "auto" and avoid_tpu:
        log.warning("not using the Edge TPU: %s", avoid_tpu)
        notice = avoid_tpu
    elif tpu == "on" or probe_result is not None or devices():
        # auto never downloads the Edge TPU build: a machine without one has no use for it
        tpu_where = dict(where, download=download and tpu == "on")
        result = probe_result or prober(
            edgetpu_lib, cpu_model=model_path, devices=devices, **tpu_where
        )
        if result.ok:
            try:
                return _open_on_edgetpu(result, runtime, tpu_where)
            except (rt.EdgeTpuUnavailable, models.ModelError) as e:
                if tpu == "on":
                    raise
                log.warning("Edge TPU not used, running on the CPU: %s", e)
        elif tpu == "on":
            raise rt.EdgeTpuUnavailable(
                f"Edge TPU {result.outcome}: {result.diagnosis} (meanwhile, --tpu auto or off "
                "runs the kiosk on the CPU)"
            )
        else:
            log.warning(
                "Edge TPU not used (%s), running on the CPU: %s", result.outcome, result.diagnosis
            )
        notice = (
            "The Edge TPU could not be used (the server log says why): the camera runs "
            "on the CPU (slower)."
            if result.ok
            else f"The Edge TPU could not be used ({result.outcome}): {result.diagnosis}. "
            "The camera runs on the CPU (slower)."
        )
    else:
        log.warning("no Edge TPU found (USB or PCIe): running the extractor on the CPU")
    runtime = runtime or rt.load_runtime()
    path = models.locate(models.EXTRACTOR_CPU, path=model_path, **where)
    interpreter = rt.make_cpu_interpreter(str(path), runtime, num_threads)
    log.info("embedding extractor on the CPU (%s, %s)", runtime.name, path.name)
    return Extractor(
        interpreter,
        backend="cpu",
        model_path=path,
        runtime=runtime.name,
        notice=notice,
        probe=result,
    )


def _open_on_edgetpu(result: probe.ProbeResult, runtime: Optional[rt.Runtime], where: dict):
    """The Edge TPU interpreter, with the runtime and library that passed ``result``."""
    path = models.locate(models.EXTRACTOR_EDGETPU, **where)
    runtime = runtime or rt.load_runtime(result.runtime, only=True)
    interpreter = rt.make_edgetpu_interpreter(str(path), runtime, library=result.library)
    log.info("embedding extractor on the Edge TPU: %s", result.diagnosis)
    return Extractor(
        interpreter, backend="edgetpu", model_path=path, runtime=runtime.name, probe=result
    )
