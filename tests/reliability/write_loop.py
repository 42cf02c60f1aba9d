"""The child of the kill -9 row: the kiosk's real store and pipeline, writing until killed.

Usage: ``python write_loop.py DATA_DIR SEED``

It imports first and then waits for one line ``go`` on stdin, so the test can start the next
child while it checks the last one. Then it opens ``DATA_DIR`` as the server does (``Store``,
``Pipeline`` rebuilding its learner from the examples, a fake camera and a fast fake
extractor) and does a random mix of the service's writes until it is killed. It prints one
flushed JSON line per event:

* ``{"ready": STATE}``: what it found on opening;
* ``{"do": OP}``: an operation is about to start;
* ``{"ack": OP, "state": STATE}``: the operation returned (the server acknowledged it), and
  ``STATE`` is everything acknowledged so far.

``STATE`` is ``{"classes": {id: name}, "examples": {class id: [example ids]}, "method": m}``
(ids as text, example ids ascending). It is the child's own model of what each operation did,
and the child checks it against the live store after every operation: a difference is printed
as ``{"bug": ...}`` and exits with 3.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from server.pipeline import Pipeline, ServiceError  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store import Store  # noqa: E402

from fakes import FakeCamera  # noqa: E402

MAX_OPS = 2000  # bounds: the parent kills the child within seconds, this is a safety net
MAX_SECONDS = 120.0
MAX_TOTAL_EXAMPLES = 400  # above it the mix turns to deleting, so the database stays small
MAX_CLASSES = 8
WAIT_S = 30.0


class PixelExtractor:
    """A stand-in for the model: the image's 32x32 grey thumbnail, centred, as (1024,)."""

    backend = "cpu"
    model_path = __file__  # a stable file, so that exported projects name their extractor
    dim = 1024
    latency_ms = 0.0

    def embed(self, image, flip: bool = False) -> np.ndarray:
        gray = np.asarray(image, dtype=np.float32).mean(axis=2)
        rows = np.linspace(0, gray.shape[0] - 1, 32).astype(int)
        cols = np.linspace(0, gray.shape[1] - 1, 32).astype(int)
        v = gray[np.ix_(rows, cols)].reshape(-1) / 255.0
        return (v - v.mean()).astype(np.float32)


def picture(class_id: int, rng: np.random.Generator) -> np.ndarray:
    """A 120x160 frame: a class's blocky pattern plus noise (bright and sharp enough to keep)."""
    base = np.random.default_rng(class_id).integers(40, 216, (12, 16, 3))
    image = np.kron(base, np.ones((10, 10, 1))) + rng.integers(-20, 21, (120, 160, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def observed(store: Store, default_method: str) -> dict:
    """The store's classes, example ids and method, in the shape of ``STATE``."""
    rows = store.classes()
    return {
        "classes": {str(r.id): r.name for r in rows},
        "examples": {str(r.id): sorted(store.recent_examples(r.id, 100_000)) for r in rows},
        "method": store.get_setting("method", default_method),
    }


def summary(state: dict) -> dict:
    """What a project import brings, ids aside: names and counts in order, and the method."""
    order = list(state["classes"])  # display order: the order the project exports
    return {
        "names": [state["classes"][c] for c in order],
        "counts": [len(state["examples"][c]) for c in order],
        "method": state["method"],
    }


def say(**event) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} took more than {WAIT_S} s")
        time.sleep(0.005)


class Writer:
    """Chooses and runs one random operation at a time, keeping the model ``state``."""

    def __init__(self, pipe: Pipeline, store: Store, camera: FakeCamera, state: dict, seed: int):
        self.pipe, self.store, self.camera, self.state = pipe, store, camera, state
        self.seed = seed
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.names = 0
        self.seen = 0  # the last published frame
        self.saved: Optional[tuple] = None  # (bundle bytes, what importing it gives)
        self.importing = b""  # the bundle of the import op chosen last

    # -- choosing ---------------------------------------------------------------------------
    def choose(self) -> dict:
        classes = list(self.state["classes"])
        total = sum(len(ids) for ids in self.state["examples"].values())
        crowded = total > MAX_TOTAL_EXAMPLES
        room = [c for c in classes if len(self.state["examples"][c]) < 190]
        # Whole classes go rarely until the database is crowded, so it grows over the rounds.
        weights = {
            "add_class": 3 if len(classes) < 2 else (1 if len(classes) < MAX_CLASSES else 0),
            "rename_class": 1 if classes else 0,
            "record": 3 if room and not crowded else 0,
            "add_images": 3 if room and not crowded else 0,
            "delete_example": 2 if total else 0,
            "delete_class": (3 if crowded else 0.3) if classes else 0,
            "clear_class": (3 if crowded else 0.3) if classes else 0,
            "undo": 1 if self.store.last_burst() is not None else 0,
            "train": 0.7 if total else 0,
            "import_project": 0.3 if self.saved else 0,
            "reset": 0.1 if classes else 0,
        }
        kind = self.rng.choices(list(weights), list(weights.values()))[0]
        op: dict = {"op": kind}
        if kind in ("rename_class", "delete_class", "clear_class"):
            op["class_id"] = int(self.rng.choice(classes))
        if kind == "add_class":
            op["name"] = self._name("c")
        elif kind == "rename_class":
            op["name"] = self._name("r")
        elif kind in ("record", "add_images"):
            op["class_id"] = int(self.rng.choice(room))
            op["n"] = self.rng.randint(1, 8) if kind == "record" else self.rng.randint(1, 6)
        elif kind == "delete_example":
            ids = [i for ids in self.state["examples"].values() for i in ids]
            op["example_id"] = self.rng.choice(ids)
        elif kind == "undo":
            op["ids"] = self.store.burst_examples(self.store.last_burst())
        elif kind == "train":
            op["method"] = self.rng.choice(("auto", "auto", "auto", "backprop"))
        elif kind == "import_project":
            self.importing = self.saved[0]
            op.update(self.saved[1])
        if total and self.rng.random() < 0.1:  # a project to import later: what is here now
            self.saved = (self.pipe.export_project(), summary(self.state))
        return op

    def _name(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.seed}.{self.names}"

    # -- running ----------------------------------------------------------------------------
    def run(self, op: dict) -> None:
        """Runs ``op`` through the pipeline's service API and applies it to the model."""
        getattr(self, "_" + op["op"])(op)

    def _add_class(self, op: dict) -> None:
        row = self.pipe.add_class(op["name"])
        op["id"] = row["id"]
        self.state["classes"][str(row["id"])] = op["name"]
        self.state["examples"][str(row["id"])] = []

    def _rename_class(self, op: dict) -> None:
        self.pipe.rename_class(op["class_id"], op["name"])
        self.state["classes"][str(op["class_id"])] = op["name"]

    def _delete_class(self, op: dict) -> None:
        self.pipe.delete_class(op["class_id"])
        del self.state["classes"][str(op["class_id"])]
        del self.state["examples"][str(op["class_id"])]

    def _clear_class(self, op: dict) -> None:
        self.pipe.clear_class(op["class_id"])
        self.state["examples"][str(op["class_id"])] = []

    def _add_images(self, op: dict) -> None:
        images = [Image.fromarray(picture(op["class_id"], self.np_rng)) for _ in range(op["n"])]
        before = set(self._ids(op["class_id"]))
        assert self.pipe.add_images(op["class_id"], images) == op["n"]
        self._added(op, before)

    def _record(self, op: dict) -> None:
        before = set(self._ids(op["class_id"]))
        self.pipe.record_start("writer", op["class_id"])
        for _ in range(op["n"]):
            index = self.camera.show(picture(op["class_id"], self.np_rng))
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                self.seen, published = self.pipe.frames.get(after=self.seen, timeout=1.0)
                if published is not None and published.index >= index:
                    break
            time.sleep(0.011)  # the record interval is 10 ms
        self.pipe.record_stop("writer")  # returns after the worker stored every frame
        self._added(op, before)

    def _added(self, op: dict, before: set) -> None:
        new = sorted(set(self._ids(op["class_id"])) - before)
        op["ids"] = new
        self.state["examples"][str(op["class_id"])] = sorted(
            self.state["examples"][str(op["class_id"])] + new
        )

    def _delete_example(self, op: dict) -> None:
        self.pipe.delete_example(op["example_id"])
        self._forget([op["example_id"]])

    def _undo(self, op: dict) -> None:
        assert self.pipe.undo() == len(op["ids"])
        self._forget(op["ids"])

    def _train(self, op: dict) -> None:
        for _ in range(100):  # an automatic training may start between the wait and the call
            wait_until(lambda: not self.pipe.training_running, "a training")
            try:
                self.pipe.train(op["method"])
                break
            except ServiceError as e:
                if e.code == "nothing_to_train":
                    break
                if e.code != "busy":
                    raise
        self.state["method"] = op["method"]  # saved before training starts
        wait_until(lambda: not self.pipe.training_running, "the training")

    def _import_project(self, op: dict) -> None:
        self.pipe.import_project(self.importing)  # chosen with op's summary
        self.state.clear()
        self.state.update(observed(self.store, op["method"]))
        assert summary(self.state) == {k: op[k] for k in ("names", "counts", "method")}

    def _reset(self, op: dict) -> None:
        self.pipe.reset()
        self.state["classes"], self.state["examples"] = {}, {}

    def _forget(self, ids) -> None:
        gone = set(ids)
        for class_id, have in self.state["examples"].items():
            self.state["examples"][class_id] = [i for i in have if i not in gone]

    def _ids(self, class_id: int) -> list:
        return self.store.recent_examples(class_id, 100_000)


def main(argv) -> int:
    data_dir, seed = Path(argv[1]), int(argv[2])
    logging.basicConfig(level=logging.WARNING)
    if sys.stdin.readline().strip() != "go":
        return 0
    settings = Settings(data_dir=data_dir, tpu="off", record_interval_ms=10, smoothing=0.0)
    store = Store(settings.db_path)
    camera = FakeCamera()
    pipe = Pipeline(
        settings,
        camera=camera,
        extractor=PixelExtractor(),
        store=store,
        emit=lambda *args, **kwargs: None,
    )
    pipe.start()
    state = observed(store, settings.method)
    say(ready=state)
    writer = Writer(pipe, store, camera, state, seed)
    deadline = time.monotonic() + MAX_SECONDS
    try:
        for _ in range(MAX_OPS):
            if time.monotonic() > deadline:
                break
            op = writer.choose()
            say(do=op)
            writer.run(op)
            say(ack=op, state=state)
            live = observed(store, settings.method)
            if live != state:
                say(bug={"op": op, "model": state, "store": live})
                return 3
    finally:
        pipe.stop()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
