"""Row 7: fuzzed Socket.IO packets over raw WebSockets never crash the server nor stall others.

The fuzzer (``fuzz_client.py``) runs in a process of its own, as it would on another device.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from relhelp import (
    RawClient,
    Watcher,
    frames_processed,
    handler_buckets,
    handler_p99,
    health,
    record,
    worker_pid,
)

pytestmark = pytest.mark.reliability

PACKETS = 10_000
BUDGET_S = 60.0  # new sockets are limited to 10 a second per address: ~400 take ~40 s
FUZZERS = 4
WINDOW_S = 5.0
FUZZ_CLIENT = Path(__file__).resolve().parent / "fuzz_client.py"


def test_dropped_clients_that_stay_open_delay_nobody(server):
    # a client the server drops (here: for an undecodable packet) but that never closes its
    # end; gunicorn 27 lingered up to 2 s for each on the thread that accepts connections
    held = []
    try:
        for _ in range(5):
            client = RawClient(server, read=False)
            client.send("")  # not an Engine.IO packet: the server closes the connection
            held.append(client)
        waits = []
        for _ in range(5):
            start = time.monotonic()
            assert health(server)["status"] == "ok"
            waits.append(time.monotonic() - start)
            time.sleep(0.1)
    finally:
        for client in held:
            client.close()
    record("7 malformed traffic", healthz_behind_open_dropped_clients_max_s=round(max(waits), 3))
    assert max(waits) <= 1.0


@pytest.fixture(scope="module")
def fuzzed(server):
    """Fuzzes once while three clients watch; the figures, for the tests below."""
    pid = worker_pid(server)
    watchers = [Watcher(server.url) for _ in range(3)]
    try:
        time.sleep(4)  # past the start-up frames
        b0 = time.monotonic()
        time.sleep(WINDOW_S)
        b1 = time.monotonic()
        solo = [w.rate(b0, b1) for w in watchers]

        handled_before = handler_buckets(server)
        processed_before = frames_processed(server)
        start = time.monotonic()
        fuzzer = subprocess.run(
            [sys.executable, str(FUZZ_CLIENT), str(server.port), str(FUZZERS), str(PACKETS)]
            + [str(BUDGET_S)],
            capture_output=True,
            text=True,
            timeout=BUDGET_S + 60,
        )
        assert fuzzer.returncode == 0, fuzzer.stderr[-3000:]
        results = json.loads(fuzzer.stdout.strip().splitlines()[-1])
        fuzz_s = time.monotonic() - start
        end = max(time.monotonic(), start + WINDOW_S)
        time.sleep(max(0.0, end - time.monotonic()))
        during = [w.rate(start, end) for w in watchers]
        processed_fps = (frames_processed(server) - processed_before) / (time.monotonic() - start)
        still_connected = all(w.sio.connected for w in watchers)
        handled, p99, within_20ms, slow = handler_p99(handled_before, handler_buckets(server))
    finally:
        for w in watchers:
            w.close()
    fuzzers = [r for r in results if r["role"] == "fuzzer"]
    arguers = [r for r in results if r["role"] == "arguer"]
    sent = sum(r["sent"] for r in fuzzers)  # the 10,000, besides the arguers' events
    confirmed = sum(r["confirmed"] for r in results)
    connections = sum(r["connections"] for r in fuzzers)
    refused = sum(r["refused"] for r in fuzzers)
    log = Path(server.log.name).read_text(errors="replace")
    ratios = [round(d / s, 3) if s else None for d, s in zip(during, solo)]
    record(
        "7 malformed traffic",
        packets_sent=sent,
        packets_read_by_server=confirmed,
        fuzzers=FUZZERS,
        events_that_decode_sent=sum(r["sent"] for r in arguers),
        their_connections=[r["connections"] for r in arguers],
        fuzz_seconds=round(fuzz_s, 1),
        connections=connections,
        refused_handshakes=refused,
        worker_same=worker_pid(server) == pid,
        tracebacks_in_log=log.count("Traceback"),
        solo_fps=[round(r, 1) for r in solo],
        fuzz_fps=[round(r, 1) for r in during],
        fps_ratio=ratios,
        processed_fps=round(processed_fps, 1),
        watchers_connected=still_connected,
        events_handled=handled,
        handler_p99_s_at_most=p99,
        handled_within_20ms=within_20ms,
        handled_over_20ms_by_event=slow,
    )
    return {
        "sent": sent,
        "tracebacks": log.count("Traceback"),
        "fuzz_s": fuzz_s,
        "pid": pid,
        "ratios": ratios,
        "still_connected": still_connected,
        "handled": handled,
        "within_20ms": within_20ms,
        "arguer_connections": [r["connections"] for r in arguers],
    }


def test_fuzzed_packets_crash_nothing(server, fuzzed):
    # every packet sent; most end their connection (the server closes it), so the figure of
    # packets the server confirmed reading before that is reported too
    assert fuzzed["sent"] >= PACKETS
    assert fuzzed["tracebacks"] == 0  # one log line per dropped client, never a traceback
    assert worker_pid(server) == fuzzed["pid"] and server.proc.poll() is None
    assert health(server)["status"] == "ok"


def test_fuzzed_events_are_handled_within_20_ms(fuzzed):
    # ``/metrics``' handler histogram: 99 % of the events that reached a handler finished in
    # at most 20 ms (its bucket bounds: 1, 2.5, 5, 10, 20, 50 ms ...). Most fuzzed packets do
    # not decode and close their connection before any handler; the events that do decode
    # (wrong argument types, deep nesting) come ~15 a second on two connections of their own,
    # so the percentile has samples enough (with 40, it would be the slowest one)
    assert fuzzed["handled"] >= 500, fuzzed
    assert fuzzed["within_20ms"] >= 0.99, fuzzed
    assert fuzzed["still_connected"]
    # an event that decodes gets its error answer; its connection stays open
    assert fuzzed["arguer_connections"] == [1, 1], fuzzed


def test_fuzzed_packets_leave_the_others_their_frames(fuzzed):
    assert all(r is not None and r >= 0.9 for r in fuzzed["ratios"])
