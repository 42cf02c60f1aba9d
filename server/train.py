"""Train a classifier offline from a folder of photos and export it, like Coral's
``backprop_last_layer.py``.

    python -m server.train DATA_DIR --out DIR [--method auto|imprinting|backprop|knn]
        [--target cpu|edgetpu] [--test-fraction 0.2] [--seed 0] [--no-thumbnails] [--json]
        [--tpu auto|on|off] [--model PATH] [--data-dir DIR] [--mirror DIR]

``DATA_DIR`` holds one folder of images per class. Every image is embedded once; a stratified
share of each class (``--test-fraction``, 0 for none) is held out, the learner is trained on
the rest, and DIR receives:

* ``model.tflite``: the extractor's CPU build with the learned layer appended (``server.export``);
* ``model_edgetpu.tflite`` (``--target edgetpu``): the same layer on the Edge TPU build;
* ``labels.txt``: one ``index name`` a line, in the models' output order;
* ``project.zip``: the training examples as a kiosk project (``POST /api/project``).

It then prints the learner's accuracy on the held-out images and the exported model's, run by
the TFLite interpreter on the same photos (the Edge TPU build when the extractor runs on an
Edge TPU, the CPU build otherwise), and checks that ``project.zip`` imports into a scratch
database. With ``--json`` stdout is one JSON object with these figures and the timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import List, NamedTuple, Optional

import numpy as np

from server import bundle, datasets, export, models
from server.evaluate import add_extractor_arguments, stratified_split
from server.hw import runtime as rt
from server.hw.extractor import Extractor, open_extractor, preprocess
from server.learn import METHODS, make_learner
from server.pipeline import thumbnail_jpeg
from server.progress import ProgressBar
from server.settings import Settings
from server.store import PALETTE, Store

log = logging.getLogger(__name__)


class Embedded(NamedTuple):
    """NxD embeddings, N class indices, N image paths and N thumbnails (None each when off)."""

    x: np.ndarray
    labels: np.ndarray
    paths: List[Path]
    thumbnails: List[Optional[bytes]]


def embed_folder(extractor: Extractor, folder: datasets.ImageFolder, thumbnails: bool) -> Embedded:
    """Embeds every readable image of ``folder``, with a progress bar on stderr."""
    xs, labels, paths, thumbs = [], [], [], []
    with ProgressBar(len(folder), "embedding") as bar:
        for index, path, image in datasets.iter_images(folder):
            xs.append(extractor.embed(image))
            labels.append(index)
            paths.append(path)
            thumbs.append(thumbnail_jpeg(image) if thumbnails else None)
            bar.update()
        bar.update(len(folder) - bar.done)
    if not xs:
        raise datasets.DatasetError(f"no readable image in {folder.root}")
    return Embedded(np.stack(xs), np.array(labels), paths, thumbs)


def train(method: str, x: np.ndarray, labels: np.ndarray, classes: int):
    """A learner of ``method`` taught every row of ``x`` and trained, with a progress bar."""
    learner = make_learner(method, x.shape[1])
    for c in range(classes):
        learner.add_class(c)
        if np.any(labels == c):
            learner.add(c, x[labels == c])
    job = learner.training_job()
    if job is not None:
        with ProgressBar(job.iterations, f"training {method}") as bar:
            head = job.run(lambda i, loss, accuracy: bar.update(i - bar.done))
        learner.apply(head)
    return learner


def run_model(path: Path, interpreter, paths: List[Path]) -> np.ndarray:
    """NxC probabilities of an exported model on the images at ``paths``."""
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    _, height, width, _ = inp["shape"]
    probs = []
    with ProgressBar(len(paths), f"running {path.name}") as bar:
        for p in paths:
            image = datasets.load_rgb(p)
            interpreter.set_tensor(inp["index"], preprocess(image, (width, height))[np.newaxis])
            interpreter.invoke()
            probs.append(interpreter.get_tensor(out["index"]).reshape(-1).copy())
            bar.update()
    return np.stack(probs)


def _check_import(data: bytes, running: bundle.ExtractorId, method: str) -> float:
    """Imports a bundle into a scratch database as the kiosk does; returns milliseconds."""
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(Path(scratch) / "check.sqlite3")
        try:
            start = time.perf_counter()
            project = bundle.read_bundle(
                data, running=running, limits=bundle.Limits(max_examples=1_000_000)
            )
            store.replace_all(project.store_classes())
            learner = make_learner(method)
            ids, class_ids, x = store.examples()
            for row in store.classes():
                mask = class_ids == row.id
                learner.add_class(row.id)
                if mask.any():
                    learner.add(row.id, x[mask], ids[mask])
            return (time.perf_counter() - start) * 1000.0
        finally:
            store.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m server.train",
        description="Train a classifier from a folder of photos (one sub-folder per class) and "
        "export it as a TFLite model, labels.txt and a kiosk project.",
    )
    p.add_argument("data_dir", type=Path, help="one sub-folder of images per class")
    p.add_argument("--out", type=Path, required=True, help="folder to write the results into")
    p.add_argument("--method", choices=list(METHODS), default="auto", help="(default auto)")
    p.add_argument(
        "--target",
        choices=export.TARGETS,
        default="cpu",
        help="cpu (default), or edgetpu: also write model_edgetpu.tflite",
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share of each class held out to measure accuracy (default 0.2; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="for the held-out split (default 0)")
    p.add_argument("--no-thumbnails", action="store_true", help="keep no thumbnails in project.zip")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_extractor_arguments(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if not 0.0 <= args.test_fraction < 1.0:
        return _fail("--test-fraction must be at least 0 and below 1")
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out} exists and is not a folder")
    where = {"data_dir": args.store_dir, "mirror": args.mirror}
    try:
        folder = datasets.scan(args.data_dir)
        cpu_base = models.locate(models.EXTRACTOR_CPU, path=args.model, **where)
        tpu_base = None
        if args.target == "edgetpu":
            tpu_base = models.locate(models.EXTRACTOR_EDGETPU, **where)
        extractor = open_extractor(args.tpu, model_path=args.model, **where)
        data = embed_folder(extractor, folder, not args.no_thumbnails)
    except (datasets.DatasetError, models.ModelError, rt.EdgeTpuUnavailable, rt.NoRuntime) as e:
        return _fail(str(e))
    running = bundle.identify(extractor.model_path, extractor.dim)
    labels = data.labels
    if args.test_fraction > 0:
        train_idx, test_idx = stratified_split(
            labels, args.test_fraction, np.random.default_rng(args.seed)
        )
    else:
        train_idx, test_idx = np.arange(len(labels)), np.zeros(0, np.int64)
    start = time.perf_counter()
    learner = train(args.method, data.x[train_idx], labels[train_idx], len(folder.classes))
    train_ms = (time.perf_counter() - start) * 1000.0
    names = dict(enumerate(folder.classes))

    try:
        args.out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        exported = export.export(learner, names, cpu_base.read_bytes(), models.EXTRACTOR_CPU.name)
        export_ms = (time.perf_counter() - start) * 1000.0
        files = {"model": args.out / "model.tflite", "labels": args.out / "labels.txt"}
        files["model"].write_bytes(exported.tflite)
        files["labels"].write_text(exported.labels, encoding="utf-8")
        if tpu_base is not None:
            tpu_model = export.build_model(
                tpu_base.read_bytes(), exported.head, exported.names, models.EXTRACTOR_EDGETPU.name
            )
            files["model_edgetpu"] = args.out / "model_edgetpu.tflite"
            files["model_edgetpu"].write_bytes(tpu_model)
        project = bundle.Project(
            [
                bundle.ClassData(
                    name,
                    PALETTE[c % len(PALETTE)],
                    data.x[train_idx][labels[train_idx] == c],
                    [data.thumbnails[i] for i in train_idx if labels[i] == c],
                )
                for c, name in enumerate(folder.classes)
            ],
            args.method,
            running,
        )
        start = time.perf_counter()
        zipped = bundle.write_bundle(project)
        bundle_ms = (time.perf_counter() - start) * 1000.0
        files["project"] = args.out / "project.zip"
        files["project"].write_bytes(zipped)
    except (export.ExportError, OSError) as e:
        return _fail(str(e))
    import_ms = _check_import(zipped, running, args.method)

    accuracy = {"learner": None, "exported": None, "agreement": None, "max_prob_diff": None}
    evaluated = None
    if len(test_idx):
        test_x, test_y = data.x[test_idx], labels[test_idx]
        pred = learner.predict(test_x)
        accuracy["learner"] = round(float(np.mean(pred.top == test_y)), 4)
        runtime = rt.load_runtime()
        evaluated = files["model"]
        if tpu_base is not None and extractor.backend == "edgetpu":
            evaluated = files["model_edgetpu"]
            interpreter = rt.make_edgetpu_interpreter(str(evaluated), runtime)
        else:
            interpreter = rt.make_cpu_interpreter(str(evaluated), runtime)
        probs = run_model(evaluated, interpreter, [data.paths[i] for i in test_idx])
        columns = [learner.classes.index(c) for c in exported.head.class_ids]
        top = np.array(exported.head.class_ids)[np.argmax(probs, axis=1)]
        accuracy["exported"] = round(float(np.mean(top == test_y)), 4)
        accuracy["agreement"] = round(float(np.mean(top == pred.top)), 4)
        diff = np.abs(probs - pred.probs[:, columns]).max()
        accuracy["max_prob_diff"] = round(float(diff), 6)

    per_class = np.bincount(labels[train_idx], minlength=len(folder.classes))
    limit = Settings.max_examples
    report = {
        "classes": folder.classes,
        "images": {"train": int(len(train_idx)), "test": int(len(test_idx))},
        "method": args.method,
        "target": args.target,
        "extractor": {
            "backend": extractor.backend,
            "runtime": extractor.runtime,
            "model": running.name,
            "ms_per_image": round(extractor.latency_ms, 2),
        },
        "accuracy": accuracy,
        "evaluated": evaluated.name if evaluated else None,
        "timings_ms": {
            "train": round(train_ms, 1),
            "export": round(export_ms, 1),
            "bundle_write": round(bundle_ms, 1),
            "bundle_import": round(import_ms, 1),
        },
        "files": {k: str(v) for k, v in files.items()},
        "note": exported.head.note,
    }
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    if per_class.max() > limit:
        print(
            f"note: project.zip has up to {per_class.max()} examples per class; start the kiosk "
            f"with --max-examples {per_class.max()} to import it (default {limit})",
            file=sys.stderr,
        )
    if exported.head.note:
        print(f"note: {exported.head.note}", file=sys.stderr)
    return 0


def _print_report(r: dict) -> None:
    e, a, t = r["extractor"], r["accuracy"], r["timings_ms"]
    print(
        f"{r['images']['train']} training and {r['images']['test']} held-out images, "
        f"{len(r['classes'])} classes; extractor on {e['backend']} ({e['runtime']}), "
        f"{e['ms_per_image']} ms/image"
    )
    if a["learner"] is not None:
        print(
            f"held-out accuracy: {r['method']} {a['learner']:.3f}, exported {r['evaluated']} "
            f"(TFLite interpreter) {a['exported']:.3f}; same top-1 on {100 * a['agreement']:.1f}% "
            f"of the images, largest probability difference {a['max_prob_diff']:.4f}"
        )
    print(
        f"training {t['train']:.0f} ms, export {t['export']:.0f} ms, project.zip written in "
        f"{t['bundle_write']:.0f} ms and imported in {t['bundle_import']:.0f} ms"
    )
    print("wrote " + ", ".join(r["files"].values()))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
