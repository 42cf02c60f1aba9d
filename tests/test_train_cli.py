"""The offline training CLI on a small subset of the sign-language digits, with the real model."""

import contextlib
import io
import json
import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from server import bundle, train

CLASSES = ("0", "3", "7")


def _subset(src, dest, per_class):
    for name in CLASSES:
        (dest / name).mkdir(parents=True)
        for path in sorted((src / name).iterdir())[:per_class]:
            os.symlink(path, dest / name / path.name)
    return dest


@pytest.fixture(scope="module")
def small(digits_dir, tmp_path_factory):
    return _subset(digits_dir, tmp_path_factory.mktemp("digits"), 20)


def _run(capsys, model_dir, *args):
    code = train.main([*map(str, args), "--data-dir", str(model_dir), "--tpu", "off"])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def auto_run(small, model_dir, tmp_path_factory):
    """One run shared by the tests below (capsys is per test, so the output is redirected)."""
    out_dir = tmp_path_factory.mktemp("out")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = train.main(
            [
                str(small),
                "--out",
                str(out_dir),
                "--method",
                "auto",
                "--target",
                "edgetpu",
                "--json",
                "--data-dir",
                str(model_dir),
                "--tpu",
                "off",
            ]
        )
    return code, stdout.getvalue(), stderr.getvalue(), out_dir


def test_writes_models_labels_and_a_project(auto_run, model_dir, extractor):
    code, out, err, out_dir = auto_run
    assert code == 0, err
    report = json.loads(out)  # stdout is exactly one JSON object
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "labels.txt",
        "model.tflite",
        "model_edgetpu.tflite",
        "project.zip",
    ]
    assert (out_dir / "labels.txt").read_text() == "0 0\n1 3\n2 7\n"
    assert report["images"] == {"train": 48, "test": 12}
    assert report["method"] == "auto" and report["target"] == "edgetpu"
    assert b"edgetpu-custom-op" in (out_dir / "model_edgetpu.tflite").read_bytes()
    # the project holds the training split and imports into this kiosk
    project = bundle.read_bundle(
        (out_dir / "project.zip").read_bytes(),
        running=bundle.identify(extractor.model_path, extractor.dim),
    )
    assert [(c.name, len(c.examples)) for c in project.classes] == [("0", 16), ("3", 16), ("7", 16)]
    assert project.method == "auto" and all(c.thumbnails for c in project.classes)
    interpreter = Interpreter(model_path=str(out_dir / "model.tflite"))
    interpreter.allocate_tensors()
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 3]


def test_reports_held_out_accuracy_of_the_learner_and_the_exported_model(auto_run):
    code, out, err, _ = auto_run
    report = json.loads(out)
    accuracy = report["accuracy"]
    # three hand signs: chance is 1/3
    assert accuracy["learner"] >= 0.75 and accuracy["exported"] >= 0.75
    assert accuracy["agreement"] == 1.0 and accuracy["max_prob_diff"] <= 0.02
    assert report["evaluated"] == "model.tflite"
    assert set(report["timings_ms"]) == {"train", "export", "bundle_write", "bundle_import"}
    assert "embedding [" in err and "running model.tflite [" in err  # progress on stderr


def test_table_output_and_knn_says_how_it_was_exported(small, model_dir, tmp_path, capsys):
    code, out, err = _run(
        capsys, model_dir, small, "--out", tmp_path, "--method", "knn", "--no-thumbnails"
    )
    assert code == 0, err
    assert "held-out accuracy: knn" in out and "wrote " in out
    assert "nearest class mean" in err
    project = bundle.read_bundle((tmp_path / "project.zip").read_bytes())
    assert project.method == "knn" and all(c.thumbnails is None for c in project.classes)
    assert np.all(np.isfinite(project.classes[0].examples))


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (lambda d: (d / "only").mkdir(), [], "at least 2 are needed"),
        (lambda d: [(d / "a").mkdir(), (d / "b").mkdir()], [], "holds no images"),
        (lambda d: None, ["--test-fraction", "1"], "--test-fraction"),
    ],
)
def test_unusable_input_is_a_one_line_error(capsys, model_dir, tmp_path, setup, args, message):
    data = tmp_path / "data"
    data.mkdir()
    setup(data)
    code, out, err = _run(capsys, model_dir, data, "--out", tmp_path / "out", *args)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_out_must_be_a_folder(small, model_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, model_dir, small, "--out", tmp_path / "file")
    assert code == 2 and "not a folder" in err
