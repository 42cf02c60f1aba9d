"""Row 5: another web site, a rebinding DNS name or a PIN-less program cannot change anything."""

import io

import pytest
import requests
import socketio
from PIL import Image
from relhelp import RawClient, Watcher, record, start_server

pytestmark = pytest.mark.reliability

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory, folder_camera, shared_dir):
    s = start_server(tmp_path_factory, folder_camera, shared_dir, "--pin", "2468")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def class_id(server):
    return requests.post(server.url + "/api/classes", json={"name": "keep"}, timeout=10).json()[
        "id"
    ]


def _state(server):
    state = requests.get(server.url + "/api/state", timeout=10).json()
    return [(c["id"], c["name"], c["examples"]) for c in state["classes"]]


def _jpeg():
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "gray").save(out, "JPEG")
    return out.getvalue()


def test_a_foreign_origin_cannot_open_a_socket(server, class_id):
    import websocket

    with pytest.raises(websocket.WebSocketBadStatusException) as raw:
        RawClient(server, origin=EVIL)
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(server.url, headers={"Origin": EVIL}, transports=["websocket"])
    record("5 foreign-origin socket", raw_status=raw.value.status_code, socketio="refused")


@pytest.mark.parametrize(
    "name, headers, expected",
    [
        ("foreign Origin", {"Origin": EVIL}, 403),
        ("DNS rebinding", {"Host": "evil.example", "Origin": EVIL}, 421),
        ("X-Forwarded-Host", {"X-Forwarded-Host": "evil.example", "Origin": EVIL}, 403),
    ],
)
def test_a_cross_site_rest_post_is_refused(server, class_id, name, headers, expected):
    before = _state(server)
    pin = {"X-Pin": "2468"}
    answers = [
        requests.post(server.url + "/api/classes", json={"name": "evil"}, headers=headers),
        requests.delete(f"{server.url}/api/classes/{class_id}", headers={**headers, **pin}),
        requests.post(server.url + "/api/reset", headers={**headers, **pin}),
    ]
    if "Host" in headers:
        answers.append(requests.get(server.url + "/", headers=headers))
    record(f"5 REST {name}", statuses=[a.status_code for a in answers])
    assert [a.status_code for a in answers] == [expected] * len(answers)
    assert _state(server) == before


def test_a_cross_site_multipart_post_is_refused(server, class_id):
    before = _state(server)
    answer = requests.post(
        f"{server.url}/api/classes/{class_id}/examples",
        files={"image": ("a.jpg", _jpeg(), "image/jpeg")},
        headers={"Origin": EVIL},
    )
    record("5 cross-site multipart", status=answer.status_code)
    assert answer.status_code == 403
    assert _state(server) == before


def test_destructive_socket_events_need_the_pin(server, class_id):
    before = _state(server)
    client = Watcher(server.url)  # a program: no Origin header
    try:
        answers = [
            client.sio.call("delete_class", {"class_id": class_id}, timeout=15),
            client.sio.call("delete_class", {"class_id": class_id, "pin": "1111"}, timeout=15),
            client.sio.call("reset", {}, timeout=15),
            client.sio.call("reset", {"pin": 2468}, timeout=15),  # a number, not the string
        ]
    finally:
        client.close()
    codes = [a.get("error", {}).get("code") for a in answers]
    record("5 socket without PIN", codes=codes)
    assert codes == ["pin_required"] * 4
    assert _state(server) == before
