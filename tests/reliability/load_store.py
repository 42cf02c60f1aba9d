"""The checker of the kill -9 row: reloads a kiosk database in a fresh process, as start-up does.

Usage: ``python load_store.py DB_PATH``

It imports first and then waits for one line ``go`` on stdin (the test starts it early, while
the writer still runs). Then it opens ``DB_PATH`` with the real ``Store``, runs SQLite's
integrity and foreign-key checks, rebuilds the saved method's learner from every class and
example (what ``Pipeline`` does at start) and predicts one stored example with it. It prints one
JSON line::

    {"integrity": "ok", "state": STATE, "learner": {"classes": C, "examples": N}}

with ``STATE`` as in ``write_loop.py``, or ``{"error": "..."}`` (exit 1) when loading failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server.learn import make_learner  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store import Store  # noqa: E402


def load(path: Path) -> dict:
    with Store(path) as store:
        integrity = store.integrity_check()
        rows = store.classes()
        method = store.get_setting("method", Settings.method)
        ids, class_ids, x = store.examples()
        state = {
            "classes": {str(r.id): r.name for r in rows},
            "examples": {str(r.id): sorted(store.recent_examples(r.id, 100_000)) for r in rows},
            "method": method,
        }
    learner = make_learner(method)
    for row in rows:
        learner.add_class(row.id)
        mask = class_ids == row.id
        if mask.any():
            learner.add(row.id, x[mask], ids[mask])
    if len(ids):
        learner.predict(x[:1])
    counts = learner.counts()
    return {
        "integrity": integrity,
        "state": state,
        "learner": {"classes": len(counts), "examples": int(sum(counts.values()))},
    }


def main(argv) -> int:
    if sys.stdin.readline().strip() != "go":
        return 0
    try:
        result = load(Path(argv[1]))
    except Exception as e:  # any failure to load is the finding, reported to the test
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
