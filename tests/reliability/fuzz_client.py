"""The fuzzer of the malformed-traffic row, in a process of its own (as on another device):
its threads then take no time from the test's watching clients.

Usage: ``python fuzz_client.py PORT FUZZERS PACKETS BUDGET_S``

Runs ``FUZZERS`` threads, each sending its share of ``PACKETS`` fuzzed Socket.IO packets over
raw WebSockets to ``127.0.0.1:PORT`` until sent or ``BUDGET_S`` is over. Most of those packets
do not decode, and the server closes the connection at the first such packet, so few of them
reach an event handler. Meanwhile ``ARGUERS`` more threads each keep one connection and send
only events that decode, with arguments of the wrong type or nested deep, paced at
``ARGUE_RATE`` a second (under the server's per-connection limit): those are handled, and give
the handler-time figure enough samples for a 99th percentile.

Prints one JSON line: the figures of each thread.
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
DEEP = 10_000  # too deep to decode: the server closes the connection
NESTED = 200  # deep, but decodes: reaches a handler
ARGUERS = 2
ARGUE_RATE = 15.0  # events a second on each arguing connection (the server allows 20)


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
    "9" * 400,  # engineio refuses integers of over 100 digits: the connection is closed
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
    if kind == 8 and rng.random() < 0.05:  # nesting too deep to decode (rare: each is 20 kB)
        return f'42["{rng.choice(EVENTS)}",' + "[" * DEEP + "]" * DEEP + "]"
    return argument_packet(rng)


RESERVED = ("connect", "disconnect")  # no browser sends these: the server closes the connection
APP_EVENTS = [e for e in EVENTS if e not in RESERVED]
DECODABLE_VALUES = [v for v in VALUES if len(v) < 100 or not v.isdigit()]


def argument_packet(rng: random.Random, ack=None, events=EVENTS, values=VALUES) -> str:
    """An event with arguments of the wrong type or nested deep (decodable with ``APP_EVENTS``
    and ``DECODABLE_VALUES``)."""
    ack = "" if ack is None else str(ack)
    if rng.random() < 0.5:
        value = rng.choice(values)
    else:  # a field nested NESTED deep, in place of the number or string it should be
        field = rng.choice(["class_id", "name", "method", "example_id", "pin", "x"])
        value = f'{{"{field}":' + '{"a":' * NESTED + "1" + "}" * NESTED + "}"
    return f'42{ack}["{rng.choice(events)}",{value}]'


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
    return {
        "role": "fuzzer",
        "sent": sent,
        "confirmed": confirmed,
        "connections": connections,
        "refused": refused,
    }


def argue(server, seed, done: threading.Event, budget_s):
    """One connection sending events that decode, paced, until ``done`` or the budget is over;
    a new connection if the server closes it (it should not)."""
    rng = random.Random(20261129 + seed)
    start = time.monotonic()
    sent = closed = 0
    client = RawClient(server)  # before the fuzzers use up this address's connection budget
    while not done.is_set() and time.monotonic() - start < budget_s:
        if client.closed_at is not None:
            closed += 1
            client.close()
            try:
                client = RawClient(server)
            except Exception:  # refused while the fuzzers use the budget: try again
                time.sleep(0.2)
                continue
        sent += client.send(argument_packet(rng, sent, APP_EVENTS, DECODABLE_VALUES))
        done.wait(1.0 / ARGUE_RATE)
    client.close()
    return {"role": "arguer", "sent": sent, "confirmed": sent, "connections": 1 + closed}


def main(port: int, fuzzers: int, packets: int, budget_s: float) -> None:
    server = SimpleNamespace(port=port)
    start, results, done = time.monotonic(), [], threading.Event()
    arguers = [
        threading.Thread(target=lambda i=i: results.append(argue(server, i, done, budget_s)))
        for i in range(ARGUERS)
    ]
    for t in arguers:
        t.start()
    time.sleep(0.5)  # their connections first
    fuzzers_ = [
        threading.Thread(
            target=lambda i=i: results.append(fuzz(server, i, start, packets // fuzzers, budget_s))
        )
        for i in range(fuzzers)
    ]
    for t in fuzzers_:
        t.start()
    for t in fuzzers_:
        t.join(budget_s + 20)
    done.set()
    for t in arguers:
        t.join(10)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
