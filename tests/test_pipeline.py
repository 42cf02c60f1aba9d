"""The pipeline worker with a fake camera, the real extractor and a real SQLite store."""

import threading
import time

import numpy as np
import pytest
from PIL import Image

from server.pipeline import Pipeline, ServiceError, frame_quality
from server.settings import Settings
from server.store import Store

from fakes import FakeCamera


class Events:
    """Collects what the pipeline emits; ``wait_for`` blocks until a matching event arrives."""

    def __init__(self):
        self.items = []
        self._cond = threading.Condition()

    def __call__(self, event, payload=None, to=None):
        with self._cond:
            self.items.append((event, payload, to))
            self._cond.notify_all()

    def wait_for(self, event, predicate=lambda p: True, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e, p, _ in self.items:
                    if e == event and predicate(p):
                        return p
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {event} event matched within {timeout} s")
                self._cond.wait(left)

    def named(self, event):
        with self._cond:
            return [(p, to) for e, p, to in self.items if e == event]


def photos(digits_dir, digit, n, start=0):
    paths = sorted((digits_dir / str(digit)).iterdir())[start : start + n]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


@pytest.fixture
def make(tmp_path, extractor):
    made = []

    def make(**overrides):
        settings = Settings(data_dir=tmp_path, record_interval_ms=10, smoothing=0.0, **overrides)
        store = Store(settings.db_path)
        camera = FakeCamera()
        events = Events()
        pipe = Pipeline(settings, camera=camera, extractor=extractor, store=store, emit=events)
        pipe.start()
        made.append((pipe, store))
        return pipe, camera, events, store

    yield make
    for pipe, store in made:
        pipe.stop()
        store.close()


def show_until(pipe, camera, image, predicate=lambda p: True, tries=200):
    """Shows ``image`` frame after frame until a published prediction satisfies ``predicate``."""
    seen = 0
    for _ in range(tries):
        index = camera.show(image)
        seen, published = pipe.frames.get(after=seen, timeout=5.0)
        while published is not None and published.index < index:
            seen, published = pipe.frames.get(after=seen, timeout=5.0)
        if published is not None and predicate(published.prediction):
            return published.prediction
    raise AssertionError("no prediction matched")


def record(pipe, camera, sid, class_id, images):
    pipe.record_start(sid, class_id)
    before = pipe.learner.counts().get(class_id, 0)
    for image in images:
        show_until(pipe, camera, image)
        time.sleep(0.012)  # the record interval is 10 ms
    pipe.record_stop(sid)
    return pipe.learner.counts()[class_id] - before


def test_recording_teaches_and_predictions_follow_the_camera(make, digits_dir):
    pipe, camera, events, store = make()
    one = pipe.add_class("one")
    five = pipe.add_class("five")
    assert record(pipe, camera, "a", one["id"], photos(digits_dir, 1, 12)) >= 8
    assert record(pipe, camera, "a", five["id"], photos(digits_dir, 5, 12)) >= 8
    events.wait_for("training", lambda p: p["state"] == "done")
    # photos the learner never saw
    p1 = show_until(pipe, camera, photos(digits_dir, 1, 1, start=100)[0])
    p5 = show_until(pipe, camera, photos(digits_dir, 5, 1, start=100)[0])
    assert (p1["label"], p5["label"]) == ("one", "five")
    assert set(p1) >= {"frame", "class_id", "scores", "unknown", "nearest", "latency_ms"}
    assert set(p1["scores"]) == {str(one["id"]), str(five["id"])}
    assert p1["nearest"] and set(p1["nearest"]) <= set(store.recent_examples(one["id"], 100))
    assert p1["latency_ms"] >= 0
    # every change was broadcast as a state with a growing version
    versions = [p["version"] for p, _ in events.named("state")]
    assert versions == sorted(versions) and len(versions) >= 4


def test_too_dark_frames_are_skipped_and_the_client_told(make):
    pipe, camera, events, store = make()
    cls = pipe.add_class("dark")
    dark = np.full((120, 160, 3), 5, np.uint8)
    pipe.record_start("b", cls["id"])
    for _ in range(5):
        show_until(pipe, camera, dark)
        time.sleep(0.012)
    pipe.record_stop("b")
    skipped = events.wait_for("record_skipped")
    assert skipped["reason"] == "too_dark" and "light" in skipped["message"]
    assert all(to == "b" for _, to in events.named("record_skipped"))
    assert store.count_examples() == 0 and pipe.learner.counts()[cls["id"]] == 0


def test_frame_quality_flags_dark_and_blurred_frames(digits_dir):
    sharp = photos(digits_dir, 3, 1)[0]
    assert frame_quality(sharp) is None
    assert frame_quality(np.zeros((100, 100, 3), np.uint8)) == "too_dark"
    assert frame_quality(np.full((100, 100, 3), 128, np.uint8)) == "too_blurry"


def test_recording_stops_at_the_class_cap(make, digits_dir):
    pipe, camera, events, store = make(max_examples=3)
    cls = pipe.add_class("capped")
    record(pipe, camera, "c", cls["id"], photos(digits_dir, 2, 8))
    assert pipe.learner.counts()[cls["id"]] == 3 == store.get_class(cls["id"]).examples
    assert events.wait_for("record_skipped")["reason"] == "full"


def test_undo_removes_the_last_burst_only(make, digits_dir):
    pipe, camera, events, store = make()
    cls = pipe.add_class("digit")
    first = record(pipe, camera, "d", cls["id"], photos(digits_dir, 4, 4))
    second = record(pipe, camera, "d", cls["id"], photos(digits_dir, 4, 4, start=10))
    assert pipe.undo() == second
    assert pipe.learner.counts()[cls["id"]] == first == store.get_class(cls["id"]).examples


def test_a_second_training_is_told_busy(make, digits_dir):
    pipe, camera, events, store = make()
    for digit in (0, 7):
        cls = pipe.add_class(f"d{digit}")
        images = [Image.fromarray(a) for a in photos(digits_dir, digit, 5)]
        assert pipe.add_images(cls["id"], images) == 5
    events.wait_for("training", lambda p: p["state"] == "done")  # Auto's own fine-tune
    pipe.set_method("backprop")
    # slow the baseline down so that the second request surely finds it running
    pipe.call(lambda: pipe.learner.params.update(iterations=200000))
    started = pipe.train()
    assert started["state"] == "running" and started["method"] == "backprop"
    with pytest.raises(ServiceError) as busy:
        pipe.train()
    assert busy.value.code == "busy" and busy.value.status == 409


def test_bad_requests_change_nothing(make):
    pipe, camera, events, store = make()
    cls = pipe.add_class("rock")
    before = pipe.state()["classes"]
    cases = [
        (lambda: pipe.add_class(""), "bad_name"),
        (lambda: pipe.add_class("x" * 41), "bad_name"),
        (lambda: pipe.add_class(42), "bad_name"),
        (lambda: pipe.add_class(" ROCK "), "name_taken"),
        (lambda: pipe.rename_class(999, "paper"), "not_found"),
        (lambda: pipe.rename_class("1", "paper"), "bad_request"),
        (lambda: pipe.delete_class(999), "not_found"),
        (lambda: pipe.record_start("e", 999), "not_found"),
        (lambda: pipe.delete_example(12345), "not_found"),
        (lambda: pipe.set_method("magic"), "bad_method"),
        (lambda: pipe.set_method({"x": 1}), "bad_method"),
        (lambda: pipe.train(["auto"]), "bad_method"),
        (lambda: pipe.undo(), "nothing_to_undo"),
        (lambda: pipe.train(), "nothing_to_train"),
    ]
    for call, code in cases:
        with pytest.raises(ServiceError) as err:
            call()
        assert err.value.code == code, (code, err.value.message)
    assert pipe.state()["classes"] == before
    assert [c.name for c in store.classes()] == [cls["name"]]


def test_arguments_of_the_wrong_type_are_refused_without_waiting_for_the_worker(make):
    pipe, camera, events, store = make()
    busy, release = threading.Event(), threading.Event()
    blocked = pipe.submit(lambda: busy.set() or release.wait(10))
    try:
        assert busy.wait(5)
        for call in (
            lambda: pipe.add_class({"a": 1}),
            lambda: pipe.rename_class([1], "x"),
            lambda: pipe.delete_class("1"),
            lambda: pipe.clear_class(None),
            lambda: pipe.record_start("sid", 1.5),
            lambda: pipe.delete_example(True),
            lambda: pipe.set_method({}),
            lambda: pipe.train(3),
        ):
            with pytest.raises(ServiceError) as err:
                call()  # answered at once: the worker is still blocked
            assert err.value.code in ("bad_name", "bad_request", "bad_method")
        assert not blocked.done()
    finally:
        release.set()
    assert blocked.result(5) is True


def test_state_survives_a_restart_with_identical_predictions(make, tmp_path, extractor, digits_dir):
    pipe, camera, events, store = make(method="imprinting")
    for digit in (2, 8):
        cls = pipe.add_class(f"digit {digit}")
        pipe.add_images(cls["id"], [Image.fromarray(a) for a in photos(digits_dir, digit, 6)])
    probe = photos(digits_dir, 8, 1, start=50)[0]
    before = pipe.predict_image(Image.fromarray(probe))
    state = pipe.state()
    pipe.stop()
    again = Pipeline(
        pipe.settings, camera=FakeCamera(), extractor=extractor, store=store, emit=Events()
    )
    again.start()
    try:
        after = again.predict_image(Image.fromarray(probe))
        assert again.state()["classes"] == state["classes"]
        assert again.state()["method"] == "imprinting"
        assert after == before
    finally:
        again.stop()


def test_switching_method_keeps_every_example(make, digits_dir):
    pipe, camera, events, store = make()
    cls = pipe.add_class("six")
    pipe.add_images(cls["id"], [Image.fromarray(a) for a in photos(digits_dir, 6, 4)])
    for method in ("knn", "backprop", "imprinting", "auto"):
        pipe.set_method(method)
        assert pipe.state()["method"] == method
        assert pipe.learner.counts() == {cls["id"]: 4}
    assert store.get_setting("method") == "auto"


def test_camera_status_changes_are_broadcast(make):
    pipe, camera, events, store = make()
    camera.set_status("offline", "no frame for 3 s")
    state = events.wait_for("state", lambda p: p["camera"]["status"] == "offline")
    assert state["camera"]["reason"] == "no frame for 3 s"
    assert pipe.health()["camera"] == "offline"


class _FaultyExtractor:
    """The real extractor until ``mode`` says ``fail`` (raises) or ``hang`` (never returns)."""

    def __init__(self, real):
        self.real, self.mode, self.calls = real, "ok", 0
        self.backend, self.dim, self.notice = real.backend, real.dim, ""
        self.release = threading.Event()

    def embed(self, image, flip=False):
        self.calls += 1
        if self.mode == "fail":
            raise RuntimeError("Edge TPU: USB transfer error (fake)")
        if self.mode == "hang":
            self.release.wait(30)
        return self.real.embed(image, flip)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def faulty(tmp_path, extractor, monkeypatch):
    import server.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "HANG_SECONDS", 0.5)
    monkeypatch.setattr(pipeline_mod, "WATCHDOG_PERIOD", 0.05)
    fake, faults = _FaultyExtractor(extractor), []
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.db_path)
    camera, events = FakeCamera(), Events()
    pipe = Pipeline(
        settings, camera=camera, extractor=fake, store=store, emit=events, on_fault=faults.append
    )
    pipe.start()
    yield pipe, camera, events, fake, faults
    fake.release.set()
    pipe.stop()
    store.close()


def test_a_hung_extractor_is_reported_once_and_handed_to_on_fault(faulty, digits_dir):
    pipe, camera, events, fake, faults = faulty
    image = photos(digits_dir, 3, 1)[0]
    show_until(pipe, camera, image)
    assert pipe.health()["status"] == "ok"
    fake.mode = "hang"
    camera.show(image)
    error = events.wait_for("error", lambda p: p["code"] == "extractor_failed", timeout=5)
    assert "Nothing you taught is lost" in error["message"]
    assert len(faults) == 1 and "has not answered" in faults[0]
    health = pipe.health()
    assert health["status"] == "failed" and "has not answered" in health["fault"]
    time.sleep(0.3)
    assert len(faults) == 1  # once


def test_an_extractor_that_keeps_failing_is_a_fault_after_enough_frames(faulty, digits_dir):
    import server.pipeline as pipeline_mod

    pipe, camera, events, fake, faults = faulty
    image = photos(digits_dir, 3, 1)[0]
    show_until(pipe, camera, image)
    fake.mode = "fail"
    for _ in range(pipeline_mod.FAILURES_IN_A_ROW * 3):
        camera.show(image)
        time.sleep(0.01)
        if faults:
            break
    events.wait_for("error", lambda p: p["code"] == "extractor_failed", timeout=5)
    assert len(faults) == 1 and "failed 15 times in a row" in faults[0]
    assert fake.calls >= pipeline_mod.FAILURES_IN_A_ROW


def test_failures_that_are_not_in_a_row_are_no_fault(faulty, digits_dir):
    import server.pipeline as pipeline_mod

    pipe, camera, events, fake, faults = faulty
    image = photos(digits_dir, 3, 1)[0]
    for _ in range(pipeline_mod.FAILURES_IN_A_ROW * 2):
        fake.mode = "fail"
        calls = fake.calls
        camera.show(image)
        deadline = time.monotonic() + 5
        while fake.calls == calls and time.monotonic() < deadline:
            time.sleep(0.005)
        fake.mode = "ok"
        show_until(pipe, camera, image)
    assert faults == [] and pipe.health()["status"] == "ok"


def test_commands_are_served_while_a_frame_is_being_embedded(faulty, digits_dir):
    pipe, camera, events, fake, faults = faulty
    image = photos(digits_dir, 3, 1)[0]
    show_until(pipe, camera, image)
    fake.mode = "hang"  # the next embed blocks until released
    calls = fake.calls
    camera.show(image)
    deadline = time.monotonic() + 5
    while fake.calls == calls and time.monotonic() < deadline:
        time.sleep(0.005)
    assert fake.calls > calls  # the embedder is inside embed() now
    row = pipe.add_class("while embedding")  # the worker answers anyway
    assert row["name"] == "while embedding" and not fake.release.is_set()
    pipe.set_method("imprinting")
    assert pipe.state()["method"] == "imprinting" and not fake.release.is_set()
    fake.mode = "ok"
    fake.release.set()
    show_until(pipe, camera, image)  # and frames go on once the extractor answers


def test_browsers_coming_and_going_cost_one_state_a_period(make, monkeypatch):
    import server.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "CLIENTS_PERIOD", 0.3)
    pipe, camera, events, store = make()
    before = len(events.named("state"))
    for i in range(20):
        pipe.client_connected(f"sid{i}")
    for i in range(10):
        pipe.client_disconnected(f"sid{i}")
    events.wait_for("state", lambda s: s["clients"] == 10, timeout=5)
    pipe.call(lambda: None)  # every command above has run
    states = events.named("state")[before:]
    assert 1 <= len(states) <= 3  # one at once, the rest at the end of the period
    assert pipe.health()["clients"] == 10 and pipe.state()["clients"] == 10
    versions = [s["version"] for s, _ in states]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
