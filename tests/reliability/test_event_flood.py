"""Row 6: one client floods the server with events; the others keep watching undisturbed."""

import threading
import time

import pytest
import requests
from relhelp import Watcher, frames_processed, percentile, record, thread_count, worker_pid
from socketio.exceptions import BadNamespaceError

pytestmark = pytest.mark.reliability

EVENTS = 5000
TRAINS = 50
WINDOW_S = 6.0
DRAIN_WAIT_S = 20.0


def _teach(server, digits_dir):
    for digit in ("3", "5"):
        class_id = requests.post(
            server.url + "/api/classes", json={"name": f"digit {digit}"}, timeout=10
        ).json()["id"]
        photos = sorted((digits_dir / digit).iterdir())[:12]
        answer = requests.post(
            f"{server.url}/api/classes/{class_id}/examples",
            files=[("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos],
            timeout=60,
        )
        assert answer.ok, answer.text


def _junk(i):
    kind = i % 3
    if kind == 0:
        return "rename_class", {"class_id": f"junk{i}", "name": "\x00" * 8}
    if kind == 1:
        return "set_method", {"method": f"no-such-method-{i}"}
    return "undo", {}


def test_a_flood_of_events_leaves_the_others_alone(server, digits_dir):
    _teach(server, digits_dir)
    pid = worker_pid(server)
    watchers = [Watcher(server.url) for _ in range(3)]
    flooder = Watcher(server.url)
    samples, stop = [], threading.Event()

    def sample():
        for _ in range(600):  # at most 60 s
            if stop.wait(0.1):
                return
            samples.append(thread_count(pid))

    try:
        time.sleep(2)
        base_threads = thread_count(pid)
        b0 = time.monotonic()
        time.sleep(WINDOW_S)
        b1 = time.monotonic()
        solo = [w.rate(b0, b1) for w in watchers]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        train_answers, junk_answers = [], []
        processed_before = frames_processed(server)
        start = time.monotonic()
        for _ in range(TRAINS):
            flooder.sio.emit("train", {"method": "backprop"}, callback=train_answers.append)
        junk_sent = 0
        for i in range(EVENTS):
            event, payload = _junk(i)
            try:
                flooder.sio.emit(
                    event, payload, callback=lambda *a: junk_answers.append(time.monotonic())
                )
            except BadNamespaceError:  # the server closed the flooder already (asserted below)
                break
            junk_sent += 1
        sent_s = time.monotonic() - start
        time.sleep(max(0.0, WINDOW_S - (time.monotonic() - start)))
        end = time.monotonic()
        during = [w.rate(start, end) for w in watchers]
        processed_fps = (frames_processed(server) - processed_before) / (time.monotonic() - start)
        deadline = time.monotonic() + DRAIN_WAIT_S
        while len(train_answers) < TRAINS and time.monotonic() < deadline:
            time.sleep(0.1)
        trains_answered_s = time.monotonic() - start
        flooder_dropped = not flooder.sio.connected
        stop.set()
        sampler.join(2)
    finally:
        stop.set()
        flooder.close()
        for w in watchers:
            w.close()

    codes = [
        a.get("error", {}).get("code", "ok") if not a.get("ok") else "ok" for a in train_answers
    ]
    runs = sum(1 for t in watchers[0].training if t.get("state") == "done")
    ratios = [round(d / s, 3) if s else None for d, s in zip(during, solo)]
    record(
        "6 event flood",
        events_sent=junk_sent + TRAINS,  # of EVENTS + TRAINS: the rest after it was closed
        sent_in_s=round(sent_s, 2),
        junk_answered=len(junk_answers),
        junk_answered_per_s=round(len(junk_answers) / max(trains_answered_s, 1e-9), 1),
        trains_answered=len(train_answers),
        trains_answered_after_s=round(trains_answered_s, 1),
        train_codes={c: codes.count(c) for c in set(codes)},
        trainings_done_seen=runs,
        flooder_dropped=flooder_dropped,
        threads_base=base_threads,
        threads_max=max(samples or [base_threads]),
        solo_fps=[round(r, 1) for r in solo],
        flood_fps=[round(r, 1) for r in during],
        fps_ratio=ratios,
        processed_fps=round(processed_fps, 1),
        gaps_p95_ms=[percentile(w.gaps_ms(start, end), 95) for w in watchers],
        window_s=WINDOW_S,
    )
    assert max(samples or [base_threads]) <= base_threads + 5
    assert all(r is not None and r >= 0.9 for r in ratios)
    assert len(train_answers) == TRAINS
    assert codes.count("ok") == 1 and codes.count("busy") == TRAINS - 1
    assert flooder_dropped  # what it sent after its share of refusals was never read
