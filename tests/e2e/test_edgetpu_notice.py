"""The page tells why the Edge TPU is not used: a stand-in libedgetpu that segfaults.

``tests/sees_edgetpu.py`` makes Linux "see" an Edge TPU, so ``--tpu auto`` probes the
stand-in (tests/standin.py), which crashes in the probe's child; the kiosk serves on the CPU
and its page shows the probe's diagnosis. No real Edge TPU is involved.
"""

import sys
from pathlib import Path

from kiosk_page import set_language
from playwright.sync_api import expect

import standin
from liveserver import Server

ROOT = Path(__file__).resolve().parents[2]


def test_the_probe_diagnosis_is_on_the_page(tmp_path, camera_dir, shared_dir, pages):
    lib = standin.build("segv", tmp_path)
    server = Server(
        tmp_path / "data",
        f"folder:{camera_dir}",
        shared_dir,
        "--tpu",
        "auto",
        "--edgetpu-lib",
        str(lib),
        command=[sys.executable, str(ROOT / "tests" / "sees_edgetpu.py")],
    )
    try:
        page = pages.open(server.url)
        notice = page.locator('#notices .notice[data-code="edgetpu_failed"]')
        expect(notice).to_contain_text("The Edge TPU could not be used (crashed)")
        expect(notice).to_contain_text("crashed with SIGSEGV while creating the Edge TPU delegate")
        expect(notice).to_contain_text("install-edgetpu.sh")
        set_language(page, "ja")
        expect(notice).to_have_text(
            "Edge TPU を使えませんでした。カメラは CPU で動いています（少し遅くなります）。"
        )
    finally:
        server.stop()
