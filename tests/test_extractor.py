"""The embedding extractor on the real model from the mirror; Edge TPU paths through fakes."""

import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from server import models
from server.hw import probe
from server.hw import runtime as rt
from server.hw.extractor import Extractor, open_extractor, preprocess


@pytest.fixture(scope="module")
def known_image(digits_dir):
    return Image.open(sorted((digits_dir / "3").iterdir())[0]).convert("RGB")


def test_embedding_is_float32_of_model_size_and_dequantised(extractor, known_image):
    emb = extractor.embed(known_image)
    assert emb.dtype == np.float32 and emb.shape == (1024,)
    assert extractor.dim == 1024
    # dequantised uint8: non-negative multiples of the output scale
    steps = emb / extractor.interpreter.get_output_details()[0]["quantization"][0]
    assert emb.min() >= 0
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)


def test_same_image_gives_the_same_embedding_in_a_fresh_extractor(
    extractor, known_image, model_dir
):
    first = extractor.embed(known_image)
    again = open_extractor("off", data_dir=model_dir, download=False).embed(known_image)
    np.testing.assert_array_equal(first, again)


def test_known_image_has_a_stable_fingerprint(extractor, known_image):
    # The five strongest features of sign-language digit "3", image IMG_1121.JPG (recorded
    # with ai-edge-litert on x86-64; any runtime that computes the same quantised graph agrees).
    emb = extractor.embed(known_image)
    top = set(np.argsort(-emb)[:5].tolist())
    assert top == REFERENCE_TOP5


def test_array_and_pil_inputs_agree(extractor, known_image):
    np.testing.assert_array_equal(
        extractor.embed(known_image), extractor.embed(np.asarray(known_image))
    )


def test_flip_mirrors_the_input(extractor, known_image):
    size = extractor.size
    np.testing.assert_array_equal(
        preprocess(known_image, size, flip=True), preprocess(known_image, size)[:, ::-1]
    )
    assert not np.array_equal(extractor.embed(known_image, flip=True), extractor.embed(known_image))


def test_non_square_frames_are_centre_cropped_not_stretched():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :80] = 255  # a bar on the left edge that the centre crop removes
    out = preprocess(frame, (224, 224))
    assert out.shape == (224, 224, 3) and out.max() == 0


def test_bad_frames_are_rejected_clearly():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        preprocess(np.zeros((10, 10), np.uint8), (224, 224))


def test_reports_backend_and_latency(extractor, known_image):
    extractor.embed(known_image)
    info = extractor.describe()
    assert info["backend"] == "cpu" and info["runtime"]
    assert info["latency_ms"] > 0


def test_embed_many_yields_one_embedding_per_image(extractor, known_image):
    out = list(extractor.embed_many([known_image, np.asarray(known_image)]))
    assert len(out) == 2 and out[0].shape == (1024,)


def test_corrupt_model_gives_one_clear_error(tmp_path, model_dir):
    good = models.locate(models.EXTRACTOR_CPU, data_dir=model_dir, download=False)
    bad = tmp_path / good.name
    shutil.copy(good, bad)
    with open(bad, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 64)
    with pytest.raises(models.ModelError) as err:
        open_extractor("off", model_path=bad, download=False)
    message = str(err.value)
    assert good.name in message
    assert models.EXTRACTOR_CPU.sha256 in message
    assert "python -m server.models fetch" in message


def test_unknown_tpu_mode_is_refused():
    with pytest.raises(ValueError, match="--tpu must be one of"):
        open_extractor("maybe")


class _NoEdgeTpuRuntime:
    """The real runtime, but its delegate loader fails as it does with no device attached."""

    def __init__(self):
        real = rt.load_runtime()
        self.runtime = rt.Runtime(real.name, real.interpreter_class, self._load_delegate)
        self.calls = []

    def _load_delegate(self, library, options=None):
        self.calls.append(library)
        raise ValueError(f"Failed to load delegate from {library}")


class _Prober:
    """Stands in for ``probe.probe_edgetpu``: answers ``outcome`` and counts its calls."""

    def __init__(self, outcome: str):
        self.outcome = outcome
        self.calls = []

    def __call__(self, library=None, **kwargs):
        self.calls.append(library)
        diagnosis = "fine" if self.outcome == "ok" else "it crashed with SIGSEGV: install X"
        return probe.ProbeResult(
            self.outcome, diagnosis, runtime=rt.load_runtime().name, library="libedgetpu.so.1"
        )


def open_auto(model_dir, fake, prober, devices=lambda: ["usb:fake"], **options):
    """``--tpu auto`` with the fake runtime and prober, on a machine that shows ``devices``."""
    return open_extractor(
        "auto",
        data_dir=model_dir,
        runtime=fake.runtime,
        download=False,
        devices=devices,
        prober=prober,
        **options,
    )


def test_tpu_auto_falls_back_to_cpu_with_one_warning(model_dir, caplog):
    # the probe passed, but the delegate does not load after all (unplugged since)
    fake = _NoEdgeTpuRuntime()
    with caplog.at_level(logging.WARNING):
        ext = open_auto(model_dir, fake, _Prober("ok"))
    assert ext.backend == "cpu"
    assert fake.calls == ["libedgetpu.so.1"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CPU" in warnings[0].getMessage()
    assert "could not be used" in ext.notice  # a present Edge TPU that failed is said so


def test_a_tpu_to_avoid_is_not_opened_and_the_reason_becomes_the_notice(model_dir, caplog):
    fake = _NoEdgeTpuRuntime()
    with caplog.at_level(logging.WARNING):
        ext = open_auto(model_dir, fake, _Prober("ok"), avoid_tpu="It stopped working.")
    assert ext.backend == "cpu" and fake.calls == [] and ext.notice == "It stopped working."
    assert "not using the Edge TPU: It stopped working." in caplog.text


def test_tpu_on_without_device_says_what_to_do(model_dir):
    # the real probe, in a child: no libedgetpu on this machine
    fake = _NoEdgeTpuRuntime()
    with pytest.raises(rt.EdgeTpuUnavailable) as err:
        open_extractor(
            "on", data_dir=model_dir, runtime=fake.runtime, download=False, devices=lambda: []
        )
    assert "Edge TPU no_library: libedgetpu is not installed" in str(err.value)
    assert "install-edgetpu.sh" in str(err.value) and "--tpu auto or off" in str(err.value)
    assert fake.calls == []  # never loaded in this process


def test_a_failed_probe_keeps_the_library_out_of_this_process(model_dir, caplog):
    fake, prober = _NoEdgeTpuRuntime(), _Prober("crashed")
    with caplog.at_level(logging.WARNING):
        ext = open_auto(model_dir, fake, prober, edgetpu_lib="/opt/lib/libedgetpu.so.1")
    assert ext.backend == "cpu" and fake.calls == []
    assert prober.calls == ["/opt/lib/libedgetpu.so.1"]
    assert ext.notice.startswith("The Edge TPU could not be used (crashed): it crashed")
    assert ext.probe.outcome == "crashed" and ext.describe()["edgetpu"]["outcome"] == "crashed"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "Edge TPU not used (crashed), running on the CPU: it crashed with SIGSEGV: install X"
    ]


def test_tpu_on_with_a_failed_probe_raises_its_diagnosis(model_dir):
    with pytest.raises(rt.EdgeTpuUnavailable, match="Edge TPU crashed: it crashed with SIGSEGV"):
        open_extractor("on", data_dir=model_dir, download=False, prober=_Prober("crashed"))


def test_a_probe_already_run_is_not_run_again(model_dir):
    prober = _Prober("ok")
    given = probe.ProbeResult("no_device", "none here")
    ext = open_extractor(
        "auto", data_dir=model_dir, download=False, probe_result=given, prober=prober
    )
    assert ext.backend == "cpu" and prober.calls == [] and ext.probe is given


def test_tpu_auto_never_downloads_the_edgetpu_model(tmp_path, shared_dir, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("auto mode must not download the Edge TPU model")

    monkeypatch.setattr(models, "_download", no_download)
    cpu_only = tmp_path / "mirror"
    cpu_only.mkdir()
    shutil.copy(shared_dir / "models" / models.EXTRACTOR_CPU.filename, cpu_only)
    ext = open_extractor("auto", data_dir=tmp_path / "data", mirror=cpu_only, download=True)
    assert ext.backend == "cpu"


def test_extractor_works_with_a_float_output_model():
    class FloatInterpreter:
        def get_input_details(self):
            return [{"index": 0, "shape": np.array([1, 8, 8, 3]), "dtype": np.uint8}]

        def get_output_details(self):
            return [{"index": 1, "shape": np.array([1, 4]), "quantization": (0.0, 0)}]

        def set_tensor(self, index, value):
            self.value = value

        def invoke(self):
            pass

        def get_tensor(self, index):
            return np.array([[self.value.mean(), 1.0, 2.0, 3.0]], np.float32)

    ext = Extractor(FloatInterpreter(), backend="cpu")
    emb = ext.embed(np.full((8, 8, 3), 10, np.uint8))
    np.testing.assert_allclose(emb, [10.0, 1.0, 2.0, 3.0])


def test_auto_without_a_device_does_not_try_the_delegate(model_dir, caplog):
    fake, prober = _NoEdgeTpuRuntime(), _Prober("ok")
    with caplog.at_level(logging.WARNING):
        ext = open_auto(model_dir, fake, prober, devices=lambda: [])
    assert ext.backend == "cpu" and fake.calls == [] and prober.calls == []
    assert "no Edge TPU found" in caplog.text


def test_edgetpu_devices_reads_usb_ids_and_apex_nodes(tmp_path):
    sysfs, dev = tmp_path / "usb", tmp_path / "dev"
    for name, ids in {
        "1-1": ("1a6e", "089a"),
        "1-2": ("046d", "0825"),
        "2-1": ("18d1", "9302"),
    }.items():
        (sysfs / name).mkdir(parents=True)
        (sysfs / name / "idVendor").write_text(ids[0] + "\n")
        (sysfs / name / "idProduct").write_text(ids[1] + "\n")
    dev.mkdir()
    (dev / "apex_0").touch()
    found = rt.edgetpu_devices(str(sysfs), str(dev))
    assert found == [f"pci:{dev / 'apex_0'}", "usb:1-1", "usb:2-1"]


@pytest.mark.edgetpu
@pytest.mark.skipif(not rt.edgetpu_devices(), reason="no Edge TPU (USB or PCIe) on this machine")
def test_edgetpu_embeddings_match_cpu(model_dir, known_image, extractor):
    tpu = open_extractor("on", data_dir=model_dir, download=False)
    assert tpu.backend == "edgetpu"
    cpu = extractor.embed(known_image)
    emb = tpu.embed(known_image)
    cos = float(emb @ cpu / np.linalg.norm(emb) / np.linalg.norm(cpu))
    assert cos > 0.98


REFERENCE_TOP5 = {304, 410, 488, 664, 720}
