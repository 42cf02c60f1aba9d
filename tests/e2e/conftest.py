"""End-to-end fixtures: Debian's Chromium driven by Playwright against a real ``python -m server``.

Skipped with a reason when Playwright or ``/usr/bin/chromium`` is missing. Screenshots go to
``$TEACHABLE_ARTIFACTS`` (default ``/tmp/teachable-artifacts``), never into the repository.
"""

import os
from pathlib import Path

import pytest
from kiosk_page import FRAMES_PER_PHASE, Pages, save_layouts, start_empty

from liveserver import Server

CHROMIUM = Path(os.environ.get("TEACHABLE_CHROMIUM") or "/usr/bin/chromium")  # Debian's
ARGS = [
    "--no-sandbox",  # tests only: root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # the browser-camera test: a generated test pattern instead of a webcam, no permission prompt
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture(scope="session")
def sync_api():
    api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed: pip install 'playwright>=1.40'"
    )
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return api


@pytest.fixture(scope="session")
def browser(sync_api):
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    root = Path(os.environ.get("TEACHABLE_ARTIFACTS") or "/tmp/teachable-artifacts") / "e2e"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def camera_dir(tmp_path_factory, digits_dir) -> Path:
    """Sub-folders ``a/`` (hands showing 1) and ``b/`` (hands showing 5), played in turn."""
    root = tmp_path_factory.mktemp("camera")
    for sub, digit in (("a", "1"), ("b", "5")):
        (root / sub).mkdir()
        photos = sorted((digits_dir / digit).iterdir())[:FRAMES_PER_PHASE]
        for photo in photos:
            (root / sub / photo.name).symlink_to(photo)
    return root


@pytest.fixture(scope="module")
def kiosk_server(tmp_path_factory, camera_dir, shared_dir):
    """One server for a test module; each test starts from an empty kiosk (``kiosk``)."""
    server = Server(tmp_path_factory.mktemp("kiosk"), f"folder:{camera_dir}", shared_dir)
    yield server
    server.stop()


@pytest.fixture
def kiosk(kiosk_server):
    start_empty(kiosk_server)
    return kiosk_server


@pytest.fixture
def pages(browser):
    opened = Pages(browser)
    yield opened
    opened.close()
    assert not opened.errors, f"script errors or dialogs in the page: {opened.errors}"


@pytest.fixture
def screenshots(artifacts, request):
    """``screenshots(page)`` saves the four layouts in English and Japanese for this test."""
    return lambda page: save_layouts(page, artifacts / request.node.name)
