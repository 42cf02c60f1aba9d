"""The fuzzer of the malformed-traffic row, in a process of its own (as on another device):
its threads then take no time from the test's watching clients.

Usage: ``python fuzz_client.py PORT FUZZERS PACKETS BUDGET_S``

Runs ``FUZZERS`` threads, each sending its share of ``PACKETS`` fuzzed Socket.IO packets over
raw WebSockets to ``127.0.0.1:PORT`` until sent or ``BUDGET_S`` is over, and prints one JSON
line: the figures of each thread.
"""

import json
import random
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relhelp import RawClient  # noqa: E402

BATCH = 25
DEEP = 10_000


EVENTS = [
    "add_class",
    "rename_class",
    "delete_class",
    "clear_class",
    "record_start",
    "record_stop",
    "undo",
    "delete_example",
    "set_method",
    "train",
    "wake",
    "frame",
    "reset",
    "connect",
    "disconnect",
    "no_such_event",
]
VALUES = [
    "1",
    "-1",
    "1e309",
    "null",
    "true",
    '"x"',
    "[]",
    "{}",
    '[{"a":[1]}]',
    '"\\u0000"',
    '"' + "a" * 5000 + '"',
    "9" * 400,
    '{"__proto__":1}',
    '{"class_id":[1]}',
    '{"name":{"$gt":""}}',
    '{"method":{}}',
    '{"example_id":"1"}',
    '{"pin":[]}',
]


def fuzz_packet(rng: random.Random):
    """One malformed (or oddly formed) message: str (text frame) or bytes (binary frame)."""
    kind = rng.randrange(10)
    if kind == 0:  # unknown or truncated Engine.IO / Socket.IO packet types
        return rng.choice(["", "4", "7", "9", "5", "6", "1", "48", "4x", "3probe", "2", "40/x,"])
    if kind == 1:  # invalid JSON
        return "42" + rng.choice(['["add_class",{', "[", '{"a":1}', '["add_class"', "]]", "\x7f"])
    if kind == 2:  # events with the wrong argument types
        return f'42["{rng.choice(EVENTS)}",{rng.choice(VALUES)}]'
    if kind == 3:  # wrong shapes of the event array
        return "42" + rng.choice(["[123]", "[null]", "[]", '[["x"]]', '[{"a":1}]', '"add_class"'])
    if kind == 4:  # acks and namespaces that do not exist
        return rng.choice(["43999[true]", "431[", '42/nope,["wake",{}]', "44{}", "41/x,"])
    if kind == 5:  # binary events with odd attachment headers
        return rng.choice(
            [
                '451-["frame",{"_placeholder":true,"num":7}]',
                '45-1-["frame"]',
                '450-["frame",{"_placeholder":true,"num":0}]',
                '45x-["frame"]',
            ]
        )
    if kind == 6:  # random bytes, binary frame
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if kind == 7:  # random printable text
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(1, 64)))
    if kind == 8 and rng.random() < 0.05:  # deep nesting (rare: each is 20 kB)
        return f'42["{rng.choice(EVENTS)}",' + "[" * DEEP + "]" * DEEP + "]"
    return f'42["{rng.choice(EVENTS)}",{{"x":' + "{" * 50 + "}" * 50 + "}]"


def fuzz(server, seed, start, packets, budget_s):
    """One fuzzing connection at a time: batches of packets, each followed by a probe that
    proves the server read the batch (or found the connection closed by it)."""
    rng = random.Random(20261128 + seed)
    sent = confirmed = connections = refused = 0
    client = None
    while sent < packets and time.monotonic() - start < budget_s:
        if client is None or client.closed_at is not None:
            if client is not None:
                client.close()
            try:
                client = RawClient(server)
                connections += 1
            except Exception:  # a refused handshake is fine; count it and go on
                refused += 1
                client = None
                time.sleep(0.05)
                continue
        batch = [fuzz_packet(rng) for _ in range(BATCH)]
        ok = [client.send(p) for p in batch]
        sent += sum(ok)
        if client.probe(timeout=0.5):
            confirmed += sum(ok)
        elif client.closed_at is not None:
            confirmed += 1  # the packet that made the server close it, at least
    if client is not None:
        client.close()
    return {"sent": sent, "confirmed": confirmed, "connections": connections, "refused": refused}


def main(port: int, fuzzers: int, packets: int, budget_s: float) -> None:
    server = SimpleNamespace(port=port)
    start, results = time.monotonic(), []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(fuzz(server, i, start, packets // fuzzers, budget_s))
        )
        for i in range(fuzzers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(budget_s + 20)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
