"""The page reconnects by itself when the server restarts (or is killed and started again by
systemd), and shows the same state again."""

import os
import signal
import time
from pathlib import Path

import pytest
from kiosk_page import add_class, api_state, save_layouts

import liveserver
from liveserver import Server, eventually

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
expect = sync_api.expect


@pytest.fixture
def same_port(monkeypatch):
    """Every ``Server`` of this test listens on one port, as a restarted kiosk does."""
    port = liveserver.free_port()
    monkeypatch.setattr(liveserver, "free_port", lambda: port)
    return port


def test_the_page_reconnects_after_a_restart_and_shows_the_same_state(
    tmp_path, camera_dir, shared_dir, digits_dir, same_port, pages, artifacts, request
):
    camera = f"folder:{camera_dir}"
    first = Server(tmp_path, camera, shared_dir)
    second = None
    try:
        add_class(first, "kept", sorted((digits_dir / "1").iterdir())[:5])
        page = pages.open(first.url)
        card = page.get_by_test_id("class-card")
        expect(card.get_by_test_id("class-name")).to_have_value("kept")
        expect(card.get_by_test_id("example-count")).to_have_text("5")

        first.stop()
        banner = page.locator("#banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Reconnecting")
        expect(page.get_by_test_id("status")).to_contain_text("Offline")
        folder = artifacts / request.node.name
        folder.mkdir(exist_ok=True)
        page.screenshot(path=str(folder / "reconnecting.png"))

        second = Server(tmp_path, camera, shared_dir)
        assert second.url == first.url
        expect(banner).to_be_hidden(timeout=20000)
        expect(card.get_by_test_id("class-name")).to_have_value("kept")
        expect(card.get_by_test_id("example-count")).to_have_text("5")
        drawn = page.evaluate("window.teachable.stats.framesDrawn")
        page.wait_for_function("(n) => window.teachable.stats.framesDrawn > n", arg=drawn + 3)

        # and it talks to the new server: a class added on the page lands there
        page.get_by_test_id("add-class").click()
        expect(page.get_by_test_id("class-card")).to_have_count(2)
        assert len(api_state(second)["classes"]) == 2
        save_layouts(page, folder)
    finally:
        first.stop()
        if second is not None:
            second.stop()


RESTART_SEC = 2.0  # deploy/systemd/teachable.service: Restart=always, RestartSec=2

# resolves with performance.now() once the page is connected again and has drawn a frame from
# the new server with the given class names on its cards (null after 60 s)
NEW_FRAME_JS = """
async ([names, drawnBefore]) => {
  const end = performance.now() + 60000;
  while (performance.now() < end) {
    const shown = [...document.querySelectorAll('[data-testid=class-name]')].map((i) => i.value);
    if (window.teachable.connected && window.teachable.stats.framesDrawn > drawnBefore
        && JSON.stringify(shown) === JSON.stringify(names)) return performance.now();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return null;
}
"""


def alive(pid) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has died already


def test_after_kill_9_the_page_shows_the_live_view_again_with_the_same_classes(
    tmp_path, camera_dir, shared_dir, digits_dir, pages
):
    """Deploy requirement: live view and the same classes again within 10 s of a kill -9."""
    camera = f"folder:{camera_dir}"
    port = liveserver.free_port()
    first = Server(tmp_path, camera, shared_dir, port=port)
    second = None
    try:
        add_class(first, "one", sorted((digits_dir / "1").iterdir())[:3])
        add_class(first, "five", sorted((digits_dir / "5").iterdir())[:3])
        page = pages.open(first.url)
        names = page.get_by_test_id("class-name")
        expect(names).to_have_count(2)
        processes = first.pids()
        assert len(processes) >= 2, "a gunicorn master and its worker"

        killed_at = page.evaluate("performance.now()")
        killed = time.monotonic()
        os.kill(first.proc.pid, signal.SIGKILL)  # the master; its worker dies with it
        first.proc.wait(10)
        eventually(
            lambda: not any(alive(pid) for pid in processes),
            timeout=10,
            what="the worker dies with its master",
        )
        page.wait_for_function("() => !window.teachable.connected")
        drawn_before = page.evaluate("window.teachable.stats.framesDrawn")

        time.sleep(max(0.0, RESTART_SEC - (time.monotonic() - killed)))
        second = Server(tmp_path, camera, shared_dir, port=port)
        shown_at = page.evaluate(NEW_FRAME_JS, [["one", "five"], drawn_before])
        assert shown_at is not None, "no new frame with the same classes within 60 s"
        recovery = (shown_at - killed_at) / 1000
        print(f"\nkill -9 to the live view with the same classes again: {recovery:.1f} s")
        cards = page.get_by_test_id("class-card")
        expect(cards.get_by_test_id("example-count")).to_have_text(["3", "3"])
        expect(page.locator("#banner")).to_be_hidden()
        # the requirement is 10 s; a loaded 2-core machine gets more room here (a benchmark
        # measures, a test must not flake)
        assert recovery < 30
    finally:
        first.stop()
        if second is not None:
            second.stop()
