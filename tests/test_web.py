"""The Socket.IO handlers (Flask-SocketIO's test client) and the REST API (Flask's)."""

import io
import time

import numpy as np
import pytest
from PIL import Image

from server import create_app, errors
from server.settings import Settings

from fakes import FakeCamera


def jpeg(array) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def digit_jpegs(digits_dir):
    def load(digit, n, start=0):
        paths = sorted((digits_dir / str(digit)).iterdir())[start : start + n]
        return [p.read_bytes() for p in paths]

    return load


@pytest.fixture
def app_factory(tmp_path, extractor):
    apps = []

    def factory(**overrides):
        settings = Settings(data_dir=tmp_path, **overrides)
        app = create_app(settings, camera=FakeCamera(), extractor=extractor)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["teachable"].close()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def http(app):
    return app.test_client()


def sio(app, http, **kwargs):
    socketio = app.extensions["teachable"].socketio
    return socketio.test_client(app, flask_test_client=http, **kwargs)


def last(received, name):
    found = [r["args"][0] for r in received if r["name"] == name]
    assert found, f"no {name} event among {[r['name'] for r in received]}"
    return found[-1]


def settle(app, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(app.extensions["teachable"].pipeline.state()):
            return
        time.sleep(0.02)
    raise AssertionError("state never matched")


# ----- Socket.IO ------------------------------------------------------------------------
def test_connect_sends_state(app, http):
    client = sio(app, http)
    state = last(client.get_received(), "state")
    assert set(state) >= {"version", "classes", "method", "backend", "camera", "clients"}
    assert state["backend"] == "cpu" and state["method"] == "auto"


def test_every_event_works_and_is_broadcast_to_others(app, http, digit_jpegs):
    a, b = sio(app, http), sio(app, http)
    a.get_received(), b.get_received()
    ok = a.emit("add_class", {"name": "rock"}, callback=True)
    assert ok["ok"] and ok["class"]["name"] == "rock"
    class_id = ok["class"]["id"]
    assert a.emit("rename_class", {"class_id": class_id, "name": "paper"}, callback=True)["ok"]
    settle(app, lambda s: s["classes"][0]["name"] == "paper")
    assert [c["name"] for c in last(b.get_received(), "state")["classes"]] == ["paper"]

    # examples by upload, then the socket events that act on them
    upload = http.post(
        f"/api/classes/{class_id}/examples",
        data={"image": [(io.BytesIO(j), f"{i}.jpg") for i, j in enumerate(digit_jpegs(3, 4))]},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 200 and upload.get_json() == {"added": 4}
    example = app.extensions["teachable"].store.recent_examples(class_id, 1)[0]
    assert a.emit("delete_example", {"example_id": example}, callback=True)["ok"]
    assert a.emit("undo", {}, callback=True) == {"ok": True, "removed": 3}
    assert a.emit("set_method", {"method": "knn"}, callback=True)["ok"]
    assert a.emit("record_start", {"class_id": class_id}, callback=True)["ok"]
    settle(app, lambda s: s["recording"] == [class_id])
    assert a.emit("record_stop", {}, callback=True)["ok"]
    assert a.emit("clear_class", {"class_id": class_id}, callback=True) == {
        "ok": True,
        "removed": 0,
    }
    assert a.emit("delete_class", {"class_id": class_id}, callback=True)["ok"]
    assert a.emit("reset", {}, callback=True)["ok"]
    settle(app, lambda s: s["classes"] == [] and s["method"] == "knn")
    states = [r["args"][0] for r in b.get_received() if r["name"] == "state"]
    assert len(states) >= 6 and states[-1]["classes"] == []


def test_train_reports_progress_and_a_second_request_is_busy(app, http, digit_jpegs):
    client = sio(app, http)
    for digit in (1, 4):
        cls = client.emit("add_class", {"name": f"d{digit}"}, callback=True)["class"]
        http.post(
            f"/api/classes/{cls['id']}/examples",
            data={"image": [(io.BytesIO(j), "x.jpg") for j in digit_jpegs(digit, 5)]},
            content_type="multipart/form-data",
        )
    pipeline = app.extensions["teachable"].pipeline
    pipeline.set_method("backprop")
    # an Auto fine-tune started by the uploads runs on (its result unused): wait for its end
    settle(app, lambda s: s["training"] is None or s["training"]["state"] != "running")
    pipeline.call(lambda: pipeline.learner.params.update(iterations=100000))
    first = client.emit("train", {}, callback=True)
    second = client.emit("train", {}, callback=True)
    assert first["ok"] and first["training"]["state"] == "running", first
    assert second == {"ok": False, "error": {"code": "busy", "message": second["error"]["message"]}}
    assert last(client.get_received(), "error")["code"] == "busy"


@pytest.mark.parametrize(
    "event, payload, code",
    [
        ("add_class", {"name": ""}, "bad_name"),
        ("add_class", {"name": "a\x00b"}, "bad_name"),
        ("add_class", {"name": ["list"]}, "bad_name"),
        ("add_class", "just a string", "bad_request"),
        ("rename_class", {"class_id": "1", "name": "x"}, "bad_request"),
        ("delete_class", {"class_id": 999}, "not_found"),
        ("record_start", {"class_id": None}, "bad_request"),
        ("set_method", {"method": 3}, "bad_method"),
        ("set_method", {"method": {}}, "bad_method"),
        ("train", {"method": ["auto"]}, "bad_method"),
        ("delete_example", {"example_id": -1}, "not_found"),
    ],
)
def test_malformed_events_get_an_error_and_change_nothing(app, http, event, payload, code):
    client = sio(app, http)
    client.emit("add_class", {"name": "keep"}, callback=True)
    before = app.extensions["teachable"].pipeline.state()["classes"]
    client.get_received()
    answer = client.emit(event, payload, callback=True)
    assert answer["ok"] is False and answer["error"]["code"] == code
    assert last(client.get_received(), "error")["code"] == code
    assert app.extensions["teachable"].pipeline.state()["classes"] == before


def test_script_looking_names_are_stored_as_text(app, http):
    client = sio(app, http)
    name = "<img src=x onerror=alert(1)>"
    assert client.emit("add_class", {"name": name}, callback=True)["class"]["name"] == name
    assert http.get("/api/state").get_json()["classes"][0]["name"] == name


def test_pin_protects_destructive_events(app_factory):
    app = app_factory(pin="2468")
    http = app.test_client()
    client = sio(app, http)
    cls = client.emit("add_class", {"name": "x"}, callback=True)["class"]
    refused = client.emit("delete_class", {"class_id": cls["id"]}, callback=True)
    assert refused["error"]["code"] == "pin_required"
    assert client.emit("reset", {"pin": "0000"}, callback=True)["error"]["code"] == "pin_required"
    assert http.delete(f"/api/classes/{cls['id']}").status_code == 403
    assert len(app.extensions["teachable"].pipeline.state()["classes"]) == 1
    assert client.emit("delete_class", {"class_id": cls["id"], "pin": "2468"}, callback=True)["ok"]


def test_foreign_origin_cannot_open_a_socket(app, http):
    client = sio(app, http, headers={"Origin": "http://evil.example"})
    assert not client.is_connected()
    allowed = sio(app, http, headers={"Origin": "http://localhost"})
    assert allowed.is_connected()


def test_allowed_origin_may_connect(app_factory):
    app = app_factory(allow_origins=("http://kiosk.lan:8080",))
    client = sio(app, app.test_client(), headers={"Origin": "http://kiosk.lan:8080"})
    assert client.is_connected()


def test_frames_from_the_browser_need_the_browser_camera(app, http):
    client = sio(app, http)
    client.get_received()
    client.emit("frame", jpeg(np.zeros((10, 10, 3), np.uint8)))
    assert last(client.get_received(), "error")["code"] == "not_browser_camera"


# ----- REST -----------------------------------------------------------------------------
def test_rest_teaching_and_prediction(http, digit_jpegs):
    ids = {}
    for digit in (0, 9):
        r = http.post("/api/classes", json={"name": f"digit {digit}"})
        assert r.status_code == 201
        body = r.get_json()
        assert set(body) >= {"id", "name", "examples"} and body["examples"] == 0
        ids[digit] = body["id"]
        files = [(io.BytesIO(j), f"{i}.jpg") for i, j in enumerate(digit_jpegs(digit, 10))]
        r = http.post(
            f"/api/classes/{body['id']}/examples",
            data={"image": files},
            content_type="multipart/form-data",
        )
        assert r.get_json() == {"added": 10}
    state = http.get("/api/state").get_json()
    assert [c["examples"] for c in state["classes"]] == [10, 10]
    right = 0
    for digit in (0, 9):
        for j in digit_jpegs(digit, 5, start=150):
            r = http.post(
                "/api/predict",
                data={"image": (io.BytesIO(j), "q.jpg")},
                content_type="multipart/form-data",
            )
            body = r.get_json()
            assert set(body) == {"label", "class_id", "scores", "unknown"}
            right += body["class_id"] == ids[digit]
    assert right >= 9
    assert http.patch(f"/api/classes/{ids[0]}", json={"name": "zero"}).get_json()["name"] == "zero"
    assert http.delete(f"/api/classes/{ids[9]}").status_code == 204
    assert http.post("/api/reset").status_code == 204
    assert http.get("/api/state").get_json()["classes"] == []


def test_healthz(http):
    body = http.get("/healthz").get_json()
    assert body["status"] == "ok" and body["backend"] == "cpu"
    assert set(body) >= {"camera", "fps", "clients", "classes", "examples"}


def test_rest_bad_input_gets_4xx_json_and_changes_nothing(app_factory):
    app = app_factory(max_upload_mb=1, max_upload_files=3)
    http = app.test_client()
    cls = http.post("/api/classes", json={"name": "only"}).get_json()
    url = f"/api/classes/{cls['id']}/examples"
    cases = [
        http.post("/api/classes", json={"name": "  "}),
        http.post("/api/classes", json=["not", "an", "object"]),
        http.post("/api/classes", data="{broken", content_type="application/json"),
        http.post("/api/classes", json={"name": "ONLY"}),
        http.patch("/api/classes/999", json={"name": "x"}),
        http.post(
            url,
            data={"image": (io.BytesIO(b"not an image"), "x.jpg")},
            content_type="multipart/form-data",
        ),
        http.post(url, data={}, content_type="multipart/form-data"),
        http.post(
            url,
            data={"image": (io.BytesIO(b"\xff" * (2 * 1024 * 1024)), "big.jpg")},
            content_type="multipart/form-data",
        ),
        http.post(
            url,
            data={"image": [(io.BytesIO(b"x"), f"{i}.jpg") for i in range(5)]},
            content_type="multipart/form-data",
        ),
        http.post("/api/train", json={"method": "magic"}),
        http.get("/api/nothing-here"),
    ]
    statuses = [r.status_code for r in cases]
    assert statuses == [400, 400, 400, 409, 404, 400, 400, 413, 413, 400, 404]
    for r in cases:
        error = r.get_json()["error"]
        assert error["message"] and error["code"] in errors.ERRORS
        # besides code and message, only the fields server.errors documents for the code
        assert set(error) - {"code", "message"} <= set(errors.FIELDS.get(error["code"], ()))
    assert cases[3].get_json()["error"]["name"] == "only"  # the class that has the name
    assert cases[5].get_json()["error"]["file"] == "x.jpg"
    state = http.get("/api/state").get_json()
    assert [(c["name"], c["examples"]) for c in state["classes"]] == [("only", 0)]


def test_cross_site_posts_are_refused(http):
    r = http.post("/api/classes", json={"name": "csrf"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden_origin"
    form = http.post("/api/reset", data={"x": "1"}, headers={"Origin": "http://evil.example"})
    assert form.status_code == 403
    same = http.post("/api/classes", json={"name": "ok"}, headers={"Origin": "http://localhost"})
    assert same.status_code == 201
    assert [c["name"] for c in http.get("/api/state").get_json()["classes"]] == ["ok"]


def test_join_addresses_and_qr_code(app_factory, monkeypatch):
    from server.web import netinfo

    monkeypatch.setattr(netinfo, "lan_addresses", lambda: ["192.168.1.20"])
    http = app_factory(port=5000).test_client()
    assert http.get("/api/join").get_json() == {"urls": ["http://192.168.1.20:5000/"]}
    svg = http.get("/api/join.svg")
    assert svg.status_code == 200 and svg.content_type == "image/svg+xml"
    assert svg.data.startswith(b"<svg") and b"http://192.168.1.20:5000/" in svg.data


def test_no_join_code_when_bound_to_loopback(app_factory):
    http = app_factory(host="127.0.0.1").test_client()
    assert http.get("/api/join").get_json() == {"urls": []}
    assert http.get("/api/join.svg").status_code == 404


def test_lan_addresses_are_real_ipv4_addresses():
    import ipaddress

    from server.web import netinfo

    for address in netinfo.lan_addresses():
        assert not ipaddress.ip_address(address).is_loopback


def test_binary_events_are_sent_whole_when_threads_race():
    """A frame's header and its JPEG attachment are never split by another thread's send."""
    import threading

    import socketio
    from socketio import packet

    from server.web import _serialize_sends

    server = socketio.Server(async_mode="threading")
    wire = []

    class SlowEngineIO:  # records what would go on the wire, slowly enough to invite races
        def send(self, sid, data):
            wire.append(data)
            time.sleep(0.0005)

        def send_packet(self, sid, pkt):
            wire.append(pkt.data)
            time.sleep(0.0005)

    server.eio = SlowEngineIO()
    _serialize_sends(server)

    def send(event, data, n=40):
        for _ in range(n):
            server._send_packet("eio-1", server.packet_class(packet.EVENT, data=[event, data]))

    threads = [
        threading.Thread(target=send, args=("frame", {"jpeg": b"\xff\xd8jpeg"})),
        threading.Thread(target=send, args=("state", {"version": 1})),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wire) == 120
    for i, item in enumerate(wire):
        if isinstance(item, str) and item.startswith("5"):  # a binary event's header
            assert isinstance(wire[i + 1], bytes), wire[i : i + 2]


def test_one_page_at_a_time_sends_the_browser_camera(app_factory, extractor, tmp_path):
    from server.hw.cameras import BrowserCamera

    settings = Settings(data_dir=tmp_path / "b")
    app = create_app(settings, camera=BrowserCamera(), extractor=extractor)
    try:
        http = app.test_client()
        first, second = sio(app, http), sio(app, http)
        frame = jpeg(np.full((48, 64, 3), 90, np.uint8))
        first.emit("frame", frame)
        second.get_received()
        second.emit("frame", frame)
        assert last(second.get_received(), "error")["code"] == "camera_taken"
        first.disconnect()
        second.emit("frame", frame)
        assert not [r for r in second.get_received() if r["name"] == "error"]
    finally:
        app.extensions["teachable"].close()


def test_thumbnails_revalidate_by_content(http, digit_jpegs):
    cls = http.post("/api/classes", json={"name": "t"}).get_json()
    http.post(
        f"/api/classes/{cls['id']}/examples",
        data={"image": (io.BytesIO(digit_jpegs(2, 1)[0]), "a.jpg")},
        content_type="multipart/form-data",
    )
    example = http.get("/api/state").get_json()["classes"][0]["recent"][0]
    first = http.get(f"/api/examples/{example}/thumbnail")
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-cache"
    again = http.get(
        f"/api/examples/{example}/thumbnail", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("192.168.1.20:5000", True),
        ("[::1]:5000", True),
        ("kiosk.lan:8080", True),  # an --allow-origin host
        ("evil.example:5000", False),
        ("evil.example", False),
    ],
)
def test_requests_must_address_the_kiosk_by_its_own_names(app_factory, host, allowed):
    app = app_factory(allow_origins=("http://kiosk.lan:8080",))
    http = app.test_client()
    r = http.get("/api/state", headers={"Host": host})
    assert (r.status_code == 200) is allowed
    if not allowed:
        assert r.status_code == 421 and r.get_json()["error"]["code"] == "bad_host"
        socket = sio(app, http, headers={"Host": host, "Origin": f"http://{host}"})
        assert not socket.is_connected()


def test_this_machines_own_name_is_accepted(http):
    import socket

    name = socket.gethostname()
    assert http.get("/healthz", headers={"Host": f"{name}:5000"}).status_code == 200
    assert http.get("/healthz", headers={"Host": f"{name.split('.')[0]}.local"}).status_code == 200


def test_packets_with_more_than_one_attachment_are_refused(app):
    from server.web import CheckedPacket

    socketio = app.extensions["teachable"].socketio
    assert socketio.server.packet_class is CheckedPacket
    assert CheckedPacket(encoded_packet='51-["frame",{"_placeholder":true,"num":0}]')
    with pytest.raises(ValueError, match="1000000000 attachments"):
        CheckedPacket(encoded_packet='51000000000-["frame",{"_placeholder":true,"num":0}]')


@pytest.mark.parametrize("packet", ['2["disconnect"]', '2["connect",{}]', '21["disconnect",1]'])
def test_a_reserved_event_closes_the_client_and_runs_no_handler(app, http, monkeypatch, packet):
    # python-socketio would run the disconnect (or connect) handler for it: the kiosk would
    # count one browser fewer and stop streaming to it while its connection stayed open
    services = app.extensions["teachable"]
    server, closed = services.socketio.server, []
    monkeypatch.setattr(server.eio, "disconnect", lambda eio_sid: closed.append(eio_sid))
    client = sio(app, http)
    services.pipeline.call(lambda: None)  # the worker has counted the client
    streamed = set(services.streamer.stats())
    assert len(streamed) == 1 and http.get("/healthz").get_json()["clients"] == 1
    server.eio.handlers["message"](client.eio_sid, packet)  # as Engine.IO hands it over
    assert closed == [client.eio_sid]
    services.pipeline.call(lambda: None)
    assert set(services.streamer.stats()) == streamed
    assert http.get("/healthz").get_json()["clients"] == 1


def test_a_flood_of_events_is_slowed_down_not_queued(app, http, monkeypatch):
    from server.web import events

    monkeypatch.setattr(events, "EVENTS_PER_S", 0.001)  # no refill during the test
    client = sio(app, http)
    answers = [client.emit("undo", {}, callback=True) for _ in range(100)]
    codes = [a["error"]["code"] for a in answers]
    assert codes[:40] == ["nothing_to_undo"] * 40  # the burst is served
    assert codes[40:] == ["slow_down"] * 60  # then answered at once, never queued


@pytest.mark.parametrize(
    "event, served", [("undo", "nothing_to_undo"), ("train", "nothing_to_train")]
)
def test_a_client_that_keeps_flooding_is_disconnected(app, http, monkeypatch, event, served):
    from server.web import events

    monkeypatch.setattr(events, "EVENTS_PER_S", 0.001)
    monkeypatch.setattr(events, "FLOOD_RATE", 0.001)
    # the test client has no Engine.IO connection to close: note which one the server closes
    # (the reliability suite's flood row sees a real socket closed)
    server, closed = app.extensions["teachable"].socketio.server, []
    monkeypatch.setattr(server.eio, "disconnect", lambda eio_sid: closed.append(eio_sid))
    client, other = sio(app, http), sio(app, http)
    answers = [client.emit(event, {}, callback=True) for _ in range(events.EVENT_BURST)]
    assert [a["error"]["code"] for a in answers] == [served] * events.EVENT_BURST
    refused = [client.emit(event, {}, callback=True) for _ in range(events.FLOOD_LIMIT)]
    assert [a["error"]["code"] for a in refused] == ["slow_down"] * events.FLOOD_LIMIT
    assert closed == []
    client.emit(event, {}, callback=True)  # one more than any page would send
    assert closed == [client.eio_sid]
    assert other.emit(event, {}, callback=True)["error"]["code"] == served


def test_new_sockets_from_one_address_are_limited():
    from server.web.security import SOCKET_BURST, SocketRateLimit

    now = [0.0]

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    limited = SocketRateLimit(app, rate=2.0, burst=SOCKET_BURST, clock=lambda: now[0])

    def get(path, query="EIO=4&transport=websocket", address="10.0.0.7"):
        status = []
        environ = {"PATH_INFO": path, "QUERY_STRING": query, "REMOTE_ADDR": address}
        body = b"".join(limited(environ, lambda s, h: status.append(s)))
        return status[0].split()[0], body

    assert [get("/socket.io/")[0] for _ in range(SOCKET_BURST)] == ["200"] * SOCKET_BURST
    status, body = get("/socket.io/")
    assert status == "429" and b"slow_down" in body
    assert get("/socket.io/", "EIO=4&transport=polling&sid=abc")[0] == "200"  # an open session
    assert get("/api/state")[0] == "200"  # only new sockets are counted
    assert get("/socket.io/", address="10.0.0.8")[0] == "200"  # another device
    now[0] += 1.0
    assert [get("/socket.io/")[0] for _ in range(3)] == ["200", "200", "429"]
    for i in range(1001):  # many devices: the table forgets those whose allowance refilled
        get("/socket.io/", address=f"10.1.{i // 250}.{i % 250}")
    now[0] += SOCKET_BURST / 2.0
    get("/socket.io/", address="10.2.0.1")
    assert len(limited._buckets) == 1


def test_token_bucket_refills_at_its_rate():
    from server.web.security import TokenBucket

    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 1.0
    assert [bucket.take() for _ in range(3)] == [True, True, False]


NESTED = {"a": {"b": [1]}}
WRONG_FIELDS = [
    ("POST", "/api/classes", "name", [-1, True, 1.5, "", "x" * 5000, [], {}, ["a"], NESTED]),
    ("PATCH", "/api/classes/{id}", "name", [-1, True, "", "x" * 5000, [], {}, NESTED]),
    ("POST", "/api/train", "method", [-1, True, "", "magic", [], {}, ["auto"], NESTED]),
    ("PUT", "/api/operator", "idle_minutes", [None, -1, True, "5", 1e9, [], {}, NESTED]),
    ("PUT", "/api/operator", "unknown_quantile", [None, 1, True, "0.1", [], {}]),
    ("PUT", "/api/operator", "smoothing", [-1, True, "0.5", [], {}]),
    ("PUT", "/api/operator", "method", ["magic", 1, [], {}, ["auto"]]),
    ("PUT", "/api/operator", "camera", ["my webcam", "folder:", 0, [], {}]),
    ("PUT", "/api/operator", "keep_visitor_data", [None, 1, "yes", [], {}]),
    ("POST", "/api/classes", None, [[], "x", 1, ["name"]]),  # None: the whole body
    ("POST", "/api/train", None, [[], "x", 1]),
    ("PUT", "/api/operator", None, [[], "x", 1, NESTED]),
]


@pytest.mark.parametrize(
    "method, path, field, values", WRONG_FIELDS, ids=[f"{m} {p} {f}" for m, p, f, _ in WRONG_FIELDS]
)
def test_rest_values_of_the_wrong_type_get_a_4xx_and_change_nothing(
    app_factory, method, path, field, values
):
    app = app_factory(exhibit=True, pin="2468")
    http = app.test_client()
    pin = {"X-Pin": "2468"}
    class_id = http.post("/api/classes", json={"name": "keep"}).get_json()["id"]

    def taught():  # what a request could change (the state also holds live figures)
        state = http.get("/api/state").get_json()
        operator = http.get("/api/operator", headers=pin).get_json()["settings"]
        return state["classes"], state["method"], operator

    before = taught()
    for value in values:
        body = value if field is None else {field: value}
        answer = http.open(path.format(id=class_id), method=method, json=body, headers=pin)
        assert 400 <= answer.status_code < 500, (body, answer.status_code)
        error = answer.get_json()["error"]
        assert error["code"] and error["message"], body
    assert taught() == before
