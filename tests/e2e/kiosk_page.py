"""Helpers for driving the kiosk page: opening pages, teaching, reading it, screenshots."""

import time

import requests
import socketio

from liveserver import eventually

LAYOUTS = [(1024, 600), (1280, 800), (1920, 1080), (390, 844)]
PHONE = (390, 844)
KIOSK = (1280, 800)
FRAMES_PER_PHASE = 60  # the folder camera plays a/ then b/, 2 s each at 30 fps


class Pages:
    """Opens pages in fresh browser contexts and records uncaught script errors and dialogs."""

    def __init__(self, browser):
        self.browser = browser
        self.contexts = []
        self.errors = []

    def open(self, url, size=KIOSK, locale="en-US", wait_for_frame=True, routes=None):
        """A page at ``url``; ``routes`` maps URL patterns to Playwright route handlers."""
        width, height = size
        phone = width < 600
        context = self.browser.new_context(
            viewport={"width": width, "height": height},
            locale=locale,
            has_touch=phone,
            is_mobile=phone,
            device_scale_factor=1,
            accept_downloads=True,
        )
        self.contexts.append(context)
        for pattern, handler in (routes or {}).items():
            context.route(pattern, handler)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("dialog", lambda dialog: self.errors.append(f"dialog: {dialog.message}"))
        page.goto(url)
        if wait_for_frame:
            page.wait_for_function(
                "() => window.teachable && window.teachable.stats.framesDrawn > 0"
            )
        return page

    def _console(self, message):
        # the page carries a strict Content-Security-Policy: nothing of its own may break it
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(message.text)

    def close(self):
        for context in self.contexts:
            context.close()


def save_layouts(page, folder, switch="#lang", full_page=False):
    """Screenshots of the four layouts in English and Japanese, into ``folder``.

    ``switch`` is the language button to press; phones (and every size with ``full_page``)
    are taken whole.
    """
    folder.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    for language in ("en", "ja"):
        set_language(page, language, switch)
        for width, height in LAYOUTS:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(120)  # layout, the bars' transition, a fresh frame
            page.screenshot(
                path=str(folder / f"{language}-{width}x{height}.png"),
                full_page=full_page or (width, height) == PHONE,
                animations="disabled",
            )
    set_language(page, "en", switch)
    page.set_viewport_size(original)


def set_language(page, language, switch="#lang"):
    if page.evaluate("document.documentElement.lang") != language:
        page.locator(switch).click()
    page.wait_for_function("(lang) => document.documentElement.lang === lang", arg=language)


def api_state(server):
    return requests.get(server.url + "/api/state", timeout=10).json()


def start_empty(server):
    """Resets the kiosk to no classes and the default method."""
    assert requests.post(server.url + "/api/reset", timeout=10).status_code == 204
    client = socketio.Client(reconnection=False)
    client.connect(server.url, transports=["websocket"], wait_timeout=10)
    try:
        assert client.call("set_method", {"method": "auto"}, timeout=15)["ok"]
    finally:
        client.disconnect()


def add_class(server, name, photos=()):
    """A class made through the REST API (quicker than the page), with example photos."""
    created = requests.post(server.url + "/api/classes", json={"name": name}, timeout=10)
    assert created.status_code == 201, created.text
    class_id = created.json()["id"]
    if photos:
        files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        added = requests.post(
            f"{server.url}/api/classes/{class_id}/examples", files=files, timeout=60
        )
        assert added.ok, added.text
    return class_id


def wait_until(predicate, timeout=20.0, what="condition"):
    eventually(predicate, timeout=timeout, what=what)


def example_count(card) -> int:
    return int(card.get_by_test_id("example-count").text_content())


def phase_position(page) -> int:
    """Where the frame on screen is in the camera's loop: a/ is 0..59, b/ is 60..119."""
    index = page.evaluate("window.teachable.stats.lastFrameIndex")
    return index % (2 * FRAMES_PER_PHASE)


def hold_record_during(page, card, phase, seconds=0.9):
    """Holds the card's record button (mouse down/up) while the camera plays ``phase``.

    Waits until the page shows the first frames of that sub-folder, then holds for ``seconds``
    and lets go; each phase lasts 2 s, so the recording stays inside it.
    """
    start = 0 if phase == "a" else FRAMES_PER_PHASE
    button = card.get_by_test_id("record")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    deadline = time.monotonic() + 15
    while not start + 3 <= phase_position(page) <= start + 24:
        if time.monotonic() > deadline:
            raise AssertionError(f"the camera never reached phase {phase}")
        page.wait_for_timeout(10)
    page.mouse.down()
    page.wait_for_timeout(int(seconds * 1000))
    page.mouse.up()


SAMPLE_JS = """
async ([seconds, names]) => {
  const samples = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const bars = {};
    for (const bar of document.querySelectorAll('[data-testid=confidence-bar]')) {
      const name = bar.querySelector('.bar-name').textContent;
      bars[name] = Number(bar.querySelector('[role=meter]').getAttribute('aria-valuenow'));
    }
    samples.push({top: document.querySelector('[data-testid=top-label]').textContent, bars});
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return samples;
}
"""


def sample_predictions(page, seconds):
    """What the page shows every 50 ms: the top label and each bar's percentage by name."""
    return page.evaluate(SAMPLE_JS, [seconds, []])


SMALL_TARGETS_JS = """() => [...document.querySelectorAll(
    'button, a, select, input:not([type=radio]):not([type=checkbox]):not([type=file]),'
    + ' label.method, label.op-check')]
  .filter((el) => el.getClientRects().length && !el.closest('dialog:not([open])'))
  .filter((el) => !el.closest('[inert]'))
  .map((el) => [el, el.getBoundingClientRect()])
  .filter(([el, r]) => r.width < 47.5 || r.height < 47.5)
  .map(([el, r]) => `${el.id || el.className} ${Math.round(r.width)}x${Math.round(r.height)}`)
"""


def layout_problems(page):
    """A horizontal scroll bar or touch targets under 48 px on the page as it is now."""
    problems = []
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if width > inner:
        problems.append(f"horizontal scroll ({width} > {inner})")
    problems += [f"small target {t}" for t in page.evaluate(SMALL_TARGETS_JS)]
    return problems


def check_layouts(page, folder, switch="#lang", full_page=None):
    """Every layout in both languages: no horizontal scroll, no small targets; screenshots.

    ``full_page``: True takes every screenshot whole, False none, None (default) the phone's.
    """
    folder.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    problems = []
    for language in ("en", "ja"):
        set_language(page, language, switch)
        for width, height in LAYOUTS:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(120)
            problems += [f"{width}x{height} {language}: {p}" for p in layout_problems(page)]
            page.screenshot(
                path=str(folder / f"{language}-{width}x{height}.png"),
                full_page=(width, height) == PHONE if full_page is None else full_page,
                animations="disabled",
            )
    set_language(page, "en", switch)
    page.set_viewport_size(original)
    assert not problems, problems
