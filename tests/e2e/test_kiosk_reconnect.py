"""The page reconnects by itself when the server restarts, and shows the same state again."""

import pytest
from kiosk_page import add_class, api_state, save_layouts

import liveserver
from liveserver import Server

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
