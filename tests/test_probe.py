"""The Edge TPU probe against stand-in libedgetpu libraries built with the C compiler.

Each stand-in exports what the real libedgetpu does and misbehaves as a broken install does
(tests/native/edgetpu_standin.c). The probe runs it in a child process and must name the
outcome; the calling process must never load it. No real Edge TPU is involved: these tests
show the probe's verdicts, not that any real board works.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from server import models
from server.hw import probe
from server.hw import runtime as rt

import standin

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("standin")
    return {mode: standin.build(mode, folder) for mode in standin.MODES}


@pytest.fixture(scope="module")
def cpu_model(model_dir):
    return models.locate(models.EXTRACTOR_CPU, data_dir=model_dir, download=False)


def run(lib, model_dir, **kwargs):
    return probe.probe_edgetpu(
        str(lib), runtimes=["ai_edge_litert"], data_dir=model_dir, devices=lambda: [], **kwargs
    )


@pytest.mark.parametrize(
    "mode, outcome, signal_name",
    [
        ("segv", "crashed", "SIGSEGV"),
        ("ill", "crashed", "SIGILL"),
        ("abort", "aborted", "SIGABRT"),
        ("nodevice", "no_device", ""),
    ],
)
def test_each_broken_library_gets_its_verdict(libs, model_dir, mode, outcome, signal_name):
    result = run(libs[mode], model_dir)
    assert (result.outcome, result.signal) == (outcome, signal_name)
    assert result.runtime == "ai_edge_litert" and result.runtime_version
    assert result.library == str(libs[mode])
    assert "\n" not in result.diagnosis
    if outcome == "crashed":
        # what was learnt before the crash is kept: the library's own version string
        assert result.library_version == f"BuildLabel(stand-in {mode}), RuntimeVersion(14)"
        assert f"crashed with {signal_name} while creating the Edge TPU delegate" in (
            result.diagnosis
        )
        assert "not built for this runtime's TensorFlow version" in result.diagnosis
        assert "install-edgetpu.sh" in result.diagnosis
    if mode == "nodevice":
        assert "found no Edge TPU" in result.diagnosis and "USB 3" in result.diagnosis


def test_a_hanging_library_is_killed_after_the_timeout(libs, model_dir):
    result = run(libs["hang"], model_dir, timeout=3)
    assert result.outcome == "hung"
    assert "did not finish within 3 s while creating the Edge TPU delegate" in result.diagnosis


def test_a_missing_library_is_no_library(tmp_path, model_dir):
    result = run(tmp_path / "libedgetpu.so.1", model_dir)
    assert result.outcome == "no_library"
    assert "--edgetpu-lib" in result.diagnosis and "install-edgetpu.sh" in result.diagnosis


def test_a_working_delegate_passes_and_reports_speed_and_agreement(libs, model_dir, cpu_model):
    # the stand-in claims no node, so the CPU model stands in for the _edgetpu one: this shows
    # the probe's ok path and its figures, not an Edge TPU's
    result = run(libs["works"], model_dir, model=cpu_model)
    assert result.ok, result.diagnosis
    assert result.similarity == pytest.approx(1.0)
    assert result.ms_per_inference > 0
    assert result.device == "usb:/sys/bus/usb/devices/9-9"
    assert result.attempts == (result._replace(attempts=()),)
    assert json.loads(json.dumps(result.as_dict()))["outcome"] == "ok"


def test_the_edgetpu_model_without_a_real_delegate_is_an_error(libs, model_dir):
    result = run(libs["works"], model_dir)
    assert result.outcome == "error"
    assert "edgetpu-custom-op" in result.diagnosis


def test_the_next_runtime_is_tried_after_a_crash(tmp_path, libs, model_dir, cpu_model, monkeypatch):
    # a "tflite_runtime" whose delegate loading crashes, as a mismatched pairing does
    fake = tmp_path / "site" / "tflite_runtime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "interpreter.py").write_text(
        "import os, signal\n"
        "from ai_edge_litert.interpreter import Interpreter  # noqa: F401\n"
        "def load_delegate(library, options=None):\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    result = probe.probe_edgetpu(
        str(libs["works"]),
        runtimes=["tflite_runtime", "ai_edge_litert"],
        model=cpu_model,
        data_dir=model_dir,
        devices=lambda: [],
    )
    assert result.ok and result.runtime == "ai_edge_litert"
    assert [(a.runtime, a.outcome, a.signal) for a in result.attempts] == [
        ("tflite_runtime", "crashed", "SIGSEGV"),
        ("ai_edge_litert", "ok", ""),
    ]


def test_no_device_stops_the_search(libs, model_dir):
    result = probe.probe_edgetpu(
        str(libs["nodevice"]),
        runtimes=["ai_edge_litert", "ai_edge_litert"],
        data_dir=model_dir,
        devices=lambda: ["usb:2-1"],
    )
    assert result.outcome == "no_device" and len(result.attempts) == 1
    assert "Linux sees usb:2-1, but libedgetpu cannot open it" in result.diagnosis


def test_an_embedding_far_from_the_cpu_one_is_wrong_output():
    end = probe._ChildEnd(0, ["compare"], {"outcome": "wrong_output", "similarity": 0.42}, "")
    spec = {"runtime": "ai_edge_litert", "library": "libedgetpu.so.1"}
    result = probe._diagnose(end, spec, [], 30)
    assert result.outcome == "wrong_output" and result.similarity == 0.42
    assert "similarity 0.420, at least 0.98 expected" in result.diagnosis


def test_cpu_kernels_agree_far_above_the_similarity_line(cpu_model):
    # XNNPACK against TFLite's reference kernels on the probe's picture: both compute the same
    # uint8 graph, as the Edge TPU does, so their embeddings agree to within rounding
    from ai_edge_litert import interpreter as litert

    model_input = probe._known_input((1, 224, 224, 3))
    embeddings = []
    for resolver in (litert.OpResolverType.AUTO, litert.OpResolverType.BUILTIN_REF):
        interpreter = litert.Interpreter(
            model_path=str(cpu_model), experimental_op_resolver_type=resolver
        )
        interpreter.allocate_tensors()
        embeddings.append(probe._embedding(interpreter, model_input))
    a, b = embeddings
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > probe.MIN_SIMILARITY + 0.015


def test_the_calling_process_never_loads_the_library(libs, model_dir):
    run(libs["works"], model_dir)
    maps = Path(f"/proc/{os.getpid()}/maps").read_text()
    assert str(libs["works"]) not in maps


def test_the_command_line_prints_one_verdict_line(libs, model_dir):
    done = subprocess.run(
        [sys.executable, "-m", "server.hw.probe", "--edgetpu-lib", str(libs["segv"])]
        + ["--runtime", "ai_edge_litert", "--data-dir", str(model_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout.startswith("crashed: the Edge TPU probe") and done.stdout.count("\n") == 1


@pytest.mark.edgetpu
@pytest.mark.skipif(not rt.edgetpu_devices(), reason="no Edge TPU (USB or PCIe) on this machine")
def test_the_probe_passes_on_a_real_edgetpu(model_dir):
    result = probe.probe_edgetpu(data_dir=model_dir)
    assert result.ok, result.diagnosis
    assert result.similarity >= probe.MIN_SIMILARITY and result.library_version
