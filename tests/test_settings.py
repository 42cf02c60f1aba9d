"""Settings from flags and environment variables, validated with a one-line message."""

from pathlib import Path

import pytest

from server.settings import Settings, SettingsError, from_args


def test_defaults():
    s = from_args([], environ={})
    assert (s.host, s.port, s.camera, s.tpu, s.method) == ("0.0.0.0", 5000, "auto", "auto", "auto")
    assert s.thumbnails and s.pin is None and s.allow_origins == ()


def test_flags_override_the_environment():
    env = {"TEACHABLE_PORT": "6000", "TEACHABLE_CAMERA": "synthetic", "TEACHABLE_THUMBNAILS": "0"}
    s = from_args(["--port", "7000"], environ=env)
    assert s.port == 7000 and s.camera == "synthetic" and s.thumbnails is False


def test_all_documented_flags_parse(tmp_path):
    s = from_args(
        [
            "--host",
            "127.0.0.1",
            "--camera",
            "folder:/x",
            "--tpu",
            "off",
            "--data-dir",
            str(tmp_path),
            "--pin",
            "1234",
            "--allow-origin",
            "http://a.lan",
            "--allow-origin",
            "https://b.lan:8443",
            "--no-thumbnails",
            "--record-interval-ms",
            "200",
            "--max-examples",
            "50",
            "--smoothing",
            "0",
        ],
        environ={},
    )
    assert s.data_dir == Path(tmp_path) and s.pin == "1234" and not s.thumbnails
    assert s.allow_origins == ("http://a.lan", "https://b.lan:8443")
    assert s.db_path == Path(tmp_path) / "teachable.sqlite3"


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--port", "0"], {}, "--port must be between 1 and 65535"),
        (["--tpu", "maybe"], {}, "--tpu must be one of auto, on, off"),
        (["--method", "magic"], {}, "--method must be one of"),
        (["--pin", "12"], {}, "--pin must be 4 to 12 digits"),
        (["--allow-origin", "*"], {}, "no '*'"),
        (["--smoothing", "1"], {}, "--smoothing"),
        (["--model", "/no/such/model.tflite"], {}, "is not a file"),
        ([], {"TEACHABLE_PORT": "eighty"}, "TEACHABLE_PORT='eighty' is not a valid value"),
        ([], {"TEACHABLE_THUMBNAILS": "perhaps"}, "TEACHABLE_THUMBNAILS"),
    ],
)
def test_bad_values_stop_with_one_line(argv, env, message):
    with pytest.raises(SettingsError) as err:
        from_args(argv, environ=env)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_settings_are_immutable():
    with pytest.raises(AttributeError):
        Settings().port = 1
