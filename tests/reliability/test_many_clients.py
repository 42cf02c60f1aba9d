"""Row 8: eight clients watch while one never reads; the fast ones keep their frames."""

import time

import pytest
from relhelp import (
    RawClient,
    Watcher,
    clients_drop_to,
    health,
    memory_kb,
    percentile,
    record,
    worker_pid,
)

pytestmark = pytest.mark.reliability

FAST = 8
SOLO_S = 5.0
WINDOW_S = 15.0


def test_eight_fast_clients_and_one_that_never_reads(server):
    pid = worker_pid(server)
    solo = Watcher(server.url)
    try:
        time.sleep(4)  # past the start-up frames
        s0 = time.monotonic()
        time.sleep(SOLO_S)
        s1 = time.monotonic()
        solo_fps = solo.rate(s0, s1)
    finally:
        solo.close()
    clients_drop_to(server, 0, timeout=10)
    before = memory_kb(pid)
    fast = [Watcher(server.url) for _ in range(FAST)]
    # completes the handshake, then never reads: the kernel's buffers fill, frames pile up
    slow = RawClient(server, read=False)
    try:
        stalled_at = time.monotonic()
        start = time.monotonic() + 1
        drop_s = None
        for _ in range(int((1 + WINDOW_S) / 0.5)):  # the window, watching /healthz meanwhile
            time.sleep(0.5)
            if drop_s is None and health(server)["clients"] <= FAST:
                drop_s = time.monotonic() - stalled_at
        end = time.monotonic()
        rates = [w.rate(start, end) for w in fast]
        gaps = [g for w in fast for g in w.gaps_ms(start, end)]
        latencies = [x for w in fast for x in w.latency_ms(start, end)]
        after = memory_kb(pid)
        connected = all(w.sio.connected for w in fast)
    finally:
        slow.close()
        for w in fast:
            w.close()
    ratios = [round(r / solo_fps, 3) for r in rates]
    record(
        "8 many clients, one slow",
        solo_fps=round(solo_fps, 1),
        fast_fps=[round(r, 1) for r in rates],
        fps_ratio=ratios,
        latency_ms_p95=percentile(latencies, 95),
        gap_ms_p50=percentile(gaps, 50),
        gap_ms_p95=percentile(gaps, 95),
        slow_dropped_after_s=round(drop_s, 1) if drop_s is not None else None,
        rss_rise_kb=after["VmRSS"] - before["VmRSS"],
        window_s=WINDOW_S,
    )
    assert connected
    assert drop_s is not None and drop_s <= 15
    assert after["VmRSS"] - before["VmRSS"] <= 15 * 1024
    assert percentile(latencies, 95) <= 250
    assert all(r >= 0.9 for r in ratios)
