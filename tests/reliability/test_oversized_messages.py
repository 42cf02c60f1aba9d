"""Row 2: oversized Socket.IO messages close the connection without costing the server memory."""

import time
import zlib

import pytest
from relhelp import DeflateSocket, RawClient, health, memory_kb, record, worker_pid

pytestmark = pytest.mark.reliability

MB = 1024 * 1024


def _attack(server, row, send, wait=10.0):
    pid = worker_pid(server)
    before = memory_kb(pid)
    client = RawClient(server)
    time.sleep(1)  # frames flowing and acknowledged: the server has no other reason to drop it
    start = time.monotonic()
    send(client)
    closed = client.wait_closed(wait)
    after = memory_kb(pid)
    figures = {
        "closed": closed,
        "closed_after_s": round(client.closed_at - start, 2) if closed else None,
        "rss_rise_kb": after["VmRSS"] - before["VmRSS"],
        "peak_rise_kb": after["VmHWM"] - before["VmHWM"],
    }
    client.close()
    record(row, **figures)
    assert health(server)["status"] == "ok" and worker_pid(server) == pid
    return figures


def test_a_2_mb_frame_event_closes_the_connection(server):
    big = bytes(2 * MB)

    def send(client):
        client.send('451-["frame",{"_placeholder":true,"num":0}]')
        client.send(big)

    figures = _attack(server, "2a 2 MB frame", send)
    assert figures["closed"]
    assert figures["peak_rise_kb"] <= 32 * 1024


def test_an_event_claiming_a_billion_attachments_closes_the_connection(server):
    def send(client):
        client.send('451000000000-["frame",{"_placeholder":true,"num":0}]')
        for _ in range(64):  # attachments keep coming, as the header promised, each < 1 MB
            if not client.send(bytes(1_000_000)):
                break

    figures = _attack(server, "2b 10^9 attachments", send, wait=15)
    assert figures["peak_rise_kb"] <= 32 * 1024
    assert figures["closed"]


def test_a_compressed_frame_that_inflates_to_200_mb_closes_the_connection(server):
    """Either the server refuses permessage-deflate, or a small frame that inflates enormously
    is refused without the memory."""
    pid = worker_pid(server)
    before = memory_kb(pid)
    client = DeflateSocket(server)
    try:
        if not client.deflate:  # the fix: no compression, so no bomb can be sent
            record("2c 200 MB deflate bomb", negotiated=False)
            return
        client.send_frame(b"40")
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        inflated = 200 * MB
        chunk = b" " * MB
        compressed = b"".join(
            [packer.compress(b"4")] + [packer.compress(chunk) for _ in range(200)]
        )
        compressed += packer.flush(zlib.Z_SYNC_FLUSH)
        compressed = compressed[:-4]  # RFC 7692: the sync flush's empty block is implied
        start = time.monotonic()
        client.send_frame(compressed, opcode=1, compressed=True)
        closed = client.closed_within(15)
        elapsed = time.monotonic() - start
    finally:
        client.close()
    time.sleep(0.5)
    after = memory_kb(pid)
    alive = server.proc.poll() is None and pid in server.pids()
    figures = {
        "negotiated": True,
        "compressed_bytes": len(compressed),
        "inflated_bytes": inflated + 1,
        "closed": closed,
        "closed_after_s": round(elapsed, 2),
        "rss_rise_kb": after["VmRSS"] - before["VmRSS"] if alive else None,
        "peak_rise_kb": after["VmHWM"] - before["VmHWM"] if alive else None,
        "worker_alive": alive,
    }
    record("2c 200 MB deflate bomb", **figures)
    assert alive and health(server)["status"] == "ok"
    assert closed
    assert figures["peak_rise_kb"] <= 32 * 1024
