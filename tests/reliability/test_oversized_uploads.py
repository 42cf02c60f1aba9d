"""Row 3: oversized uploads are refused with 413, quickly, without buffering them."""

import io
import time

import pytest
import requests
from relhelp import health, memory_kb, record, worker_pid

pytestmark = pytest.mark.reliability

MB = 1024 * 1024


def _timed(server, name, request):
    pid = worker_pid(server)
    before = memory_kb(pid)
    start = time.monotonic()
    try:
        response = request()
        status = response.status_code
    except requests.ConnectionError as e:  # the server may answer and close while we still send
        status = f"connection closed: {type(e).__name__}"
    elapsed = time.monotonic() - start
    time.sleep(0.3)
    after = memory_kb(pid)
    figures = {
        "status": status,
        "seconds": round(elapsed, 2),
        "rss_rise_kb": after["VmRSS"] - before["VmRSS"],
        "peak_rise_kb": after["VmHWM"] - before["VmHWM"],
    }
    record(f"3 {name}", **figures)
    assert health(server)["status"] == "ok"
    return figures


def _check(figures):
    assert figures["status"] == 413
    assert figures["seconds"] <= 1.0
    assert figures["rss_rise_kb"] <= 10 * 1024


def test_a_9_mb_project_import_is_413(server):
    body = io.BytesIO(bytes(9 * MB))
    figures = _timed(
        server,
        "9 MB import",
        lambda: requests.post(
            server.url + "/api/project",
            files={"file": ("project.zip", body, "application/zip")},
            timeout=30,
        ),
    )
    _check(figures)


def test_a_50_mb_chunked_body_is_413(server):
    def chunks():
        for _ in range(50):
            yield bytes(MB)

    figures = _timed(
        server,
        "50 MB chunked",
        lambda: requests.post(
            server.url + "/api/project",
            data=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=x"},
            timeout=30,
        ),
    )
    _check(figures)


def test_a_10000_part_form_is_413(server):
    class_id = requests.post(server.url + "/api/classes", json={"name": "parts"}, timeout=10)
    class_id = class_id.json()["id"]
    files = [("image", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(10_000)]
    figures = _timed(
        server,
        "10,000-part form",
        lambda: requests.post(
            f"{server.url}/api/classes/{class_id}/examples", files=files, timeout=30
        ),
    )
    _check(figures)
    assert requests.get(server.url + "/api/state", timeout=10).json()["classes"][0]["examples"] == 0
