"""Exhibit mode in a real browser (``--exhibit --pin``): the attract screen over the live camera,
the privacy notice, what visitors cannot reach, and the operator's page (PIN, settings,
preset, restart). One server for the module; the tests run in the order written."""

import json
import re

import pytest
import requests
from kiosk_page import KIOSK, PHONE, add_class, api_state, check_layouts, set_language, wait_until

from liveserver import Server

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
expect = sync_api.expect

PIN = "2468"
PIN_KEY = "teachable.operator_pin"  # static/operator.js


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory, camera_dir, shared_dir):
    server = Server(
        tmp_path_factory.mktemp("exhibit"),
        f"folder:{camera_dir}",
        shared_dir,
        "--exhibit",
        "--pin",
        PIN,
        "--tpu",
        "auto",  # no Edge TPU here: the page shows that notice too
    )
    yield server
    server.stop()


def operator(server, method, path, **kwargs):
    """The operator's REST API, with the PIN."""
    return requests.request(method, server.url + path, headers={"X-Pin": PIN}, timeout=30, **kwargs)


def attract_showing(server):
    return api_state(server)["exhibit"]["attract"]


def open_operator(pages, server, size=KIOSK):
    page = pages.open(server.url + "/operator", size=size, wait_for_frame=False)
    expect(page.get_by_test_id("pin-panel")).to_be_visible()
    return page


def unlock(page, pin=PIN):
    page.get_by_test_id("pin-input").fill(pin)
    page.get_by_test_id("unlock").click()


def photos(digits_dir, digit, n):
    return sorted((digits_dir / str(digit)).iterdir())[:n]


def camera_brightness(page):
    """The mean brightness (0-255) of what the attract screen's camera canvas shows."""
    return page.evaluate(
        """() => {
          const canvas = document.querySelector('#attract-canvas');
          const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
          let sum = 0;
          for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
          return sum / (data.length / 4) / 3;
        }"""
    )


def test_the_attract_screen_invites_until_a_tap(exhibit, pages, artifacts, request):
    assert attract_showing(exhibit), "a fresh exhibit kiosk starts on the attract screen"
    page = pages.open(exhibit.url)
    attract = page.locator("#attract")
    expect(attract).to_be_visible()
    expect(attract.locator("#attract-title")).to_have_text("Teach me!")
    expect(page.get_by_test_id("attract-start")).to_have_text("Touch to start")
    expect(attract.locator(".attract-step strong")).to_have_text(
        ["Add a class", "Hold the red button", "Show the camera"]
    )
    # the live camera shows behind the invitation
    drawn = page.evaluate("window.teachable.stats.framesDrawn")
    page.wait_for_function("(n) => window.teachable.stats.framesDrawn > n", arg=drawn + 2)
    assert camera_brightness(page) > 30

    # choosing the language is not a start; every layout fits and is big enough to touch
    # (the attract screen fills the screen: no whole-page screenshots)
    check_layouts(
        page, artifacts / request.node.name / "attract", switch="#attract-lang", full_page=False
    )
    set_language(page, "ja", "#attract-lang")
    expect(attract.locator("#attract-title")).to_have_text("おしえてね！")
    set_language(page, "en", "#attract-lang")
    assert attract_showing(exhibit)

    axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe()
    wcag = {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
    rules = {"meta-viewport": {"enabled": False}}  # the kiosk's own screen locks zoom
    results = axe.run(page, "#attract", {"runOnly": wcag, "rules": rules})
    assert results.violations_count == 0, results.generate_report()

    # a tap anywhere (here: on the camera, beside the button) wakes the kiosk
    page.mouse.click(60, KIOSK[1] // 2)
    expect(attract).to_be_hidden()
    wait_until(lambda: not attract_showing(exhibit), what="the state says attract: false")
    assert page.evaluate("window.teachable.state.exhibit.attract") is False

    # the visitor's screen: the notices; no Project menu, no start over; undo stays
    notices = page.locator("#notices .notice")
    expect(notices).to_have_text(
        [
            "No Edge TPU: the camera runs on the CPU (slower).",
            "Nothing you show the camera is saved.",
        ]
    )
    expect(notices.nth(1)).to_be_visible()
    expect(page.locator("#open-project")).to_be_hidden()
    expect(page.locator("#reset")).to_be_hidden()
    expect(page.locator("#undo")).to_be_visible()
    set_language(page, "ja")
    expect(notices.nth(1)).to_have_text("カメラに見せたものは保存されません。")
    set_language(page, "en")
    unknown = page.evaluate(
        """async () => (await import("/static/i18n.js")).noticeText(
             {code: "new_code", message: "A notice this page does not know yet."})"""
    )
    assert unknown == "A notice this page does not know yet."
    check_layouts(page, artifacts / request.node.name / "visitor")


def test_the_attract_screen_comes_back_when_the_visitor_session_is_reset(exhibit, pages):
    page = pages.open(exhibit.url)
    if attract_showing(exhibit):
        page.get_by_test_id("attract-start").click()
    expect(page.locator("#attract")).to_be_hidden()
    page.get_by_test_id("add-class").click()
    expect(page.get_by_test_id("class-card")).to_have_count(1)

    assert operator(exhibit, "POST", "/api/operator/preset/restore").ok
    expect(page.locator("#attract")).to_be_visible()
    expect(page.get_by_test_id("class-card")).to_have_count(0)
    assert attract_showing(exhibit)


def test_the_operator_page_asks_for_the_pin_and_keeps_a_setting(
    exhibit, pages, camera_dir, artifacts, request
):
    page = open_operator(pages, exhibit)
    panels = page.get_by_test_id("operator-panels")
    expect(panels).to_be_hidden()

    unlock(page, "0000")
    expect(page.get_by_test_id("pin-message")).to_have_text("That PIN is not right. Try again.")
    expect(panels).to_be_hidden()
    assert page.evaluate("(key) => sessionStorage.getItem(key)", PIN_KEY) is None

    unlock(page)
    expect(panels).to_be_visible()
    expect(page.get_by_test_id("pin-panel")).to_be_hidden()
    assert page.evaluate("(key) => sessionStorage.getItem(key)", PIN_KEY) == PIN
    assert page.evaluate("(key) => localStorage.getItem(key)", PIN_KEY) is None
    status = page.get_by_test_id("live-status")
    expect(status).to_contain_text("Running")
    expect(status).to_contain_text("Camera on")
    expect(status).to_contain_text("CPU")
    expect(status).to_contain_text("Nothing you show the camera is saved.")

    # a setting saved, and shown again after a reload (the PIN lasts as long as the tab)
    idle = page.get_by_test_id("idle-minutes")
    expect(idle).to_have_value("3")
    idle.fill("7.5")
    page.get_by_test_id("save-settings").click()
    message = page.get_by_test_id("settings-message")
    expect(message).to_have_text("Saved.")
    assert operator(exhibit, "GET", "/api/operator").json()["settings"]["idle_minutes"] == 7.5
    assert api_state(exhibit)["exhibit"]["idle_minutes"] == 7.5
    page.reload()
    expect(panels).to_be_visible()
    expect(page.get_by_test_id("idle-minutes")).to_have_value("7.5")
    expect(status).to_contain_text("7.5 min without a touch")

    # out of range: said on the page, nothing sent
    idle = page.get_by_test_id("idle-minutes")
    idle.fill("999")
    page.get_by_test_id("save-settings").click()
    expect(message).to_contain_text("a number from 0.5 to 240")
    expect(idle).to_have_attribute("aria-invalid", "true")
    assert operator(exhibit, "GET", "/api/operator").json()["settings"]["idle_minutes"] == 7.5
    idle.fill("3")

    # a new camera applies after a restart, and the page says so
    page.locator("#set-camera").fill(f"folder:{camera_dir}")
    page.get_by_test_id("save-settings").click()
    expect(message).to_have_text("Saved. This applies after a restart.")
    expect(page.get_by_test_id("restart")).to_have_class(re.compile("needs-attention"))
    page.locator("#set-camera").fill("")  # back to the --camera the server started with
    page.get_by_test_id("save-settings").click()
    expect(message).to_have_text("Saved. This applies after a restart.")
    assert operator(exhibit, "GET", "/api/operator").json()["settings"]["camera"] is None

    check_layouts(page, artifacts / request.node.name / "operator", full_page=True)
    axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe()
    wcag = {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
    for language in ("en", "ja"):
        set_language(page, language)
        results = axe.run(page, options={"runOnly": wcag})
        assert results.violations_count == 0, results.generate_report()
    set_language(page, "en")

    # a PIN that stops working (the kiosk restarted with another) goes back to the prompt
    page.evaluate("(key) => sessionStorage.setItem(key, '1111')", PIN_KEY)
    page.reload()
    expect(page.get_by_test_id("pin-message")).to_have_text("That PIN is not right. Try again.")
    expect(panels).to_be_hidden()
    check_layouts(page, artifacts / request.node.name / "pin", full_page=True)


def test_the_operator_saves_a_preset_and_goes_back_to_it(exhibit, pages, digits_dir):
    assert operator(exhibit, "POST", "/api/reset").status_code == 204
    add_class(exhibit, "background", photos(digits_dir, 0, 3))
    kiosk = pages.open(exhibit.url, size=PHONE)
    card = kiosk.get_by_test_id("class-card")
    expect(card).to_have_count(1)
    # the card's strip shows its newest examples straight from the state (no prediction needed)
    expect(card.locator(".thumb-button")).to_have_count(3)
    recent = api_state(exhibit)["classes"][0]["recent"]
    assert len(recent) == 3
    shown = kiosk.evaluate(
        "() => [...document.querySelectorAll('.thumb-button')].map((b) => +b.dataset.exampleId)"
    )
    assert shown == recent

    page = open_operator(pages, exhibit)
    unlock(page)
    expect(page.get_by_test_id("operator-panels")).to_be_visible()
    page.get_by_test_id("save-preset").click()
    page.locator("#confirm-ok").click()
    message = page.get_by_test_id("preset-message")
    expect(message).to_have_text("Preset saved. Classes: 1, examples: 3.")
    expect(page.get_by_test_id("preset-state")).to_have_text("A preset is saved.")
    assert api_state(exhibit)["exhibit"]["preset"] is True

    add_class(exhibit, "visitor's")
    expect(card).to_have_count(2)
    page.get_by_test_id("restore-preset").click()
    expect(message).to_have_text("Back to the preset. Classes: 1, examples: 3.")
    state = api_state(exhibit)
    assert [(c["name"], c["examples"]) for c in state["classes"]] == [("background", 3)]
    expect(card).to_have_count(1)
    expect(card.get_by_test_id("class-name")).to_have_value("background")

    # the next tests (and visitors) start from an empty kiosk again
    assert operator(exhibit, "POST", "/api/reset").status_code == 204
    assert operator(exhibit, "POST", "/api/operator/preset").status_code == 201


def test_the_operator_restarts_the_server_and_the_page_comes_back(exhibit, pages):
    page = open_operator(pages, exhibit)
    unlock(page)
    expect(page.get_by_test_id("operator-panels")).to_be_visible()

    # the server's restart itself is not done here (it ends the worker process): the page is
    # shown a server that accepts the restart, is away twice, and is back
    asked = []
    health_calls = []

    def restart(route):
        asked.append(route.request.headers.get("x-pin"))
        body = json.dumps({"restarting": True})
        route.fulfill(status=202, content_type="application/json", body=body)

    def healthz(route):
        health_calls.append(1)
        if len(health_calls) <= 2:
            route.abort("connectionrefused")
        else:
            route.continue_()

    page.route("**/api/operator/restart", restart)
    page.route("**/healthz", healthz)
    page.evaluate("window.__before_restart = true")
    page.get_by_test_id("restart").click()
    expect(page.locator("#confirm-title")).to_have_text("Restart the server?")
    page.locator("#confirm-ok").click()
    expect(page.locator("#banner")).to_contain_text("Restarting")
    page.wait_for_function(
        "() => window.__before_restart === undefined && window.teachableOperator"
        " && window.teachableOperator.unlocked",
        timeout=20000,
    )
    assert asked == [PIN]
    assert len(health_calls) >= 3
    expect(page.get_by_test_id("operator-panels")).to_be_visible()
    expect(page.locator("#banner")).to_be_hidden()


def test_five_wrong_pins_make_the_page_wait(exhibit, pages):
    """Last in the module: it locks this address out of the PIN for a minute."""
    page = open_operator(pages, exhibit)
    message = page.get_by_test_id("pin-message")
    wrong, locked = (
        "That PIN is not right. Try again.",
        "Too many wrong PINs. Wait a minute, then try again.",
    )
    said = []
    for _ in range(6):  # earlier tests of this module guessed wrong too, maybe in this minute
        page.evaluate(
            "() => { document.querySelector('[data-testid=pin-message]').textContent = ''; }"
        )
        unlock(page, "0000")
        expect(message).to_have_text(re.compile(f"^({re.escape(wrong)}|{re.escape(locked)})$"))
        said.append(message.text_content())
        if said[-1] == locked:
            break
    assert said[-1] == locked and said[0] == wrong, said  # the count: test_exhibit_mode.py
    unlock(page)  # the right PIN, too late
    expect(message).to_have_text(locked)
    expect(page.get_by_test_id("operator-panels")).to_be_hidden()
