"""Exhibit mode end to end in the app: idle resets (fake clock), the operator's PIN, privacy
(no file written during a visitor session), and /metrics in the Prometheus text format."""

import hashlib
import io
import time

import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from server import create_app
from server.exhibit import ExhibitSession, OperatorConfig
from server.pipeline import Pipeline
from server.settings import Settings
from server.store import Store

from fakes import FakeCamera

PIN = "4321"


class Clock:
    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met")


def digit_files(digits_dir, digit, n):
    paths = sorted((digits_dir / str(digit)).iterdir())[:n]
    return [(io.BytesIO(p.read_bytes()), p.name) for p in paths]


def snapshot(folder):
    """Every file under ``folder`` with its size and content hash."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def exhibit_app(tmp_path, extractor):
    apps = []

    def make(**overrides):
        settings = Settings(data_dir=tmp_path, exhibit=True, pin=PIN, **overrides)
        app = create_app(settings, camera=FakeCamera(), extractor=extractor)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["teachable"].close()


def test_exhibit_mode_needs_a_pin(tmp_path):
    with pytest.raises(ValueError, match="--exhibit needs --pin"):
        Settings(data_dir=tmp_path, exhibit=True)


def test_idle_visitor_session_resets_to_the_empty_kiosk(tmp_path, extractor):
    clock = Clock()
    settings = Settings(data_dir=tmp_path, exhibit=True, pin=PIN)
    config = OperatorConfig(tmp_path)
    pipe = Pipeline(
        settings,
        camera=FakeCamera(),
        extractor=extractor,
        store=Store(":memory:"),
        emit=lambda *a, **k: None,
        clock=clock,
        exhibit=ExhibitSession(config, clock),
    )
    pipe.start()
    try:
        wait_until(lambda: pipe.state()["exhibit"]["attract"])
        pipe.add_class("visitor's class")
        wait_until(lambda: not pipe.state()["exhibit"]["attract"])  # the touch woke it
        clock.now += 3 * 60 - 1
        time.sleep(0.3)
        assert [c["name"] for c in pipe.state()["classes"]] == ["visitor's class"]
        clock.now += 2
        wait_until(lambda: pipe.state()["classes"] == [])
        assert pipe.state()["exhibit"]["attract"] is True
        resets = pipe.metrics.resets.labels("idle")._value.get()
        assert resets == 1
    finally:
        pipe.stop()


def test_idle_reset_restores_the_operators_preset(exhibit_app, digits_dir):
    app = exhibit_app()
    http = app.test_client()
    pipe = app.extensions["teachable"].pipeline
    clock = Clock()
    pipe.exhibit.timer.clock = clock  # the idle timer only; frames keep real time
    pipe.exhibit.timer.touch()
    cls = http.post("/api/classes", json={"name": "background"}).get_json()
    http.post(
        f"/api/classes/{cls['id']}/examples",
        data={"image": digit_files(digits_dir, 0, 3)},
        content_type="multipart/form-data",
    )
    assert http.post("/api/operator/preset", headers={"X-Pin": PIN}).status_code == 201
    http.post("/api/classes", json={"name": "visitor"})
    assert len(pipe.state()["classes"]) == 2
    clock.now += 3 * 60 + 1
    wait_until(lambda: [c["name"] for c in pipe.state()["classes"]] == ["background"])
    assert pipe.state()["classes"][0]["examples"] == 3
    assert pipe.state()["exhibit"]["preset"] is True


def test_operator_actions_need_the_pin(exhibit_app):
    http = exhibit_app().test_client()
    actions = [
        ("get", "/api/operator", None),
        ("put", "/api/operator", {"idle_minutes": 5}),
        ("post", "/api/operator/preset", None),
        ("post", "/api/operator/preset/restore", None),
        ("post", "/api/operator/restart", None),
    ]
    for n, (method, url, body) in enumerate(actions):
        wrong = [{"X-Pin": "0000"}] if n < 4 else []  # 5 wrong guesses would lock us out
        for headers in [{}, *wrong]:
            r = getattr(http, method)(url, json=body, headers=headers)
            assert r.status_code == 403 and r.get_json()["error"]["code"] == "pin_required"
    ok = http.get("/api/operator", headers={"X-Pin": PIN})
    assert ok.status_code == 200 and ok.get_json()["settings"]["idle_minutes"] == 3.0
    changed = http.put(
        "/api/operator", json={"idle_minutes": 5, "smoothing": 0.2}, headers={"X-Pin": PIN}
    )
    assert changed.status_code == 200 and changed.get_json()["restart_needed"] is False
    assert http.get("/api/state").get_json()["exhibit"]["idle_minutes"] == 5.0
    bad = http.put("/api/operator", json={"idle_minutes": -1}, headers={"X-Pin": PIN})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_setting"
    restore = http.post("/api/operator/preset/restore", headers={"X-Pin": PIN})
    assert restore.status_code == 200


def test_privacy_no_file_is_written_during_a_visitor_session(exhibit_app, tmp_path, digits_dir):
    app = exhibit_app()
    http = app.test_client()
    services = app.extensions["teachable"]
    pipe, camera = services.pipeline, services.camera
    before = snapshot(tmp_path)
    socket = services.socketio.test_client(app, flask_test_client=http)
    cls = socket.emit("add_class", {"name": "mine"}, callback=True)["class"]
    http.post(
        f"/api/classes/{cls['id']}/examples",
        data={"image": digit_files(digits_dir, 4, 4)},
        content_type="multipart/form-data",
    )
    pipe.record_start("visitor", cls["id"])
    frame = np.asarray(Image.open(sorted((digits_dir / "4").iterdir())[10]).convert("RGB"))
    for _ in range(5):
        camera.show(frame)
        time.sleep(0.12)
    pipe.record_stop("visitor")
    socket.emit("undo", {}, callback=True)
    socket.emit("train", {}, callback=True)
    assert http.get("/api/state").get_json()["notices"][-1]["code"] == "privacy"
    assert (
        http.get(f"/api/examples/{pipe.state()['classes'][0]['recent'][0]}/thumbnail").status_code
        == 200
    )  # thumbnails exist, in memory
    assert snapshot(tmp_path) == before


def test_metrics_parse_as_prometheus_text(exhibit_app, digits_dir):
    app = exhibit_app()
    http = app.test_client()
    camera = app.extensions["teachable"].camera
    pipe = app.extensions["teachable"].pipeline
    cls = http.post("/api/classes", json={"name": "m"}).get_json()
    http.post(
        f"/api/classes/{cls['id']}/examples",
        data={"image": digit_files(digits_dir, 2, 2)},
        content_type="multipart/form-data",
    )
    for _ in range(3):
        index = camera.show(np.full((64, 64, 3), 128, np.uint8))
        wait_until(lambda index=index: pipe.frames_processed > index)
    body = http.get("/metrics")
    assert body.status_code == 200 and body.content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.data.decode())}
    for name in (
        "teachable_frames_processed",
        "teachable_inference_latency_seconds",
        "teachable_examples_recorded",
        "teachable_trainings",
        "teachable_resets",
        "teachable_errors",
        "teachable_fps",
        "teachable_clients",
        "teachable_backend_info",
    ):
        assert name in families, name

    def value(family, suffix, **labels):
        for s in families[family].samples:
            if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError(f"no {family}{suffix} {labels}")

    assert value("teachable_frames_processed", "_total") >= 3
    assert value("teachable_examples_recorded", "_total") == 2
    assert value("teachable_backend_info", "", backend="cpu") == 1
    assert value("teachable_inference_latency_seconds", "_count") >= 3


def test_five_wrong_pins_make_the_guesser_wait(exhibit_app):
    from server.web.security import PinGuard

    app = exhibit_app()
    now = [1000.0]
    app.extensions["teachable_pins"] = PinGuard(clock=lambda: now[0])
    http = app.test_client()
    for _ in range(5):
        r = http.get("/api/operator", headers={"X-Pin": "0000"})
        assert r.status_code == 403
    locked = http.get("/api/operator", headers={"X-Pin": PIN})  # even the right one
    assert locked.status_code == 429
    assert locked.get_json()["error"]["message"] == "Too many wrong PINs: try again in 60 s."
    now[0] += 61
    assert http.get("/api/operator", headers={"X-Pin": PIN}).status_code == 200


def test_an_operator_camera_that_cannot_open_falls_back_to_the_flag(tmp_path, extractor, caplog):
    # a folder that is gone (a USB stick taken out) must not keep the kiosk from starting
    OperatorConfig(tmp_path).update({"camera": f"folder:{tmp_path / 'gone'}"})
    settings = Settings(data_dir=tmp_path, exhibit=True, pin=PIN, camera="synthetic")
    app = create_app(settings, extractor=extractor, start=False)
    try:
        assert app.extensions["teachable"].camera.name == "synthetic"
        assert "the operator's camera" in caplog.text and "image folder not found" in caplog.text
    finally:
        app.extensions["teachable"].close()
