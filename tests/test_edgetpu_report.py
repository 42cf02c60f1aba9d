"""server/edgetpu_report.py: the report's plumbing, with the CPU standing in for the Edge TPU.

These tests check the plumbing (which part runs when, what each measures, what reaches the
file), not the hardware: no Edge TPU is used. On a board, ``deploy/check-edgetpu.sh`` runs
the real thing.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from server import doctor, models
from server import edgetpu_report as er
from server.hw import runtime as rt
from server.hw.probe import ProbeResult
from server.settings import Settings


class Reversed:
    """An extractor whose embeddings are another's backwards: a stand-in that disagrees."""

    def __init__(self, extractor):
        self.inner = extractor
        self.interpreter, self.size = extractor.interpreter, extractor.size
        self.backend, self.runtime = "reversed", extractor.runtime

    def embed(self, image, flip=False):
        return self.inner.embed(image, flip)[::-1].copy()


def passing_probe(**kwargs):
    return ProbeResult("ok", "", "ai_edge_litert", "2.3.0", "libedgetpu.so.1", "16.0", "usb:2-1")


def quiet_machine(tmp_path) -> doctor.Machine:
    (tmp_path / "sys").mkdir(exist_ok=True)
    (tmp_path / "dev").mkdir(exist_ok=True)
    return doctor.Machine(
        sysfs=str(tmp_path / "sys"),
        dev=str(tmp_path / "dev"),
        systemd_dir=str(tmp_path / "none"),
        user_groups=lambda name: None,
        model_places=[],
    )


@pytest.fixture
def cpu_hardware(extractor, model_dir):
    """The CPU extractor as both sides, the CPU model as the export's base: plumbing only."""
    cpu_base = models.locate(models.EXTRACTOR_CPU, data_dir=model_dir, download=False)
    runtime = rt.load_runtime()
    return er.Hardware(
        probe=passing_probe,
        open_tpu=lambda result: extractor,
        open_cpu=lambda: extractor,
        make_interpreter=lambda path, result: rt.make_cpu_interpreter(path, runtime),
        base_model=cpu_base.read_bytes,
        run_tests=lambda: {"ran": True, "returncode": 0, "summary": "1 passed in 2.00s"},
    )


def build(tmp_path, model_dir, hardware, photos):
    path = tmp_path / "report.json"
    data = er.build_report(
        path,
        Settings(data_dir=model_dir),
        hardware,
        photos_dir=photos,
        machine=quiet_machine(tmp_path),
        environ={},
        rounds=3,
    )
    assert json.loads(path.read_text()) == json.loads(json.dumps(data, default=str))
    return data


def test_every_part_reaches_the_file_and_agrees_when_both_sides_are_the_cpu(
    tmp_path, model_dir, cpu_hardware, digits_dir
):
    """Plumbing, not hardware: with the same extractor on both sides everything must agree."""
    data = build(tmp_path, model_dir, cpu_hardware, digits_dir)
    assert [c["name"] for c in data["machine"]["checks"]] == list(doctor.ROWS)
    assert data["probe"]["outcome"] == "ok" and data["probe"]["device"] == "usb:2-1"
    assert data["benchmark"]["edgetpu"]["backend"] == "cpu"
    assert data["benchmark"]["cpu"]["embed_ms"] > 0
    emb = data["embeddings"]
    assert emb["photos"] == 50 and emb["tested_on"] == 20  # 5 a class: 3 train, 2 test
    assert emb["cosine_median"] == pytest.approx(1.0) and emb["cosine_min"] == pytest.approx(1.0)
    assert emb["max_abs_difference"] == 0.0 and emb["agreement_pct"] == 100.0
    assert emb["accuracy_cpu_pct"] == emb["accuracy_tpu_pct"] >= 50.0
    exported = data["exported_model"]
    assert exported["classes"] == 10 and exported["agreement_pct"] == 100.0
    assert exported["max_prob_difference"] < 1e-4
    assert data["tests"]["summary"] == "1 passed in 2.00s"
    assert "running" not in data
    assert data["verdict"] == "the Edge TPU works here and agrees with the CPU"


def test_a_side_that_disagrees_shows_in_the_figures_and_the_verdict(
    tmp_path, model_dir, cpu_hardware, extractor, digits_dir
):
    hardware = cpu_hardware._replace(open_tpu=lambda result: Reversed(extractor))
    data = build(tmp_path, model_dir, hardware, digits_dir)
    emb = data["embeddings"]
    assert emb["cosine_median"] < 0.95 and emb["agreement_pct"] < 100.0
    assert data["verdict"].startswith("the Edge TPU runs, but: the CPU-trained head agrees")


def test_without_a_working_edgetpu_the_report_says_why_and_keeps_the_machine_facts(
    tmp_path, model_dir, digits_dir
):
    def refuse(*args):
        raise AssertionError("the Edge TPU must not be opened after a failed probe")

    def no_device(**kwargs):
        return ProbeResult("no_device", "plug in the Coral USB Accelerator (a USB 3 port)")

    hardware = er.Hardware(no_device, refuse, refuse, refuse, refuse, lambda: {"ran": False})
    data = build(tmp_path, model_dir, hardware, digits_dir)
    assert data["verdict"] == (
        "the Edge TPU does not work here: plug in the Coral USB Accelerator (a USB 3 port)"
    )
    for part in ("benchmark", "embeddings", "exported_model"):
        assert data[part] == {
            "skipped": "the Edge TPU probe did not pass: plug in the Coral USB Accelerator "
            "(a USB 3 port)"
        }
    assert {c["name"] for c in data["machine"]["checks"]} == set(doctor.ROWS)
    assert data["tests"]["ran"] is False


def test_the_file_names_the_running_part_and_a_failing_part_does_not_stop_the_rest(
    tmp_path, model_dir, cpu_hardware, extractor, digits_dir
):
    seen = {}

    def open_tpu(result):
        # what a segfault here would leave behind: the parts so far, and this one's name
        seen.update(json.loads((tmp_path / "report.json").read_text()))
        return extractor

    def no_base():
        raise OSError("model_edgetpu.tflite: no such file")

    hardware = cpu_hardware._replace(open_tpu=open_tpu, base_model=no_base)
    data = build(tmp_path, model_dir, hardware, digits_dir)
    assert seen["running"] == "benchmark" and "probe" in seen and "benchmark" not in seen
    assert data["exported_model"]["error"] == "OSError: model_edgetpu.tflite: no such file"
    assert data["tests"]["summary"] == "1 passed in 2.00s"
    assert "exported_model failed" in data["verdict"]


def test_no_photos_are_skipped_with_the_flag_to_give(tmp_path, model_dir, cpu_hardware):
    empty = tmp_path / "photos"
    empty.mkdir()
    data = build(tmp_path, model_dir, cpu_hardware, empty)
    assert "--photos DIR" in data["embeddings"]["skipped"]
    assert "benchmark" in data and "edgetpu" in data["benchmark"]


def test_load_photos_takes_the_same_share_of_every_class(digits_dir):
    photos = er.load_photos(digits_dir, 50)
    assert len(photos.images) == 50 and photos.classes == [str(d) for d in range(10)]
    assert np.bincount(photos.labels).tolist() == [5] * 10
    assert photos.files[0].startswith("0/") and photos.images[0].mode == "RGB"


def test_edgetpu_tests_run_as_a_child_and_report_the_summary(tmp_path):
    calls = []

    def run(cmd, **kwargs):
        calls.append((cmd, kwargs["cwd"]))
        out = "SKIPPED [1] tests/test_x.py:3: no Edge TPU\n2 skipped, 500 deselected in 7.0s\n"
        return subprocess.CompletedProcess(cmd, 0, out, "")

    (tmp_path / "tests").mkdir()
    result = er.run_edgetpu_tests(tmp_path, run=run)
    assert result["summary"] == "2 skipped, 500 deselected in 7.0s"
    assert result["skipped"] == ["SKIPPED [1] tests/test_x.py:3: no Edge TPU"]
    assert calls[0][0][-3:] == ["-m", "edgetpu", "tests"] and calls[0][1] == str(tmp_path)
    assert er.run_edgetpu_tests(tmp_path / "installed", run=run)["ran"] is False


def test_a_photos_flag_that_is_not_a_folder_changes_nothing(tmp_path, capsys):
    report = tmp_path / "report.json"
    code = doctor.main(["--hardware-report", str(report), "--photos", str(tmp_path / "nope")])
    assert code == 2 and not report.exists()
    assert "--photos" in capsys.readouterr().out
    assert Path(tmp_path).is_dir()
