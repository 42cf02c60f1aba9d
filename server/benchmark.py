"""Speed figures of the learning core on this machine (medians, measured side by side).

    python -m server.benchmark [--rounds N] [--json] [--tpu auto|on|off] [--edgetpu-lib PATH]
                               [--image PATH]

With the Edge TPU, the extractor is opened only after ``server.hw.probe`` passed in a child
process, so a libedgetpu that crashes is reported in one line, not by a signal.

* extractor: the runtime's bare ``invoke()`` against the extractor's whole ``embed()``
  (preprocessing, input copy, invoke, dequantisation), interleaved so both see the same load;
* imprinting one example into a learner that already holds 10 classes x 100 examples;
* Auto's fine-tune on 10 classes x 150 examples.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from server import models
from server.datasets import load_rgb
from server.hw import runtime as rt
from server.hw.extractor import open_extractor, preprocess
from server.learn import make_learner


def _ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def bench_extractor(extractor, image, rounds: int) -> dict:
    model_input = preprocess(image, extractor.size)
    interpreter = extractor.interpreter
    index = interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(index, model_input[np.newaxis])
    for _ in range(5):  # warm-up
        extractor.embed(image)
    bare, whole = [], []
    for _ in range(rounds):
        interpreter.set_tensor(index, model_input[np.newaxis])
        bare.append(_ms(interpreter.invoke))
        whole.append(_ms(lambda: extractor.embed(image)))
    bare_ms, whole_ms = statistics.median(bare), statistics.median(whole)
    return {
        "backend": extractor.backend,
        "runtime": extractor.runtime,
        "image": f"{image.size[0]}x{image.size[1]}",
        "invoke_ms": round(bare_ms, 3),
        "embed_ms": round(whole_ms, 3),
        "overhead_pct": round(100.0 * (whole_ms / bare_ms - 1.0), 1),
    }


def _clusters(classes: int, per_class: int, dim: int, rng) -> tuple:
    centres = rng.random((classes, dim), dtype=np.float32) * 2
    x = np.repeat(centres, per_class, axis=0) + rng.random(
        (classes * per_class, dim), dtype=np.float32
    )
    return x, np.repeat(np.arange(classes), per_class)


def bench_learners(rounds: int, dim: int = 1024) -> dict:
    rng = np.random.default_rng(0)
    x, y = _clusters(10, 100, dim, rng)
    imprinting = make_learner("imprinting")
    for c in range(10):
        imprinting.add(c, x[y == c])
    one = x[0]
    imprint_ms = statistics.median(_ms(lambda: imprinting.add(0, one)) for _ in range(rounds * 10))

    x, y = _clusters(10, 150, dim, rng)
    auto = make_learner("auto")
    for c in range(10):
        auto.add(c, x[y == c])
    auto_add_ms = statistics.median(_ms(lambda: auto.add(0, one)) for _ in range(rounds * 10))
    auto.remove(auto.example_ids(0)[150:])
    fine_tune_ms = statistics.median(_ms(auto.fit) for _ in range(max(3, rounds // 10)))
    return {
        "imprint_one_ms": round(imprint_ms, 4),
        "auto_add_one_ms": round(auto_add_ms, 4),
        "auto_fine_tune_10x150_ms": round(fine_tune_ms, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m server.benchmark", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rounds", type=int, default=200, help="timed rounds (default 200)")
    p.add_argument("--image", type=Path, help="an image to embed (default: a 640x480 test frame)")
    p.add_argument("--tpu", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--edgetpu-lib", type=Path, help="the libedgetpu file to use")
    p.add_argument("--data-dir", type=Path, help="where models are cached")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        extractor = open_extractor(args.tpu, data_dir=args.data_dir, edgetpu_lib=args.edgetpu_lib)
    except (models.ModelError, rt.EdgeTpuUnavailable, rt.NoRuntime) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.image:
        image = load_rgb(args.image)
        if image is None:
            print(f"error: {args.image} is not a readable image", file=sys.stderr)
            return 2
    else:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8))
    report = {"extractor": bench_extractor(extractor, image, args.rounds)}
    report["learners"] = bench_learners(args.rounds)
    if args.json:
        print(json.dumps(report))
    else:
        for section, figures in report.items():
            print(section)
            for key, value in figures.items():
                print(f"  {key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
