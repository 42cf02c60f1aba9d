"""The kiosk page in a real browser against a real server whose camera plays hands showing 1
(sub-folder ``a/``) and then hands showing 5 (``b/``), 2 s each, in a loop."""

import io
import re

import pytest
import requests
import segno
from kiosk_page import (
    KIOSK,
    LAYOUTS,
    PHONE,
    add_class,
    api_state,
    example_count,
    hold_record_during,
    sample_predictions,
    set_language,
    wait_until,
)

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
expect = sync_api.expect

XSS = "<img src=x onerror=alert(1)>"
XSS_FLAG = "<svg onload=window.__xss=1>"  # class names have at most 40 characters


def photos(digits_dir, digit, n, start=0):
    return sorted((digits_dir / str(digit)).iterdir())[start : start + n]


def test_teaching_two_classes_moves_the_bars_and_a_second_device_follows(kiosk, pages, screenshots):
    page = pages.open(kiosk.url)
    phone = pages.open(kiosk.url, size=PHONE, locale="ja-JP")
    cards, phone_cards = page.get_by_test_id("class-card"), phone.get_by_test_id("class-card")
    expect(page.get_by_test_id("top-label")).to_have_text("Teach me something!")
    expect(phone.get_by_test_id("top-label")).to_have_text("何か教えてね！")

    for count, name in enumerate(["one", "five"], start=1):
        page.get_by_test_id("add-class").click()
        expect(cards).to_have_count(count)
        field = cards.nth(count - 1).get_by_test_id("class-name")
        field.fill(name)
        field.press("Enter")
        expect(phone_cards.nth(count - 1).get_by_test_id("class-name")).to_have_value(name)
    assert [c["name"] for c in api_state(kiosk)["classes"]] == ["one", "five"]

    one, five = cards.nth(0), cards.nth(1)
    hold_record_during(page, one, "a")
    wait_until(lambda: example_count(one) >= 3, what="recording 'one' adds examples")
    hold_record_during(page, five, "b")
    wait_until(lambda: example_count(five) >= 3, what="recording 'five' adds examples")
    wait_until(lambda: api_state(kiosk)["recording"] == [], what="letting go stops recording")
    counts = [example_count(one), example_count(five)]
    expect(phone_cards.nth(0).get_by_test_id("example-count")).to_have_text(str(counts[0]))
    expect(phone_cards.nth(1).get_by_test_id("example-count")).to_have_text(str(counts[1]))
    expect(page.get_by_test_id("confidence-bar")).to_have_count(2)
    expect(phone.get_by_test_id("confidence-bar")).to_have_count(2)

    # two full turns of the camera: the top label and the bars follow what it shows
    samples = sample_predictions(page, 8.5)
    tops = {s["top"] for s in samples}
    ones = [s["bars"]["one"] for s in samples]
    print(f"\nlabels seen: {sorted(tops)}; bar 'one' from {min(ones)}% to {max(ones)}%")
    assert {"one", "five"} <= tops
    assert max(ones) - min(ones) >= 50
    expect(page.locator("#why-thumbs img").first).to_be_visible()  # "why it thinks so"
    expect(phone.get_by_test_id("top-label")).to_have_text(re.compile("^(one|five)$"))

    # the strip of a class shows examples it matched; tapping one deletes that example
    strip = page.locator("[data-testid=class-card] .thumb-button")
    expect(strip.first).to_be_visible()
    before = sum(c["examples"] for c in api_state(kiosk)["classes"])
    strip.first.click()
    wait_until(
        lambda: sum(c["examples"] for c in api_state(kiosk)["classes"]) == before - 1,
        what="tapping a thumbnail deletes its example",
    )
    screenshots(page)


def test_record_stops_when_the_pointer_is_cancelled_or_leaves(kiosk, pages):
    class_id = add_class(kiosk, "held")
    page = pages.open(kiosk.url)
    button = page.get_by_test_id("record")
    for ending in ("pointercancel", "pointerleave", "pointerup"):
        button.dispatch_event(
            "pointerdown", {"pointerId": 7, "pointerType": "touch", "isPrimary": True, "button": 0}
        )
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(page.get_by_test_id("class-card")).to_have_class(re.compile("is-recording"))
        wait_until(lambda: api_state(kiosk)["recording"] == [class_id], what="recording starts")
        button.dispatch_event(ending, {"pointerId": 7, "pointerType": "touch", "isPrimary": True})
        expect(button).to_have_attribute("aria-pressed", "false")
        wait_until(lambda: api_state(kiosk)["recording"] == [], what=f"{ending} stops recording")
    assert api_state(kiosk)["classes"][0]["examples"] > 0


def test_a_class_name_is_shown_as_text_and_never_runs(kiosk, pages, screenshots):
    page = pages.open(kiosk.url)
    other = pages.open(kiosk.url)
    names = page.get_by_test_id("class-name")
    for count, name in enumerate((XSS, XSS_FLAG), start=1):
        page.get_by_test_id("add-class").click()
        expect(names).to_have_count(count)
        names.nth(count - 1).fill(name)
        names.nth(count - 1).press("Enter")
    for seen in (page, other):
        for index, name in enumerate((XSS, XSS_FLAG)):
            expect(seen.get_by_test_id("class-name").nth(index)).to_have_value(name)
            expect(seen.locator(".bar-name").nth(index)).to_have_text(name)

    # a taken name: the server's error shows as a toast, as text, and the name goes back
    page.get_by_test_id("add-class").click()
    third = names.nth(2)
    expect(third).to_have_value("Class 3")
    third.fill(XSS)
    third.press("Enter")
    expect(page.locator(".toast-error")).to_contain_text(XSS)
    expect(third).to_have_value("Class 3")

    # the confirmation dialog names the class too
    page.get_by_test_id("class-card").first.locator(".delete").click()
    expect(page.locator("#confirm-title")).to_have_text(f"Delete “{XSS}”?")
    page.locator("#confirm-dialog button[value=cancel]").click()
    expect(page.locator("#confirm-dialog")).not_to_be_visible()
    assert len(api_state(kiosk)["classes"]) == 3

    for seen in (page, other):
        assert seen.evaluate("window.__xss") is None
        assert seen.locator('img[src="x"], svg[onload]').count() == 0
    screenshots(page)
    # and the pages fixture fails the test if any dialog (alert) opened


def test_method_switch_train_chart_and_accuracy_per_class(kiosk, pages, screenshots, digits_dir):
    add_class(kiosk, "one", photos(digits_dir, 1, 12))
    add_class(kiosk, "five", photos(digits_dir, 5, 12))
    page = pages.open(kiosk.url)
    method = page.get_by_test_id("method")
    for text in (
        "instant, then fine-tunes itself: best overall, add classes any time",
        "works from 1 to ~200 examples a class (5 is already useful)",
        "press Train; adding a class means training again",
        "compares with the nearest examples, like Teachable Machine",
    ):
        expect(method).to_contain_text(re.compile(re.escape(text), re.IGNORECASE))

    method.get_by_text("Backprop", exact=True).click()
    wait_until(lambda: api_state(kiosk)["method"] == "backprop", what="the method switches")
    expect(method.locator("input[value=backprop]")).to_be_checked()
    train = page.get_by_test_id("train")
    expect(train).to_be_enabled()
    train.click()
    expect(page.locator("#chart-box")).to_be_visible()
    expect(page.locator("#per-class-list li")).to_have_count(2, timeout=30000)
    expect(page.locator("#per-class-list")).to_contain_text("one")
    expect(page.locator("#train-status")).to_contain_text("Trained in")
    assert api_state(kiosk)["training"]["state"] == "done"

    other = pages.open(kiosk.url)  # a page that arrives later sees the result too
    expect(other.locator("#per-class-list li")).to_have_count(2)
    expect(other.get_by_test_id("method").locator("input[value=backprop]")).to_be_checked()
    screenshots(page)


def test_errors_show_the_servers_message_and_a_project_goes_out_and_back(
    kiosk, pages, screenshots, digits_dir, tmp_path
):
    page = pages.open(kiosk.url)
    page.locator("#open-project").click()
    menu = page.locator("#project-dialog")
    expect(menu).to_be_visible()

    # nothing taught yet: the model export fails and the page shows the server's own words
    response = page.request.get(kiosk.url + "/api/export/model.tflite?target=cpu")
    assert not response.ok
    message = response.json()["error"]["message"]
    menu.locator("a[href*='target=cpu']").click()
    expect(menu.locator("#project-message")).to_have_text(message)
    expect(page.locator(".toast-error")).to_contain_text(message)

    add_class(kiosk, "one", photos(digits_dir, 1, 5))
    add_class(kiosk, "five", photos(digits_dir, 5, 5))
    expect(page.get_by_test_id("class-card")).to_have_count(2)
    with page.expect_download() as download:
        menu.locator("a[href='/api/project']").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".zip"

    menu.locator("button[value=close]").click()
    page.locator("#reset").click()
    page.locator("#confirm-ok").click()
    expect(page.get_by_test_id("class-card")).to_have_count(0)

    page.locator("#open-project").click()
    page.locator("#import-file").set_input_files(str(saved))
    page.locator("#confirm-ok").click()
    expect(page.get_by_test_id("class-card")).to_have_count(2)
    expect(page.get_by_test_id("class-name").first).to_have_value("one")
    assert [c["examples"] for c in api_state(kiosk)["classes"]] == [5, 5]
    expect(menu).not_to_be_visible()
    screenshots(page)


def test_layouts_fit_the_screen_and_every_target_is_big_enough(kiosk, pages, screenshots):
    add_class(kiosk, "a rather long class name to wrap")
    add_class(kiosk, "すごく長いクラスの名前ですよ本当に")
    add_class(kiosk, "cup")
    page = pages.open(kiosk.url, size=PHONE)
    expect(page.get_by_test_id("class-card")).to_have_count(3)
    tables = page.evaluate(
        """async () => {
          const { TABLES } = await import("/static/i18n.js");
          return Object.fromEntries(Object.entries(TABLES).map(([k, v]) => [k, Object.keys(v)]));
        }"""
    )
    assert sorted(tables["en"]) == sorted(tables["ja"])  # every string in both languages
    small_targets = """() => [...document.querySelectorAll(
        'button, input:not([type=radio]):not([type=file]), a, label.method')]
      .filter((el) => el.getClientRects().length && !el.closest('dialog:not([open])'))
      .map((el) => [el, el.getBoundingClientRect()])
      .filter(([el, r]) => r.width < 47.5 || r.height < 47.5)
      .map(([el, r]) => `${el.id || el.className} ${Math.round(r.width)}x${Math.round(r.height)}`)
    """
    for language in ("en", "ja"):
        set_language(page, language)
        for width, height in LAYOUTS:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(100)
            scroll = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll[0] <= scroll[1], f"horizontal scroll at {width}x{height} ({language})"
            assert page.evaluate(small_targets) == [], f"small targets at {width}x{height}"
    page.set_viewport_size({"width": KIOSK[0], "height": KIOSK[1]})
    screenshots(page)


def test_frame_rate_and_time_to_first_frame(kiosk, pages):
    page = pages.open(kiosk.url, wait_for_frame=False)
    page.wait_for_function("() => window.teachable && window.teachable.stats.framesDrawn > 0")
    first = page.evaluate("window.teachable.stats.firstFrameMs")
    start = page.evaluate("[performance.now(), window.teachable.stats.framesDrawn]")
    page.wait_for_timeout(5000)
    end = page.evaluate("[performance.now(), window.teachable.stats.framesDrawn]")
    fps = (end[1] - start[1]) / ((end[0] - start[0]) / 1000)
    health = api_state(kiosk)["camera"]["status"]
    print(f"\nframes drawn per second: {fps:.1f}; first frame {first:.0f} ms after navigation")
    # generous bounds only: a shared 2-core machine must not make this flaky
    assert health == "online"
    assert fps > 2
    assert first < 10000


def test_a_phone_joins_with_the_qr_code_when_the_kiosk_has_a_lan_address(kiosk, pages):
    # the test server listens on loopback only (no LAN address): the page must hide the button
    page = pages.open(kiosk.url)
    with page.expect_response(lambda response: response.url.endswith("/api/join")) as join:
        page.reload()
    # the body is read by the page; a second read through the browser can find it gone
    assert join.value.ok
    assert requests.get(kiosk.url + "/api/join", timeout=10).json() == {"urls": []}
    page.wait_for_function("() => window.teachable.stats.framesDrawn > 0")
    expect(page.locator("#open-join")).to_be_hidden()

    url = "http://192.168.1.20:5000/"
    svg = io.BytesIO()
    segno.make(url).save(svg, kind="svg", scale=4)
    routes = {
        "**/api/join": lambda route: route.fulfill(json={"urls": [url]}),
        "**/api/join.svg*": lambda route: route.fulfill(
            body=svg.getvalue(), content_type="image/svg+xml"
        ),
    }
    page = pages.open(kiosk.url, routes=routes)
    page.locator("#open-join").click()
    dialog = page.locator("#join-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#join-url")).to_have_text(url)
    expect(dialog.locator("#join-qr")).to_have_attribute("alt", f"QR code of {url}")
    page.wait_for_function("() => document.querySelector('#join-qr').naturalWidth > 0")
    dialog.locator("button[value=close]").click()
    expect(dialog).to_be_hidden()


def test_no_accessibility_violations_in_either_language(kiosk, pages, digits_dir):
    axe_module = pytest.importorskip(
        "axe_playwright_python.sync_playwright", reason="pip install axe-playwright-python"
    )
    axe = axe_module.Axe()
    add_class(kiosk, "one", photos(digits_dir, 1, 8))
    add_class(kiosk, "five", photos(digits_dir, 5, 8))
    wcag = {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
    # the kiosk's own screen locks pinch zoom on purpose; a phone (?kiosk=0) must not
    screens = [
        (KIOSK, "", {"meta-viewport": {"enabled": False}}),
        (PHONE, "?kiosk=0", {}),
    ]
    for size, query, rules in screens:
        page = pages.open(kiosk.url + query, size=size)
        expect(page.get_by_test_id("confidence-bar")).to_have_count(2)
        for language in ("en", "ja"):
            set_language(page, language)
            results = axe.run(page, options={"runOnly": wcag, "rules": rules})
            assert results.violations_count == 0, results.generate_report()
            page.locator("#open-project").click()  # a dialog's contents too
            results = axe.run(page, "#project-dialog", {"runOnly": wcag, "rules": rules})
            assert results.violations_count == 0, results.generate_report()
            page.locator("#project-dialog button[value=close]").click()
