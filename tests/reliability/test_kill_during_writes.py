"""Row "kill -9 during writes": 200 SIGKILLs of a writing kiosk lose nothing it acknowledged.

A child (``write_loop.py``) runs the real ``Store`` and ``Pipeline`` on one data directory and
records, adds photos, renames, deletes, clears, undoes, trains, imports a project it exported
earlier and starts over, at random; a random 0.05-1.5 s
after it is ready it gets SIGKILL. A fresh process (``load_store.py``) then reloads the
database as start-up does and rebuilds the learner. The directory is reused, so the state
accumulates and later kills hit a bigger database; the next child must find what the checker
found. Every child and checker is started two rounds early and waits for ``go``, so its
imports overlap the rounds before.

Checked every round: the load succeeds, ``integrity_check`` is ``ok``, and the reloaded classes,
names, example ids and method equal everything acknowledged so far (the last ``ack`` line's
state), give or take the one operation in flight, which must be there wholly or not at all (a
recording stores each frame on its own, so a prefix of its frames may be there).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from relhelp import record
from write_loop import summary

pytestmark = pytest.mark.reliability

HERE = Path(__file__).resolve().parent
ROUNDS = 200
SEED = 9
KILL_AFTER_S = (0.05, 1.5)
STEP_TIMEOUT_S = 60.0  # start-up, reload: each takes well under a second
DEADLINE_S = 25 * 60  # a hang guard: runs took 3.6 min at load average 6, 11 at 10
AHEAD = 2  # writers and loaders started early, waiting for "go"
EMPTY = {"classes": {}, "examples": {}, "method": "auto"}


class Writer:
    """A started ``write_loop.py`` that waits for ``go``; its output goes to files."""

    def __init__(self, data_dir: Path, seed: int, folder: Path):
        self.seed = seed
        self.out = folder / f"writer-{seed}.out"
        self.err = folder / f"writer-{seed}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "write_loop.py"), str(data_dir), str(seed)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
            )

    def go(self) -> None:
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()

    def events(self) -> List[dict]:
        """Every complete line printed so far (a line cut by the kill was never printed)."""
        text = self.out.read_bytes().decode("utf-8", "replace")
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while time.monotonic() < deadline:
            with open(self.out, "rb") as f:
                line = f.readline()
            if line.endswith(b"\n"):
                event = json.loads(line)
                assert "ready" in event, event
                return event["ready"]
            assert self.proc.poll() is None, f"writer {self.seed} died: {self.stderr()}"
            time.sleep(0.005)
        raise AssertionError(f"writer {self.seed} not ready within {STEP_TIMEOUT_S} s")

    def kill(self) -> None:
        alive = self.proc.poll() is None
        if alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(STEP_TIMEOUT_S)
        assert alive, f"writer {self.seed} ended by itself ({self.proc.returncode}): " + (
            self.stderr() or json.dumps(self.events()[-1:])[:2000]
        )

    def remove_files(self) -> None:
        self.out.unlink()
        self.err.unlink()

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")[-3000:]


class Loader:
    """A started ``load_store.py`` that waits for ``go``."""

    def __init__(self, db_path: Path):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "load_store.py"), str(db_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def load(self) -> dict:
        out, err = self.proc.communicate(b"go\n", timeout=STEP_TIMEOUT_S)
        lines = out.decode().splitlines()
        if not lines:
            return {"error": f"no answer (exit {self.proc.returncode}): {err.decode()[-2000:]}"}
        return json.loads(lines[-1])


def facts(state: dict) -> set:
    """A state as a set of facts: (class, id, name), (example, id, class id), (method, m)."""
    out = {("class", int(c), name) for c, name in state["classes"].items()}
    out |= {("example", i, int(c)) for c, ids in state["examples"].items() for i in ids}
    return out | {("method", state["method"])}


def compare(acked: dict, op: Optional[dict], got: dict) -> Tuple[set, List[str], bool]:
    """Checks the reloaded state ``got`` against the acknowledged one.

    Args:
      acked: the state after the last acknowledged operation.
      op: the operation in flight when the kill came (begun, never acknowledged), or None.
      got: what the fresh process loaded.

    Returns:
      ``(missing, problems, applied)``: the acknowledged facts absent from ``got`` that ``op``
      does not explain, the other differences it does not explain, and whether ``op`` was
      found done.
    """
    lost, gained = facts(acked) - facts(got), facts(got) - facts(acked)
    if not lost and not gained:
        return set(), [], False
    kind = op["op"] if op else None
    examples = {f for f in facts(acked) if f[0] == "example"}
    may_lose, may_gain, whole = set(), set(), True
    if kind == "add_class":
        may_gain = {f for f in gained if f[0] == "class" and f[2] == op["name"]}
        whole = len(may_gain) == 1
    elif kind == "rename_class":
        cid = op["class_id"]
        may_lose = {("class", cid, acked["classes"].get(str(cid)))}
        may_gain = {("class", cid, op["name"])}
        whole = lost == may_lose and gained == may_gain
    elif kind in ("delete_class", "clear_class"):
        cid = op["class_id"]
        may_lose = {f for f in examples if f[2] == cid}
        if kind == "delete_class":
            may_lose.add(("class", cid, acked["classes"].get(str(cid))))
        whole = lost == may_lose
    elif kind in ("delete_example", "undo"):
        ids = set(op["ids"]) if kind == "undo" else {op["example_id"]}
        may_lose = {f for f in examples if f[1] in ids}
        whole = lost == may_lose
    elif kind in ("add_images", "record"):
        cid, newest = op["class_id"], max((f[1] for f in examples), default=0)
        may_gain = {f for f in gained if f[0] == "example" and f[2] == cid and f[1] > newest}
        # photos are added in one transaction; a recording stores frame by frame
        whole = len(may_gain) == op["n"] if kind == "add_images" else len(may_gain) <= op["n"]
    elif kind == "train":
        may_lose, may_gain = {("method", acked["method"])}, {("method", op["method"])}
        whole = lost == may_lose and gained == may_gain
    elif kind in ("import_project", "reset"):  # all of the project, or nothing
        may_lose, may_gain = facts(acked), gained
        if kind == "reset":
            whole = not got["classes"] and got["method"] == acked["method"]
        else:
            whole = summary(got) == {k: op[k] for k in ("names", "counts", "method")}
    problems = []
    if gained - may_gain:
        problems.append(f"never acknowledged: {sorted(gained - may_gain)[:10]}")
    if not whole:
        problems.append(f"{kind} in flight is there only in part: lost {lost}, gained {gained}")
    return lost - may_lose, problems, True


def test_kill_9_during_writes_loses_nothing_acknowledged(tmp_path):
    rng = random.Random(SEED)
    data_dir = tmp_path / "data"
    db_path = data_dir / "teachable.sqlite3"
    started = time.monotonic()
    figures = dict(rounds=0, loads_ok=0, integrity_ok=0, acknowledged_ops=0)
    figures.update(acknowledged_facts_checked=0, missing=0, unexplained=0)
    figures.update(killed_in_flight=0, in_flight_found_done=0, most_examples=0, largest_db_kb=0)
    killed_during: collections.Counter = collections.Counter()
    waits: dict = {"ready": [], "load": []}  # seconds from go to ready, from kill to loaded
    failures: List[str] = []
    expected = EMPTY
    live: list = []  # every process started and not yet reaped

    def start(kind, *args):
        live.append(kind(*args))
        return live[-1]

    seeds = iter(range(SEED * 1000, SEED * 1000 + ROUNDS))
    try:
        writers = collections.deque(
            start(Writer, data_dir, next(seeds), tmp_path) for _ in range(AHEAD)
        )
        loaders = collections.deque(start(Loader, db_path) for _ in range(AHEAD))
        for n in range(ROUNDS):
            if time.monotonic() - started > DEADLINE_S:
                break
            writer, loader = writers.popleft(), loaders.popleft()
            began = time.monotonic()
            writer.go()
            if n + AHEAD < ROUNDS:
                writers.append(start(Writer, data_dir, next(seeds), tmp_path))
                loaders.append(start(Loader, db_path))
            ready = writer.wait_ready()
            waits["ready"].append(time.monotonic() - began)
            if ready != expected:
                failures.append(f"round {n}: the writer found {ready}, not {expected}")
            time.sleep(rng.uniform(*KILL_AFTER_S))
            sizes = [p.stat().st_size for p in data_dir.glob("teachable.sqlite3*")]
            writer.kill()
            live.remove(writer)
            killed = time.monotonic()
            loaded = loader.load()
            live.remove(loader)
            waits["load"].append(time.monotonic() - killed)
            figures["rounds"] += 1
            if "error" in loaded:
                failures.append(f"round {n}: loading failed: {loaded['error']}")
                break
            figures["loads_ok"] += 1
            if loaded["integrity"] == "ok":
                figures["integrity_ok"] += 1
            else:
                failures.append(f"round {n}: integrity_check: {loaded['integrity']}")
            got = loaded["state"]
            total = sum(len(ids) for ids in got["examples"].values())
            if loaded["learner"] != {"classes": len(got["classes"]), "examples": total}:
                failures.append(f"round {n}: learner {loaded['learner']} for {total} examples")

            events = writer.events()
            acks = [e for e in events if "ack" in e]
            acked = acks[-1]["state"] if acks else ready
            in_flight = events[-1]["do"] if "do" in events[-1] else None
            missing, problems, applied = compare(acked, in_flight, got)
            if missing:
                problems.append(f"acknowledged but missing: {sorted(missing)[:10]}")
            figures["acknowledged_ops"] += len(acks)
            figures["acknowledged_facts_checked"] += len(facts(acked))
            figures["missing"] += len(missing)
            figures["unexplained"] += len(problems) - bool(missing)
            figures["killed_in_flight"] += in_flight is not None
            killed_during[in_flight["op"] if in_flight else "between operations"] += 1
            figures["in_flight_found_done"] += applied
            figures["most_examples"] = max(figures["most_examples"], total)
            figures["largest_db_kb"] = max(figures["largest_db_kb"], sum(sizes) // 1024)
            where = f"round {n} (writer seed {writer.seed}, in flight {in_flight})"
            failures += [f"{where}: {p}" for p in problems]
            expected = got
            writer.remove_files()
    finally:
        for process in live:
            process.proc.kill()
            process.proc.communicate(timeout=STEP_TIMEOUT_S)  # reaps it, closes its pipes
    figures["killed_during"] = dict(killed_during.most_common())
    for what, seconds in waits.items():
        figures[f"{what}_s_median"] = round(statistics.median(seconds), 2) if seconds else None
    figures["wall_s"] = round(time.monotonic() - started, 1)
    figures["load_average_1min_at_end"] = round(os.getloadavg()[0], 1)
    record("kill -9 during writes", **figures)
    assert failures == [], "\n".join(failures[:20])
    assert figures["rounds"] == ROUNDS, f"only {figures['rounds']} rounds in {DEADLINE_S} s"
    assert figures["loads_ok"] == figures["integrity_ok"] == ROUNDS
