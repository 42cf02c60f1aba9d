"""A kiosk whose camera is the browser's own (``--camera browser``) and that asks for a PIN."""

import io
import threading

import pytest
import requests
import socketio
from kiosk_page import add_class, api_state, wait_until
from PIL import Image

from liveserver import Server

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
expect = sync_api.expect

PIN = "2468"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, shared_dir):
    server = Server(tmp_path_factory.mktemp("browser"), "browser", shared_dir, "--pin", PIN)
    yield server
    server.stop()


@pytest.fixture
def empty(guarded):
    reply = requests.post(guarded.url + "/api/reset", headers={"X-Pin": PIN}, timeout=10)
    assert reply.status_code == 204
    return guarded


def health(server):
    return requests.get(server.url + "/healthz", timeout=10).json()


def test_the_page_sends_its_own_camera_and_shows_its_video(empty, pages, screenshots):
    page = pages.open(empty.url, wait_for_frame=False)
    expect(page.locator("#own-video")).to_be_visible()
    expect(page.locator("#view-canvas")).to_be_hidden()
    wait_until(lambda: health(empty)["camera"] == "online", what="the browser's frames arrive")
    # frames come back (they pace the predictions) and the status bar says the camera is on
    page.wait_for_function("() => window.teachable.stats.framesDrawn > 5")
    expect(page.get_by_test_id("status")).to_contain_text("Camera on")
    expect(page.locator("#own-camera")).to_have_text("Stop sending my camera")
    screenshots(page)


def test_delete_and_start_over_ask_for_the_pin(empty, pages):
    add_class(empty, "guarded")
    page = pages.open(empty.url, wait_for_frame=False)
    cards = page.get_by_test_id("class-card")
    expect(cards).to_have_count(1)

    cards.first.locator(".delete").click()
    expect(page.locator("#pin-input")).to_be_visible()
    page.locator("#pin-input").fill("0000")
    page.locator("#confirm-ok").click()
    expect(page.locator(".toast-error")).to_contain_text("PIN")
    expect(cards).to_have_count(1)

    cards.first.locator(".delete").click()
    page.locator("#pin-input").fill(PIN)
    page.locator("#confirm-ok").click()
    expect(cards).to_have_count(0)

    add_class(empty, "again")
    expect(cards).to_have_count(1)
    page.locator("#reset").click()
    expect(page.locator("#pin-input")).to_be_visible()
    page.locator("#pin-input").fill(PIN)
    page.locator("#confirm-ok").click()
    expect(cards).to_have_count(0)


def test_a_dark_picture_gives_a_hint_by_the_record_button(empty, pages):
    add_class(empty, "dark")
    page = pages.open(empty.url, wait_for_frame=False)
    own = page.locator("#own-camera")
    expect(own).to_have_text("Stop sending my camera")
    own.click()  # this page stops sending; a program sends black frames instead
    expect(own).to_have_text("Use this device's camera")
    black = io.BytesIO()
    Image.new("RGB", (160, 120)).save(black, "JPEG")
    stop = threading.Event()
    sender = socketio.Client(reconnection=False)
    sender.on("frame", lambda data: True)  # acknowledge, or the server drops this client
    sender.connect(empty.url, transports=["websocket"], wait_timeout=10)

    def send():
        while not stop.wait(1 / 15):
            sender.emit("frame", black.getvalue())

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        page.wait_for_function("() => window.teachable.stats.framesDrawn > 3")
        button = page.get_by_test_id("record")
        box = button.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        hint = page.locator(".skip-hint")
        expect(hint).to_have_text("Too dark: add some light.")
        expect(hint).to_be_visible()
        page.mouse.up()
    finally:
        stop.set()
        thread.join(5)
        sender.disconnect()
    assert api_state(empty)["classes"][0]["examples"] == 0
