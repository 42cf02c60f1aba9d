"""The Edge TPU probe: try a libedgetpu / TFLite runtime pairing in a child process first.

A libedgetpu built for another TensorFlow version than the runtime's segfaults when the
delegate loads (Coral's apt ``libedgetpu1-std`` 16.0 is built for TF 2.5; runtimes from 2.12
on crash with it: google-coral/edgetpu#812). A crash there would take a serving process with
it, so no process that serves users loads a pairing that has not passed this probe.

The child (``python -m server.hw.probe --child SPEC``, the same interpreter) loads the library,
asks it for its version and devices, creates the delegate through the runtime, loads the
``_edgetpu`` extractor, allocates, invokes it a few times on a known image and compares the
embedding with the CPU model's. It reports each stage on stdout as it enters it, so that a
child that dies of a signal, or hangs, is diagnosed with the stage it reached. The parent
turns the child's end into one of ``OUTCOMES`` and a one-line diagnosis that names the fix.

Command line (a human-readable report of the same probe)::

    python -m server.hw.probe [--edgetpu-lib PATH] [--runtime NAME] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, NamedTuple, Optional, Sequence

OUTCOMES = ("ok", "no_device", "no_library", "crashed", "hung", "aborted", "wrong_output", "error")

# Edge TPU first: the runtime a libedgetpu rebuilt per TensorFlow version is paired with
# (tflite_runtime 2.17.1 with libedgetpu 16.0tf2.17.1, as Frigate ships it), then LiteRT,
# which that libedgetpu's maintainer reports working, then full TensorFlow.
EDGETPU_RUNTIMES = ("tflite_runtime", "ai_edge_litert", "tensorflow")
_DISTRIBUTIONS = {
    "tflite_runtime": "tflite-runtime",
    "ai_edge_litert": "ai-edge-litert",
    "tensorflow": "tensorflow",
}
# The USB Accelerator loads its firmware on first open (a few seconds); a hang is longer.
PROBE_TIMEOUT_S = 30.0
INVOKES = 10
# Cosine similarity of the Edge TPU's and the CPU's embedding of the known image. Both run the
# same uint8 graph, so they agree to within rounding: two CPU kernel sets alone (XNNPACK and
# TFLite's reference kernels) give 0.9990 on the probe's picture and 0.9983-0.9995 on 52 digit
# photos here (tests/test_probe.py), so 0.98 leaves room for the Edge TPU's own rounding.
MIN_SIMILARITY = 0.98
INSTALL_FIX = (
    "install the matching pair with the Edge TPU installer: sudo deploy/install-edgetpu.sh "
    "(Raspberry Pi: sudo deploy/install-rpi-coral-usb.sh)"
)
_ROOT = Path(__file__).resolve().parents[2]


class ProbeResult(NamedTuple):
    """What one probe (or the best of several) found. ``attempts`` holds each runtime's."""

    outcome: str
    diagnosis: str
    runtime: str = ""
    runtime_version: str = ""
    library: str = ""
    library_version: str = ""
    device: str = ""
    ms_per_inference: float = 0.0
    similarity: float = 0.0
    signal: str = ""
    attempts: tuple = ()

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def as_dict(self) -> dict:
        d = self._asdict()
        d["attempts"] = [a.as_dict() for a in self.attempts]
        return d


# ----- the parent's side ---------------------------------------------------------------------


def installed_runtimes(names: Iterable[str] = EDGETPU_RUNTIMES) -> list:
    """The runtimes among ``names`` that are installed, found without importing them."""
    return [n for n in names if importlib.util.find_spec(n) is not None]


def probe_edgetpu(
    library: Optional[str] = None,
    *,
    runtimes: Optional[Sequence[str]] = None,
    model: Optional[Path] = None,
    cpu_model: Optional[Path] = None,
    data_dir: Optional[Path] = None,
    mirror: Optional[Path] = None,
    download: bool = False,
    timeout: float = PROBE_TIMEOUT_S,
    devices=None,
) -> ProbeResult:
    """Probes the Edge TPU with each installed runtime in turn; the first that passes wins.

    Never loads libedgetpu in the calling process. A missing library or device ends the search
    (no runtime changes that); a crash, an abort or a wrong output tries the next runtime.

    Args:
      library: the libedgetpu file (default: this OS's name, found by the dynamic loader).
      runtimes: runtime names to try, in order (default: the installed ``EDGETPU_RUNTIMES``).
      model, cpu_model: the ``_edgetpu`` and CPU extractor files (default: located through
        ``server.models`` in ``data_dir``/``mirror``).
      download: whether a missing model may be downloaded.
      timeout: seconds a child may take before it counts as hung.
      devices: lists the Edge TPUs Linux sees (``runtime.edgetpu_devices``), for the hint.

    Returns:
      The passing attempt, or the preferred runtime's failure; ``attempts`` lists them all.
    """
    from server import models
    from server.hw import runtime as rt

    library = str(library or rt.EDGETPU_SHARED_LIB["Linux"])
    seen = (devices or rt.edgetpu_devices)()
    try:
        model = model or models.locate(
            models.EXTRACTOR_EDGETPU, data_dir=data_dir, mirror=mirror, download=download
        )
        cpu_model = cpu_model or models.locate(
            models.EXTRACTOR_CPU, data_dir=data_dir, mirror=mirror, download=download
        )
    except models.ModelError as e:
        return ProbeResult("error", f"the Edge TPU cannot be tried: {e}", library=library)
    names = list(runtimes) if runtimes is not None else installed_runtimes()
    if not names:
        return ProbeResult(
            "error",
            "no TFLite runtime is installed to load the Edge TPU delegate with: " + INSTALL_FIX,
            library=library,
        )
    attempts = []
    for name in names:
        spec = {"runtime": name, "library": library, "model": str(model), "cpu": str(cpu_model)}
        result = _diagnose(_run_child(spec, timeout), spec, seen, timeout)
        attempts.append(result)
        if result.ok or result.outcome in ("no_library", "no_device", "hung"):
            break
    best = next((a for a in attempts if a.ok), attempts[0])
    if not best.ok and len(attempts) > 1:
        tried = "; ".join(f"{a.runtime}: {a.outcome}" for a in attempts)
        best = best._replace(diagnosis=f"{best.diagnosis} (tried {tried})")
    return best._replace(attempts=tuple(attempts))


class _ChildEnd(NamedTuple):
    returncode: Optional[int]  # None: killed after the timeout
    stages: list
    report: dict
    stderr: str


def _run_child(spec: dict, timeout: float) -> _ChildEnd:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.hw.probe", "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(_ROOT),
        start_new_session=True,  # a hung child's threads go with its group
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    stages, report = [], {}
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a library printing to stdout
        if isinstance(message, dict) and "stage" in message:
            stages.append(message["stage"])
            report.update(message.get("facts") or {})
        elif isinstance(message, dict) and "report" in message:
            report.update(message["report"])
    return _ChildEnd(code, stages, report, err.decode("utf-8", "replace")[-2000:])


_STAGE_WORDS = {
    "import_runtime": "importing the runtime",
    "load_library": "loading libedgetpu",
    "list_devices": "listing the Edge TPUs",
    "create_delegate": "creating the Edge TPU delegate",
    "load_model": "loading the Edge TPU model",
    "allocate": "allocating the model on the Edge TPU",
    "invoke": "running the model on the Edge TPU",
    "compare": "running the CPU model to compare",
}


def _diagnose(end: _ChildEnd, spec: dict, seen: list, timeout: float) -> ProbeResult:
    report = end.report
    base = {
        "runtime": spec["runtime"],
        "runtime_version": report.get("runtime_version", ""),
        "library": report.get("library", spec["library"]),
        "library_version": report.get("library_version", ""),
        "device": report.get("device", ""),
    }
    stage = _STAGE_WORDS.get(end.stages[-1], end.stages[-1]) if end.stages else "starting"
    pairing = _pairing(base)
    if end.returncode is None:
        return ProbeResult(
            "hung",
            f"the Edge TPU probe ({pairing}) did not finish within {timeout:.0f} s while "
            f"{stage}: unplug the accelerator, plug it into a USB 3 port (a powered hub if "
            "the board's port is weak) and restart the kiosk; if it hangs again, " + INSTALL_FIX,
            **base,
        )
    if end.returncode < 0:
        return _died(-end.returncode, stage, pairing, base)
    if report.get("outcome") in OUTCOMES:
        outcome = report["outcome"]
        return ProbeResult(
            outcome,
            _explain(outcome, report, pairing, seen),
            ms_per_inference=float(report.get("ms_per_inference", 0.0)),
            similarity=float(report.get("similarity", 0.0)),
            **base,
        )
    last = end.stderr.strip().splitlines()[-1:] or [f"exit code {end.returncode}"]
    return ProbeResult(
        "error", f"the Edge TPU probe failed while {stage} ({last[0]}): {INSTALL_FIX}", **base
    )


def _pairing(base: dict) -> str:
    runtime = " ".join(filter(None, [base["runtime"], base["runtime_version"]]))
    library = base["library"] + (f" {base['library_version']}" if base["library_version"] else "")
    return f"{runtime} with {library}"


def _died(signum: int, stage: str, pairing: str, base: dict) -> ProbeResult:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if name == "SIGABRT":
        return ProbeResult(
            "aborted",
            f"libedgetpu aborted the probe ({pairing}) while {stage}, as it does on a USB "
            "error or a device in a bad state: replug the accelerator (USB 3 port, powered hub) "
            "and restart; if it aborts again, " + INSTALL_FIX,
            signal=name,
            **base,
        )
    why = (
        "this libedgetpu was not built for this runtime's TensorFlow version (Coral's apt "
        "libedgetpu 16.0 is built for TensorFlow 2.5 and crashes with runtimes from 2.12 on)"
    )
    if name == "SIGILL":
        why += ", or the runtime was built for instructions this processor lacks"
    return ProbeResult(
        "crashed",
        f"the Edge TPU probe ({pairing}) crashed with {name} while {stage}: {why}; "
        "the kiosk runs on the CPU until you " + INSTALL_FIX,
        signal=name,
        **base,
    )


def _explain(outcome: str, report: dict, pairing: str, seen: list) -> str:
    if outcome == "ok":
        return (
            f"Edge TPU ok on {report.get('device') or 'the default device'}: "
            f"{report.get('ms_per_inference', 0):.1f} ms an inference ({pairing})"
        )
    if outcome == "no_library":
        return (
            f"libedgetpu is not installed ({report.get('message', '')}): {INSTALL_FIX}, "
            "or name the library file with --edgetpu-lib PATH"
        )
    if outcome == "no_device":
        hint = (
            f"Linux sees {', '.join(seen)}, but libedgetpu cannot open it: check the udev "
            "rule and that the service user is in the plugdev (USB) or apex (PCIe) group"
            if seen
            else "Linux sees no Edge TPU either: plug the USB Accelerator into a USB 3 port, "
            "or for PCIe/M.2 load the driver (lsmod | grep apex)"
        )
        return f"libedgetpu ({pairing}) found no Edge TPU: {hint}; then restart the kiosk"
    if outcome == "wrong_output":
        return (
            f"the Edge TPU's embedding differs from the CPU's (similarity "
            f"{report.get('similarity', 0):.3f}, at least {MIN_SIMILARITY} expected) with "
            f"{pairing}: run `python -m server.models fetch` to restore the models, then "
            + INSTALL_FIX
        )
    return f"the Edge TPU could not be used ({report.get('message', '')}) with {pairing}: " + (
        INSTALL_FIX
    )


# ----- the child's side ----------------------------------------------------------------------


def _stage(name: str, **facts) -> None:
    """Tells the parent the stage entered, and what is known so far (a crash keeps it)."""
    print(json.dumps({"stage": name, "facts": facts}), flush=True)


def _report(**report) -> int:
    print(json.dumps({"report": report}), flush=True)
    return 0


class _Device(ctypes.Structure):  # edgetpu_c.h: struct edgetpu_device
    _fields_ = [("type", ctypes.c_int), ("path", ctypes.c_char_p)]


def _library_facts(library: str) -> dict:
    """Loads libedgetpu with ctypes: its file, version and devices (edgetpu_c.h)."""
    lib = ctypes.CDLL(library)
    facts = {"library": _loaded_path(library)}
    if hasattr(lib, "edgetpu_version"):
        lib.edgetpu_version.restype = ctypes.c_char_p
        facts["library_version"] = (lib.edgetpu_version() or b"").decode("utf-8", "replace")
    _stage("list_devices", **facts)
    if hasattr(lib, "edgetpu_list_devices"):
        lib.edgetpu_list_devices.restype = ctypes.POINTER(_Device)
        lib.edgetpu_list_devices.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
        count = ctypes.c_size_t(0)
        found = lib.edgetpu_list_devices(ctypes.byref(count))
        kinds = {0: "pci", 1: "usb"}
        facts["devices"] = [
            f"{kinds.get(found[i].type, '?')}:{(found[i].path or b'').decode()}"
            for i in range(count.value)
        ]
        if found and hasattr(lib, "edgetpu_free_devices"):
            lib.edgetpu_free_devices(found)
    return facts


def _loaded_path(library: str) -> str:
    name = os.path.basename(library)
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if os.path.basename(path) == name or path == library:
                    return os.path.realpath(path)
    except OSError:
        pass  # not Linux: the name given is the best we know
    return library


def _known_input(shape) -> object:
    """A smooth, deterministic picture (no file needed): low-frequency noise, enlarged."""
    import cv2
    import numpy as np

    _, height, width, _ = shape
    small = np.random.default_rng(1234).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (int(width), int(height)), interpolation=cv2.INTER_CUBIC)[None]


def _embedding(interpreter, model_input):
    import numpy as np

    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], model_input)
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    scale, zero = out["quantization"]
    raw = interpreter.get_tensor(out["index"]).reshape(-1).astype(np.float32)
    return (raw - zero) * (scale or 1.0)


def child_main(spec: dict) -> int:
    """The probe proper, run in the child: prints stages, then one report line."""
    import numpy as np

    _stage("import_runtime")
    name = spec["runtime"]
    facts = {}
    try:
        facts["runtime_version"] = importlib.metadata.version(_DISTRIBUTIONS.get(name, name))
    except importlib.metadata.PackageNotFoundError:
        pass  # a runtime importable without its metadata: the version stays unknown
    try:
        module = importlib.import_module(
            "tensorflow.lite" if name == "tensorflow" else f"{name}.interpreter"
        )
    except ImportError as e:
        return _report(outcome="error", message=f"{name} does not import: {e}", **facts)
    _stage("load_library", **facts)
    try:
        facts.update(_library_facts(spec["library"]))
    except OSError as e:
        return _report(outcome="no_library", message=str(e).splitlines()[0], **facts)
    devices = facts.pop("devices", None)
    if devices:
        facts["device"] = devices[0]
    _stage("create_delegate", **facts)
    try:
        delegate = module.load_delegate(spec["library"], {})
    except (ValueError, RuntimeError) as e:
        outcome = "no_device" if devices == [] or devices is None else "error"
        return _report(outcome=outcome, message=str(e).splitlines()[0], **facts)
    try:
        _stage("load_model")
        tpu = module.Interpreter(model_path=spec["model"], experimental_delegates=[delegate])
        _stage("allocate")
        tpu.allocate_tensors()
        model_input = _known_input(tpu.get_input_details()[0]["shape"])
        _stage("invoke")
        tpu_embedding = _embedding(tpu, model_input)  # the first invoke loads the model
        times = []
        for _ in range(INVOKES):
            start = time.perf_counter()
            tpu.invoke()
            times.append((time.perf_counter() - start) * 1000.0)
        _stage("compare")
        cpu = module.Interpreter(model_path=spec["cpu"], num_threads=1)
        cpu.allocate_tensors()
        cpu_embedding = _embedding(cpu, model_input)
    except (ValueError, RuntimeError) as e:
        return _report(outcome="error", message=str(e).splitlines()[0], **facts)
    similarity = float(
        tpu_embedding
        @ cpu_embedding
        / max(np.linalg.norm(tpu_embedding) * np.linalg.norm(cpu_embedding), 1e-12)
    )
    return _report(
        outcome="ok" if similarity >= MIN_SIMILARITY else "wrong_output",
        similarity=round(similarity, 6),
        ms_per_inference=round(float(np.median(times)), 3),
        **facts,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m server.hw.probe", description=__doc__.split("\n")[0]
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--edgetpu-lib", help="the libedgetpu file (default: libedgetpu.so.1)")
    p.add_argument("--runtime", action="append", help="a runtime to try (repeatable)")
    p.add_argument("--data-dir", type=Path, help="where the models are")
    p.add_argument("--timeout", type=float, default=PROBE_TIMEOUT_S)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    result = probe_edgetpu(
        args.edgetpu_lib, runtimes=args.runtime, data_dir=args.data_dir, timeout=args.timeout
    )
    print(json.dumps(result.as_dict()) if args.json else f"{result.outcome}: {result.diagnosis}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
