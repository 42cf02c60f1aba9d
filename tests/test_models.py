"""server/models.py: locate, verify and fetch model files, and its command line; no network."""

import os
from pathlib import Path

import pytest

from server import models
from server.models import EXTRACTOR_CPU, EXTRACTOR_EDGETPU, ModelError, locate, main


@pytest.fixture(autouse=True)
def no_network_no_env(monkeypatch):
    """Nothing may download, and the caller's environment must not leak in."""

    def refuse(*args, **kwargs):
        raise AssertionError("_download must not be called")

    monkeypatch.setattr(models, "_download", refuse)
    monkeypatch.delenv(models.MIRROR_ENV, raising=False)
    monkeypatch.delenv(models.DATA_DIR_ENV, raising=False)


@pytest.fixture
def mirror():
    """The shared folder of model files, a sibling of the checkout (/work/shared/models in CI)."""
    path = Path(__file__).resolve().parents[2] / "shared" / "models"
    if not (path / EXTRACTOR_CPU.filename).is_file():
        pytest.skip(f"no model mirror at {path}")
    return path


@pytest.fixture
def bad_mirror(tmp_path):
    """A mirror whose files have the right names and the wrong bytes."""
    path = tmp_path / "bad_mirror"
    path.mkdir()
    for info in (EXTRACTOR_CPU, EXTRACTOR_EDGETPU):
        (path / info.filename).write_bytes(b"not a model")
    return path


def cached(data_dir, info=EXTRACTOR_CPU):
    return data_dir / "models" / info.filename


def test_locate_copies_from_mirror_into_cache_and_verifies(tmp_path, mirror):
    found = locate(EXTRACTOR_CPU, data_dir=tmp_path, mirror=mirror, download=False)
    assert found == cached(tmp_path)
    assert models.sha256_of(found) == EXTRACTOR_CPU.sha256


def test_second_locate_uses_cache(tmp_path, mirror):
    first = locate(EXTRACTOR_CPU, data_dir=tmp_path, mirror=mirror, download=False)
    mtime = first.stat().st_mtime_ns
    second = locate(EXTRACTOR_CPU, data_dir=tmp_path, mirror=tmp_path / "nowhere", download=False)
    assert second == first
    assert second.stat().st_mtime_ns == mtime


def test_corrupt_cache_is_replaced_from_mirror(tmp_path, mirror):
    cache = cached(tmp_path)
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"half a model")
    found = locate(EXTRACTOR_CPU, data_dir=tmp_path, mirror=mirror, download=False)
    assert found == cache
    assert models.sha256_of(cache) == EXTRACTOR_CPU.sha256


def test_corrupt_explicit_path_raises_with_a_fix(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"garbage")
    with pytest.raises(ModelError) as caught:
        locate(EXTRACTOR_CPU, path=path, data_dir=tmp_path)
    message = str(caught.value)
    assert EXTRACTOR_CPU.filename in message
    assert EXTRACTOR_CPU.sha256 in message
    assert "python -m server.models fetch" in message


def test_explicit_path_is_the_only_place_looked_at(tmp_path, mirror):
    with pytest.raises(ModelError, match="not found"):
        locate(EXTRACTOR_CPU, path=tmp_path / "missing.tflite", data_dir=tmp_path, mirror=mirror)


def test_valid_explicit_path_is_returned_as_is(tmp_path, mirror):
    path = mirror / EXTRACTOR_CPU.filename
    assert locate(EXTRACTOR_CPU, path=path, data_dir=tmp_path) == path
    assert not (tmp_path / "models").exists()


def test_missing_everywhere_without_download_raises(tmp_path):
    with pytest.raises(ModelError) as caught:
        locate(EXTRACTOR_CPU, data_dir=tmp_path, download=False)
    assert EXTRACTOR_CPU.filename in str(caught.value)
    assert "python -m server.models fetch" in str(caught.value)


def test_corrupt_mirror_without_download_raises_and_caches_nothing(tmp_path, bad_mirror):
    with pytest.raises(ModelError, match=EXTRACTOR_CPU.sha256):
        locate(EXTRACTOR_CPU, data_dir=tmp_path, mirror=bad_mirror, download=False)
    assert not cached(tmp_path).exists()


def test_mirror_env_is_honoured(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv(models.MIRROR_ENV, str(mirror))
    found = locate(EXTRACTOR_CPU, data_dir=tmp_path, download=False)
    assert found == cached(tmp_path)


def test_data_dir_env_is_honoured(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv(models.DATA_DIR_ENV, str(tmp_path))
    found = locate(EXTRACTOR_CPU, mirror=mirror, download=False)
    assert found == cached(tmp_path)


def test_failed_download_raises_model_error(tmp_path, monkeypatch):
    def fail(info, dest, timeout):
        raise models._problem(info, "could not be downloaded (simulated)")

    monkeypatch.setattr(models, "_download", fail)
    with pytest.raises(ModelError, match="could not be downloaded"):
        locate(EXTRACTOR_CPU, data_dir=tmp_path)


def test_download_is_last_resort_into_cache(tmp_path, monkeypatch):
    calls = []

    def fake(info, dest, timeout):
        calls.append((info, dest))
        raise ModelError("offline")

    monkeypatch.setattr(models, "_download", fake)
    with pytest.raises(ModelError):
        locate(EXTRACTOR_CPU, data_dir=tmp_path)
    assert calls == [(EXTRACTOR_CPU, cached(tmp_path))]


def test_copy_from_mirror_leaves_no_part_files(tmp_path, mirror):
    locate(EXTRACTOR_CPU, data_dir=tmp_path, mirror=mirror, download=False)
    assert os.listdir(tmp_path / "models") == [EXTRACTOR_CPU.filename]


def test_interrupted_write_leaves_neither_part_file_nor_destination(tmp_path):
    dest = tmp_path / "models" / EXTRACTOR_CPU.filename

    def write(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        models.atomic_write(write, dest)
    assert os.listdir(dest.parent) == []


# ----- the command line -------------------------------------------------------------------
def test_fetch_from_mirror_prints_ok(tmp_path, mirror, capsys):
    code = main(["fetch", "--mirror", str(mirror), "--data-dir", str(tmp_path), "--no-download"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("ok ") == 2
    assert str(cached(tmp_path, EXTRACTOR_EDGETPU)) in out
    assert models.sha256_of(cached(tmp_path)) == EXTRACTOR_CPU.sha256


def test_fetch_cpu_only_skips_edgetpu_model(tmp_path, mirror, capsys):
    args = ["fetch", "--mirror", str(mirror), "--data-dir", str(tmp_path), "--no-download"]
    assert main(args + ["--cpu-only"]) == 0
    assert capsys.readouterr().out.count("ok ") == 1
    assert not cached(tmp_path, EXTRACTOR_EDGETPU).exists()


def test_fetch_from_bad_mirror_prints_one_error_line(tmp_path, bad_mirror, capsys):
    args = ["fetch", "--mirror", str(bad_mirror), "--data-dir", str(tmp_path), "--no-download"]
    code = main(args)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code == 1
    assert len(errors) == 1
    assert EXTRACTOR_CPU.filename in errors[0]
    assert "Traceback" not in captured.err
    assert "ok " not in captured.out


def test_list_prints_every_known_model(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for info in models.KNOWN.values():
        assert f"{info.name}\t{info.filename}\t{info.sha256}" in out
