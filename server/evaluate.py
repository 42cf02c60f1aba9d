"""How well would my classes work? Accuracy of each learning method on a folder of photos.

    python -m server.evaluate DATA_DIR [--test-dir DIR | --test-fraction F]
        [--shots 1,5,10,20,all] [--repeats R] [--methods auto,imprinting,backprop,knn]
        [--seed S] [--flip] [--json]

``DATA_DIR`` (and ``--test-dir``) hold one folder of images per class. Every image is embedded
once; then, for each repeat, a stratified test split is drawn (unless ``--test-dir`` is given),
and for each shot count ``shots`` training images per class are drawn from the rest ("all":
every one). Each method learns from the same draw and is scored on the same test images.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from server import datasets
from server.learn import METHODS, make_learner
from server.offline import (
    ERRORS,
    Embedded,
    add_extractor_arguments,
    embed_folder,
    fail,
    open_extractor_from,
    stratified_split,
)

log = logging.getLogger(__name__)

DEFAULT_SHOTS = "1,5,10,20,all"


class Result(NamedTuple):
    method: str
    shots: object
    accuracy: float
    train_ms: float


def parse_shots(text: str) -> List[object]:
    shots: List[object] = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            shots.append("all")
        elif part.isdigit() and int(part) > 0:
            shots.append(int(part))
        else:
            raise argparse.ArgumentTypeError(
                f"--shots takes positive numbers or 'all', not {part!r}"
            )
    return shots


def parse_methods(text: str) -> List[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {', '.join(unknown) or '(none)'}: use {', '.join(METHODS)}"
        )
    return methods


def draw_shots(labels: np.ndarray, pool: np.ndarray, shots, rng: np.random.Generator):
    """Indices of ``shots`` examples per class from ``pool`` (all of them for "all")."""
    if shots == "all":
        return pool
    picked = []
    for c in np.unique(labels[pool]):
        members = pool[labels[pool] == c]
        picked.extend(rng.choice(members, min(shots, len(members)), replace=False))
    return np.array(picked)


def train_and_score(method: str, train: Embedded, idx, test_x, test_labels, options) -> Result:
    learner = make_learner(method, **options.get(method, {}))
    start = time.monotonic()
    for c in np.unique(train.labels[idx]):
        rows = idx[train.labels[idx] == c]
        learner.add(int(c), train.x[rows])
        if train.flipped is not None:
            learner.add(int(c), train.flipped[rows])
    learner.fit()
    train_ms = (time.monotonic() - start) * 1000.0
    return Result(method, None, learner.accuracy(test_x, test_labels), train_ms)


def evaluate(
    train: Embedded,
    test: Optional[Embedded],
    *,
    methods: Sequence[str],
    shots_list: Sequence[object],
    repeats: int,
    seed: int,
    test_fraction: float,
    options: Optional[Dict[str, dict]] = None,
) -> List[Result]:
    """Mean accuracy and median training time per (method, shots) over ``repeats`` draws."""
    options = options or {}
    scores: Dict[tuple, List[Result]] = {}
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        if test is None:
            pool, held_out = stratified_split(train.labels, test_fraction, rng)
            test_x, test_labels = train.x[held_out], train.labels[held_out]
        else:
            pool, test_x, test_labels = np.arange(len(train.labels)), test.x, test.labels
        for shots in shots_list:
            idx = draw_shots(train.labels, pool, shots, rng)
            for method in methods:
                result = train_and_score(method, train, idx, test_x, test_labels, options)
                scores.setdefault((method, shots), []).append(result)
    return [
        Result(
            method,
            shots,
            float(np.mean([r.accuracy for r in runs])),
            float(statistics.median(r.train_ms for r in runs)),
        )
        for (method, shots), runs in scores.items()
    ]


def format_table(results: List[Result], methods: Sequence[str], shots_list) -> str:
    by = {(r.method, r.shots): r for r in results}
    header = "method".ljust(12) + "".join(f"{str(s) + ' shots':>14}" for s in shots_list)
    lines = [header]
    for m in methods:
        cells = "".join(
            f"{by[(m, s)].accuracy:>8.3f} {by[(m, s)].train_ms:>4.0f}ms" for s in shots_list
        )
        lines.append(m.ljust(12) + cells)
    return "\n".join(lines) + "\n(accuracy, median training time)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m server.evaluate",
        description="Accuracy of each learning method on a folder of photos, one folder per class.",
    )
    p.add_argument("data_dir", type=Path, help="one sub-folder of images per class")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--test-dir", type=Path, help="test images, class folders matched by name")
    split.add_argument(
        "--test-fraction",
        type=float,
        default=0.25,
        help="share of each class held out for testing (default 0.25)",
    )
    p.add_argument(
        "--shots",
        type=parse_shots,
        default=parse_shots(DEFAULT_SHOTS),
        help=f"training images per class, comma-separated (default {DEFAULT_SHOTS})",
    )
    p.add_argument("--repeats", type=int, default=5, help="random draws to average (default 5)")
    p.add_argument(
        "--methods",
        type=parse_methods,
        default=list(METHODS),
        help=f"comma-separated, from {','.join(METHODS)} (default all)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--knn-k", type=int, default=3, help="neighbours for knn (default 3)")
    p.add_argument(
        "--flip",
        action="store_true",
        help="also train on mirrored images (twice the embedding time)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_extractor_arguments(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if not 0.0 < args.test_fraction < 1.0:
        return fail("--test-fraction must be between 0 and 1")
    if args.repeats < 1:
        return fail("--repeats must be at least 1")
    try:
        folder = datasets.scan(args.data_dir)
        test_folder = (
            datasets.scan(args.test_dir, classes=folder.classes) if args.test_dir else None
        )
        extractor = open_extractor_from(args)
        train = embed_folder(extractor, folder, label="embedding", flip=args.flip)
        test = embed_folder(extractor, test_folder, label="embedding test") if test_folder else None
    except ERRORS as e:
        return fail(str(e))
    results = evaluate(
        train,
        test,
        methods=args.methods,
        shots_list=args.shots,
        repeats=args.repeats,
        seed=args.seed,
        test_fraction=args.test_fraction,
        options={"knn": {"k": args.knn_k}},
    )
    embedding = {
        "backend": extractor.backend,
        "ms_per_image": round(extractor.latency_ms, 2),
        "model": Path(extractor.model_path).name,
        "runtime": extractor.runtime,
        "images": int(len(train.labels) + (len(test.labels) if test else 0)),
        "classes": folder.classes,
    }
    if args.json:
        print(json.dumps(_json_report(args, embedding, results)))
    else:
        print(
            f"{embedding['images']} images, {len(folder.classes)} classes; extractor on "
            f"{extractor.backend} ({extractor.runtime}), {embedding['ms_per_image']} ms/image"
        )
        print(format_table(results, args.methods, args.shots))
    return 0


def _json_report(args: argparse.Namespace, embedding: dict, results: List[Result]) -> dict:
    return {
        "embedding": embedding,
        "settings": {
            "repeats": args.repeats,
            "seed": args.seed,
            "flip": args.flip,
            "test": str(args.test_dir) if args.test_dir else args.test_fraction,
        },
        "results": [
            {
                "method": r.method,
                "shots": r.shots,
                "accuracy": round(r.accuracy, 4),
                "train_ms": round(r.train_ms, 2),
            }
            for r in results
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
