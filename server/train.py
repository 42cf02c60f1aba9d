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
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from server import bundle, datasets, export, models
from server.hw import runtime as rt
from server.hw.extractor import Extractor, preprocess
from server.learn import METHODS, Learner, make_learner
from server.offline import (
    ERRORS,
    Embedded,
    add_extractor_arguments,
    embed_folder,
    fail,
    model_places,
    open_extractor_from,
    stratified_split,
)
from server.pipeline import thumbnail_jpeg
from server.progress import ProgressBar
from server.settings import Settings
from server.store import PALETTE, Store

log = logging.getLogger(__name__)


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


class Inputs(NamedTuple):
    """What a run reads before it trains: the photos, embedded, and the base models."""

    folder: datasets.ImageFolder
    extractor: Extractor
    data: Embedded
    cpu_base: Path
    tpu_base: Optional[Path]  # with --target edgetpu


class Written(NamedTuple):
    """What a run wrote into --out, and how long the writing took."""

    files: Dict[str, Path]
    exported: export.Exported
    zipped: bytes
    export_ms: float
    bundle_ms: float


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    problem = _check_arguments(args)
    if problem:
        return fail(problem)
    try:
        inputs = _read_inputs(args)
    except ERRORS as e:
        return fail(str(e))
    data = inputs.data
    running = bundle.identify(inputs.extractor.model_path, inputs.extractor.dim)
    train_idx, test_idx = _split(data.labels, args.test_fraction, args.seed)
    start = time.perf_counter()
    learner = train(
        args.method, data.x[train_idx], data.labels[train_idx], len(inputs.folder.classes)
    )
    train_ms = _ms_since(start)
    try:
        written = _write_outputs(args, learner, inputs, running, train_idx)
    except (export.ExportError, OSError) as e:
        return fail(str(e))
    import_ms = _check_import(written.zipped, running, args.method)
    scored = _score(learner, inputs, written, test_idx)
    timings = {
        "train": train_ms,
        "export": written.export_ms,
        "bundle_write": written.bundle_ms,
        "bundle_import": import_ms,
    }
    report = _report(args, inputs, running, (train_idx, test_idx), scored)
    report["timings_ms"] = {k: round(v, 1) for k, v in timings.items()}
    report["files"] = {k: str(v) for k, v in written.files.items()}
    report["note"] = written.exported.head.note
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report)
    per_class = np.bincount(data.labels[train_idx], minlength=len(inputs.folder.classes))
    _print_notes(int(per_class.max()), written.exported.head.note)
    return 0


def _check_arguments(args: argparse.Namespace) -> str:
    """What is wrong with the flags, or ""."""
    if not 0.0 <= args.test_fraction < 1.0:
        return "--test-fraction must be at least 0 and below 1"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} exists and is not a folder"
    return ""


def _read_inputs(args: argparse.Namespace) -> Inputs:
    """Scans the photos, finds the base models, opens the extractor and embeds every photo.

    Raises:
      One of ``offline.ERRORS``, saying what is missing.
    """
    folder = datasets.scan(args.data_dir)
    cpu_base = models.locate(models.EXTRACTOR_CPU, path=args.model, **model_places(args))
    tpu_base = None
    if args.target == "edgetpu":
        tpu_base = models.locate(models.EXTRACTOR_EDGETPU, **model_places(args))
    extractor = open_extractor_from(args)
    thumbnail = None if args.no_thumbnails else thumbnail_jpeg
    data = embed_folder(extractor, folder, thumbnail=thumbnail)
    return Inputs(folder, extractor, data, cpu_base, tpu_base)


def _split(labels: np.ndarray, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices); nothing is held out for a fraction of 0."""
    if fraction > 0:
        return stratified_split(labels, fraction, np.random.default_rng(seed))
    return np.arange(len(labels)), np.zeros(0, np.int64)


def _write_outputs(
    args: argparse.Namespace,
    learner: Learner,
    inputs: Inputs,
    running: bundle.ExtractorId,
    train_idx: np.ndarray,
) -> Written:
    """Writes model.tflite, labels.txt, model_edgetpu.tflite (--target edgetpu), project.zip.

    Raises:
      export.ExportError, OSError: the model cannot be built, or a file cannot be written.
    """
    args.out.mkdir(parents=True, exist_ok=True)
    names = dict(enumerate(inputs.folder.classes))
    start = time.perf_counter()
    exported = export.export(
        learner, names, inputs.cpu_base.read_bytes(), models.EXTRACTOR_CPU.name
    )
    export_ms = _ms_since(start)
    files = {"model": args.out / "model.tflite", "labels": args.out / "labels.txt"}
    files["model"].write_bytes(exported.tflite)
    files["labels"].write_text(exported.labels, encoding="utf-8")
    if inputs.tpu_base is not None:
        tpu_model = export.build_model(
            inputs.tpu_base.read_bytes(),
            exported.head,
            exported.names,
            models.EXTRACTOR_EDGETPU.name,
        )
        files["model_edgetpu"] = args.out / "model_edgetpu.tflite"
        files["model_edgetpu"].write_bytes(tpu_model)
    project = _project(inputs, train_idx, args.method, running)
    start = time.perf_counter()
    zipped = bundle.write_bundle(project)
    bundle_ms = _ms_since(start)
    files["project"] = args.out / "project.zip"
    files["project"].write_bytes(zipped)
    return Written(files, exported, zipped, export_ms, bundle_ms)


def _project(
    inputs: Inputs, train_idx: np.ndarray, method: str, running: bundle.ExtractorId
) -> bundle.Project:
    """The training split as a kiosk project, one class per class folder."""
    data, labels = inputs.data, inputs.data.labels
    classes = [
        bundle.ClassData(
            name,
            PALETTE[c % len(PALETTE)],
            data.x[train_idx][labels[train_idx] == c],
            [data.thumbnails[i] for i in train_idx if labels[i] == c],
        )
        for c, name in enumerate(inputs.folder.classes)
    ]
    return bundle.Project(classes, method, running)


def _score(
    learner: Learner, inputs: Inputs, written: Written, test_idx: np.ndarray
) -> Tuple[dict, Optional[Path]]:
    """Held-out accuracy of the learner and of the exported model; and which model ran.

    The exported model runs in the TFLite interpreter on the same photos: the Edge TPU build
    when the extractor runs on an Edge TPU and one was written, the CPU build otherwise.
    """
    accuracy = {"learner": None, "exported": None, "agreement": None, "max_prob_diff": None}
    if not len(test_idx):
        return accuracy, None
    data = inputs.data
    test_x, test_y = data.x[test_idx], data.labels[test_idx]
    pred = learner.predict(test_x)
    accuracy["learner"] = round(float(np.mean(pred.top == test_y)), 4)
    runtime = rt.load_runtime()
    evaluated = written.files["model"]
    if inputs.tpu_base is not None and inputs.extractor.backend == "edgetpu":
        evaluated = written.files["model_edgetpu"]
        interpreter = rt.make_edgetpu_interpreter(str(evaluated), runtime)
    else:
        interpreter = rt.make_cpu_interpreter(str(evaluated), runtime)
    probs = run_model(evaluated, interpreter, [data.paths[i] for i in test_idx])
    head = written.exported.head
    columns = [learner.classes.index(c) for c in head.class_ids]
    top = np.array(head.class_ids)[np.argmax(probs, axis=1)]
    accuracy["exported"] = round(float(np.mean(top == test_y)), 4)
    accuracy["agreement"] = round(float(np.mean(top == pred.top)), 4)
    diff = np.abs(probs - pred.probs[:, columns]).max()
    accuracy["max_prob_diff"] = round(float(diff), 6)
    return accuracy, evaluated


def _report(
    args: argparse.Namespace,
    inputs: Inputs,
    running: bundle.ExtractorId,
    split: Tuple[np.ndarray, np.ndarray],
    scored: Tuple[dict, Optional[Path]],
) -> dict:
    """What ``--json`` prints, but for the timings, the files and the note that follow."""
    extractor, (accuracy, evaluated) = inputs.extractor, scored
    return {
        "classes": inputs.folder.classes,
        "images": {"train": int(len(split[0])), "test": int(len(split[1]))},
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
    }


def _print_notes(most_per_class: int, head_note: str) -> None:
    """What the user should know on stderr: the kiosk's --max-examples, the head's note."""
    limit = Settings.max_examples
    if most_per_class > limit:
        print(
            f"note: project.zip has up to {most_per_class} examples per class; start the kiosk "
            f"with --max-examples {most_per_class} to import it (default {limit})",
            file=sys.stderr,
        )
    if head_note:
        print(f"note: {head_note}", file=sys.stderr)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


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


if __name__ == "__main__":
    sys.exit(main())
