"""Exhibit mode's building blocks: the idle timer (fake clock) and the operator's settings."""

import json

import pytest

from server.exhibit import IdleTimer, OperatorConfig, OperatorError, validate


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_idle_timer_fires_once_per_idle_period():
    clock = Clock()
    timer = IdleTimer(180, clock)
    clock.now += 179
    assert not timer.expired() and timer.seconds_left() == pytest.approx(1)
    clock.now += 2
    assert timer.expired()
    assert not timer.expired()  # once, until someone touches
    timer.touch()
    clock.now += 100
    assert not timer.expired()
    clock.now += 81
    assert timer.expired()


def test_operator_settings_are_saved_and_reloaded(tmp_path):
    config = OperatorConfig(tmp_path)
    assert config["idle_minutes"] == 3.0 and config["keep_visitor_data"] is False
    config.update({"idle_minutes": 5, "keep_visitor_data": True, "method": "knn"})
    again = OperatorConfig(tmp_path)
    assert again["idle_minutes"] == 5.0 and again["keep_visitor_data"] is True
    assert again["method"] == "knn"
    assert [p.name for p in tmp_path.iterdir()] == ["operator.json"]  # no temporary file left


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"idle_minutes": 0}, "idle_minutes must be between"),
        ({"idle_minutes": "5"}, "idle_minutes must be a number"),
        ({"idle_minutes": True}, "idle_minutes must be a number"),
        ({"keep_visitor_data": "yes"}, "true or false"),
        ({"colour": "red"}, "Unknown operator setting"),
        ({"camera": 3}, "camera must be text"),
        ({"camera": "my webcam"}, "unknown camera"),
        ({"camera": "folder:"}, "unknown camera"),
        ({"idle_minutes": None}, "idle_minutes must be a number"),
        ({"unknown_quantile": None}, "unknown_quantile must be a number"),
        ({"method": "magic"}, "method must be one of"),
        ({"method": ["auto"]}, "method must be text"),
        ([], "JSON object"),
    ],
)
def test_bad_operator_settings_are_refused_and_change_nothing(tmp_path, changes, message):
    config = OperatorConfig(tmp_path)
    with pytest.raises(OperatorError, match=message):
        config.update(changes)
    assert not (tmp_path / "operator.json").exists()
    assert config["idle_minutes"] == 3.0


def test_a_corrupt_operator_file_falls_back_to_defaults(tmp_path):
    (tmp_path / "operator.json").write_text("{not json")
    assert OperatorConfig(tmp_path)["idle_minutes"] == 3.0
    (tmp_path / "operator.json").write_text("[1, 2]")
    assert OperatorConfig(tmp_path).values == OperatorConfig(tmp_path / "none").values
    (tmp_path / "operator.json").write_text(json.dumps({"idle_minutes": -1}))
    assert OperatorConfig(tmp_path)["idle_minutes"] == 3.0


def test_one_bad_saved_setting_costs_only_itself(tmp_path, caplog):
    # e.g. a null idle time, which an older version saved
    saved = {"idle_minutes": None, "method": "knn", "smoothing": 0.5, "colour": "red"}
    (tmp_path / "operator.json").write_text(json.dumps(saved))
    config = OperatorConfig(tmp_path)
    assert config["idle_minutes"] == 3.0 and "idle_minutes" in caplog.text
    assert config["method"] == "knn" and config["smoothing"] == 0.5
    assert "colour" not in config.values and "colour" in caplog.text


def test_validate_keeps_none_for_settings_that_follow_the_flags():
    assert validate({"smoothing": None, "camera": None}) == {"smoothing": None, "camera": None}
    assert validate({"method": None}) == {"method": None}


@pytest.mark.parametrize(
    "spec", ["auto", "synthetic", "browser", "0", "/dev/video2", "v4l2:1", "folder:/x", " file:a "]
)
def test_every_kind_of_camera_may_be_chosen(spec):
    assert validate({"camera": spec}) == {"camera": spec.strip()}
