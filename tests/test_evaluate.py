"""The evaluation CLI on a small subset of the sign-language digits, with the real model."""

import json
import os

import pytest

from server import evaluate

CLASSES = ("0", "3", "7")


def _subset(src, dest, per_class, start=0):
    for name in CLASSES:
        (dest / name).mkdir(parents=True)
        for path in sorted((src / name).iterdir())[start : start + per_class]:
            os.symlink(path, dest / name / path.name)
    return dest


@pytest.fixture(scope="module")
def small(digits_dir, tmp_path_factory):
    return _subset(digits_dir, tmp_path_factory.mktemp("digits"), 24)


@pytest.fixture
def run(model_dir, capsys):
    def run(*args):
        code = evaluate.main([*map(str, args), "--data-dir", str(model_dir), "--tpu", "off"])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_json_report_has_the_documented_shape_and_learns(run, small):
    code, out, err = run(small, "--shots", "1,5,all", "--repeats", "2", "--json")
    assert code == 0
    report = json.loads(out)  # stdout is exactly one JSON object
    assert report["embedding"]["backend"] == "cpu"
    assert report["embedding"]["ms_per_image"] > 0
    assert report["embedding"]["model"].endswith(".tflite")
    rows = {(r["method"], r["shots"]): r for r in report["results"]}
    assert set(rows) == {(m, s) for m in evaluate.METHODS for s in (1, 5, "all")}
    for row in report["results"]:
        assert set(row) >= {"method", "shots", "accuracy", "train_ms"}
        assert 0.0 <= row["accuracy"] <= 1.0 and row["train_ms"] >= 0
    # three hand signs: chance is 1/3
    assert rows[("auto", "all")]["accuracy"] >= 0.8
    assert rows[("imprinting", 5)]["accuracy"] >= 0.6
    assert "embedding [" in err  # the progress bar goes to stderr


def test_table_output_and_separate_test_dir(run, digits_dir, small, tmp_path):
    test_dir = _subset(digits_dir, tmp_path / "test", 6, start=100)
    code, out, _ = run(
        small, "--test-dir", test_dir, "--shots", "all", "--repeats", "1", "--methods", "auto,knn"
    )
    assert code == 0
    assert "auto" in out and "knn" in out and "backprop" not in out
    assert "images, 3 classes" in out


def test_unreadable_files_are_skipped_with_one_warning_each(run, digits_dir, tmp_path, caplog):
    data = _subset(digits_dir, tmp_path / "d", 6)
    (data / "0" / "broken.jpg").write_bytes(b"not an image")
    (data / "3" / "notes.txt").write_text("ignored: not an image suffix")
    code, out, _ = run(data, "--shots", "2", "--repeats", "1", "--json")
    assert code == 0
    assert json.loads(out)["embedding"]["images"] == 18
    warnings = [r.getMessage() for r in caplog.records if "broken.jpg" in r.getMessage()]
    assert len(warnings) == 1 and "not a readable image" in warnings[0]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: (d / "only").mkdir(), "at least 2 are needed"),
        (lambda d: [(d / "a").mkdir(), (d / "b").mkdir()], "holds no images"),
    ],
)
def test_unusable_folders_are_clear_errors(run, tmp_path, setup, message):
    setup(tmp_path)
    code, out, err = run(tmp_path)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_bad_arguments_are_refused(run, small, capsys):
    with pytest.raises(SystemExit):
        evaluate.main([str(small), "--methods", "auto,magic"])
    assert "magic" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main([str(small), "--shots", "0"])
    code, _, err = run(small, "--test-fraction", "1.5")
    assert code == 2 and "--test-fraction" in err


def test_stratified_split_holds_out_each_class():
    import numpy as np

    labels = np.repeat([0, 1, 2], [8, 4, 2])
    train, test = evaluate.stratified_split(labels, 0.25, np.random.default_rng(0))
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(14))
    assert [int(np.sum(labels[test] == c)) for c in range(3)] == [2, 1, 1]
    assert set(labels[train]) == {0, 1, 2}


class _ColourExtractor:
    """Embeds an image as the red and green of its top-left pixel (with ``flip``: of its mirror
    image's, i.e. the top-right one)."""

    def embed(self, image, flip=False):
        import numpy as np

        r, g, _ = image.getpixel((image.width - 1, 0) if flip else (0, 0))
        return np.array([r, g], np.float32)


def test_embed_folder_embeds_every_readable_image_once_with_mirrors_and_thumbnails(tmp_path):
    from PIL import Image

    from server import datasets, offline

    for name, colours in {"a": [(10, 20, 0), (30, 40, 0)], "b": [(50, 60, 0)]}.items():
        (tmp_path / name).mkdir()
        for i, colour in enumerate(colours):
            image = Image.new("RGB", (4, 2), colour)
            image.putpixel((3, 0), (colour[0], 99, 0))  # what a mirror image starts with
            image.save(tmp_path / name / f"{i}.png")
    (tmp_path / "b" / "9.png").write_bytes(b"no png")  # skipped with a warning
    folder = datasets.scan(tmp_path)
    data = offline.embed_folder(
        _ColourExtractor(), folder, flip=True, thumbnail=lambda image: b"thumb"
    )
    assert data.x.tolist() == [[10, 20], [30, 40], [50, 60]]
    assert data.flipped.tolist() == [[10, 99], [30, 99], [50, 99]]
    assert data.labels.tolist() == [0, 0, 1]
    assert [p.name for p in data.paths] == ["0.png", "1.png", "0.png"]
    assert data.thumbnails == [b"thumb"] * 3
    plain = offline.embed_folder(_ColourExtractor(), folder)
    assert plain.flipped is None and plain.thumbnails == [None] * 3

    for path in (tmp_path / "a").iterdir():
        path.write_bytes(b"no png")
    for path in (tmp_path / "b").iterdir():
        path.write_bytes(b"no png")
    with pytest.raises(datasets.DatasetError, match="no readable image"):
        offline.embed_folder(_ColourExtractor(), datasets.scan(tmp_path))
