"""A server error on a Japanese page is said entirely in Japanese (server/errors.py codes,
static/i18n/ja.js), on the kiosk page and on the operator's page; after a switch to English
the same error is said in English."""

import re

import pytest
from kiosk_page import add_class, set_language

from liveserver import Server

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
expect = sync_api.expect

PIN = "1357"
LATIN = re.compile("[A-Za-z]")


@pytest.fixture(scope="module")
def exhibit(tmp_path_factory, camera_dir, shared_dir):
    server = Server(
        tmp_path_factory.mktemp("exhibit"), f"folder:{camera_dir}", shared_dir, "--exhibit",
        "--pin", PIN,
    )  # fmt: skip
    yield server
    server.stop()


def test_a_name_clash_on_a_japanese_kiosk_page_is_said_in_japanese(kiosk, pages):
    add_class(kiosk, "りんご")
    add_class(kiosk, "みかん")
    page = pages.open(kiosk.url, locale="ja-JP")  # the browser's language: Japanese
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    names = page.get_by_test_id("class-name")
    expect(names).to_have_count(2)

    names.nth(1).fill("りんご")
    names.nth(1).press("Enter")
    toast = page.locator(".toast-error")
    expect(toast).to_have_count(1)  # the error event and the answer show once
    expect(toast.locator(".toast-body strong")).to_have_text("うまくいきませんでした")
    expect(toast.locator(".toast-body span")).to_have_text(
        "「りんご」という名前のクラスはもうあります。"
    )
    shown = toast.locator(".toast-body").inner_text()
    assert not LATIN.search(shown), shown
    expect(names.nth(1)).to_have_value("みかん")  # nothing changed

    # the same clash after a switch to English is said in English
    toast.locator(".toast-close").click()
    set_language(page, "en")
    names.nth(1).fill("りんご")
    names.nth(1).press("Enter")
    expect(toast.locator(".toast-body span")).to_have_text(
        "There is already a class called “りんご”."
    )
    expect(toast.locator(".toast-body strong")).to_have_text("That did not work")


def test_a_bad_setting_on_a_japanese_operator_page_is_said_in_japanese(exhibit, pages):
    page = pages.open(exhibit.url + "/operator", locale="ja-JP", wait_for_frame=False)
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    pin = page.get_by_test_id("pin-message")
    page.get_by_test_id("pin-input").fill("0000")
    page.get_by_test_id("unlock").click()
    expect(pin).to_have_text("暗証番号が違います。もう一度入力してください。")
    page.get_by_test_id("pin-input").fill(PIN)
    page.get_by_test_id("unlock").click()
    expect(page.get_by_test_id("operator-panels")).to_be_visible()

    # the server refuses the camera: its error in Japanese, under the form, the field marked
    camera = page.locator("#set-camera")
    camera.fill("nonsense:xyz")
    page.get_by_test_id("save-settings").click()
    message = page.get_by_test_id("settings-message")
    expect(message).to_have_text("その設定は保存できません。値を確かめてください。")
    assert not LATIN.search(message.inner_text())
    expect(camera).to_have_attribute("aria-invalid", "true")

    # switched to English, the message is worded again: the server's own sentence
    set_language(page, "en")
    expect(message).to_have_text(re.compile(r"^camera: unknown camera 'nonsense:xyz'"))
    camera.fill("")
    page.get_by_test_id("save-settings").click()
    expect(message).to_have_text("Nothing changed.")
    expect(camera).not_to_have_attribute("aria-invalid", "true")
