"""The Edge TPU report: one file for the first person with a board to attach to a bug.

    python -m server.doctor --hardware-report FILE [--photos DIR] [--edgetpu-lib PATH]
    deploy/check-edgetpu.sh [FILE]

In order, each part written into FILE (JSON) as soon as it is done, so that a part that kills
the process (a delegate that segfaults) still leaves the parts before it and ``"running"``
naming the one it died in:

1. ``machine``: the doctor's rows (``server.doctor``);
2. ``probe``: the Edge TPU probe (``server.hw.probe``, in child processes);
3. ``benchmark``: ``server.benchmark``'s extractor figures on the Edge TPU and on the CPU;
4. ``embeddings``: Edge TPU against CPU embeddings of 50 photos: per-image cosine similarity,
   and how often a head trained on CPU embeddings predicts the same class from both;
5. ``exported_model``: the ``target=edgetpu`` export of a head trained on the Edge TPU's
   embeddings, run on the device with the delegate, against the app's own prediction;
6. ``tests``: ``pytest -m edgetpu``, its summary line.

Parts 3-5 open the Edge TPU in this process, so they run only after the probe passed, with the
runtime the probe passed with. Every part takes its extractors and interpreters as arguments,
so that the plumbing can be tested with the CPU standing in for the Edge TPU.
"""

from __future__ import annotations

import datetime
import json
import logging
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional

import numpy as np
from PIL import Image

from server import doctor, export, models
from server.benchmark import bench_extractor
from server.datasets import DatasetError, load_rgb, scan
from server.hw import runtime as rt
from server.hw.extractor import open_extractor, preprocess
from server.learn import make_learner

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = 50
BENCH_ROUNDS = 100
TESTS_TIMEOUT_S = 1200.0


def known_photo_folders(data_dir: Path) -> List[Path]:
    """Where the sign-language digits may be on this machine (a dev checkout, the data dir)."""
    return [
        ROOT.parent / "shared" / "data" / "sign-language-digits",
        Path(data_dir) / "sign-language-digits",
    ]


class Photos(NamedTuple):
    """Labelled photos: N RGB images, N class indices into ``classes``, and where from."""

    images: list
    labels: np.ndarray
    classes: List[str]
    files: List[str]
    source: str


def load_photos(folder: Path, count: int = PHOTOS) -> Photos:
    """``count`` photos from a folder of class folders, the same share from every class.

    Takes the first files (sorted) of each class, so that every run on every machine sees the
    same photos.

    Raises:
      DatasetError: the folder is not one sub-folder of images per class.
    """
    found = scan(folder)
    per_class = max(1, count // len(found.classes))
    images, labels, files = [], [], []
    for label, paths in enumerate(found.files):
        taken = 0
        for path in paths:
            if taken == per_class:
                break
            image = load_rgb(path)
            if image is not None:
                images.append(image)
                labels.append(label)
                files.append(str(path.relative_to(found.root)))
                taken += 1
    return Photos(images, np.array(labels), found.classes, files, str(found.root))


def _halves(labels: np.ndarray) -> tuple:
    """Train and test indices: alternate photos of each class, so both halves hold every class."""
    train, test = [], []
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        train.extend(where[0::2])
        test.extend(where[1::2])
    return np.array(train), np.array(test)


def _embed(extractor, images) -> np.ndarray:
    return np.stack([extractor.embed(image) for image in images])


def _trained(method: str, x: np.ndarray, labels: np.ndarray):
    learner = make_learner(method)
    for c in np.unique(labels):
        learner.add(int(c), x[labels == c])
    if method in ("auto", "backprop"):
        learner.fit()
    return learner


def _top_classes(learner, x: np.ndarray) -> np.ndarray:
    prediction = learner.predict(x)
    return np.array([prediction.class_ids[t] for t in prediction.top])


def compare_embeddings(tpu, cpu, photos: Photos, method: str = "auto") -> dict:
    """Edge TPU against CPU embeddings of the same photos.

    Args:
      tpu, cpu: extractors (``server.hw.extractor.Extractor``) with the Edge TPU and the CPU
        build of the model.
      photos: the labelled photos.
      method: the learner trained on the CPU embeddings of half the photos.

    Returns:
      Per-image cosine similarity (median, minimum and the photo with the minimum), and on the
      other half: how often the head predicts the same class from the Edge TPU embedding as
      from the CPU one (``agreement_pct``), and its accuracy from each.
    """
    tpu_x, cpu_x = _embed(tpu, photos.images), _embed(cpu, photos.images)
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # noqa: E731
    cosine = np.sum(unit(tpu_x) * unit(cpu_x), axis=1)
    train, test = _halves(photos.labels)
    learner = _trained(method, cpu_x[train], photos.labels[train])
    from_cpu, from_tpu = _top_classes(learner, cpu_x[test]), _top_classes(learner, tpu_x[test])
    truth = photos.labels[test]
    worst = int(np.argmin(cosine))
    return {
        "photos": len(photos.images),
        "source": photos.source,
        "cosine_median": round(float(np.median(cosine)), 6),
        "cosine_min": round(float(cosine[worst]), 6),
        "cosine_min_photo": photos.files[worst],
        "max_abs_difference": round(float(np.max(np.abs(tpu_x - cpu_x))), 6),
        "head": method,
        "trained_on": f"{len(train)} CPU embeddings",
        "tested_on": len(test),
        "agreement_pct": round(100.0 * float(np.mean(from_cpu == from_tpu)), 1),
        "accuracy_cpu_pct": round(100.0 * float(np.mean(from_cpu == truth)), 1),
        "accuracy_tpu_pct": round(100.0 * float(np.mean(from_tpu == truth)), 1),
    }


def _run_model(interpreter, image) -> np.ndarray:
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    _, height, width, _ = inp["shape"]
    interpreter.set_tensor(inp["index"], preprocess(image, (int(width), int(height)))[np.newaxis])
    interpreter.invoke()
    return np.array(interpreter.get_tensor(out["index"])[0], np.float32)


def check_exported(
    app, make_interpreter: Callable, base: bytes, photos: Photos, method: str = "auto"
) -> dict:
    """The exported model, run as a user would run it, against the app's own prediction.

    Args:
      app: the extractor the app runs (the Edge TPU one), whose embeddings train the head.
      make_interpreter: ``path -> allocated interpreter`` (with the Edge TPU delegate).
      base: the bytes of the extractor model the export appends the head to (``_edgetpu``).
      photos: half train the head, the other half are classified both ways.
      method: the learner.

    Returns:
      How often the exported model's top class is the app's (``agreement_pct``), the largest
      difference between its probabilities and the export's own numpy head on the app's
      embeddings, and the model's size.
    """
    x = _embed(app, photos.images)
    train, test = _halves(photos.labels)
    learner = _trained(method, x[train], photos.labels[train])
    names = {i: name for i, name in enumerate(photos.classes)}
    exported = export.export(learner, names, base, "report")
    with tempfile.TemporaryDirectory(prefix="teachable-report-") as folder:
        path = Path(folder) / "model_edgetpu.tflite"
        path.write_bytes(exported.tflite)
        interpreter = make_interpreter(str(path))
        probs = np.stack([_run_model(interpreter, photos.images[i]) for i in test])
    ids = np.array(exported.head.class_ids)
    from_model = ids[np.argmax(probs, axis=1)]
    from_app = _top_classes(learner, x[test])
    head_probs = exported.head.probs(x[test])
    return {
        "method": method,
        "classes": len(ids),
        "tested_on": len(test),
        "agreement_pct": round(100.0 * float(np.mean(from_model == from_app)), 1),
        "max_prob_difference": round(float(np.max(np.abs(probs - head_probs))), 6),
        "model_bytes": len(exported.tflite),
    }


def run_edgetpu_tests(root: Path = ROOT, run=subprocess.run, timeout=TESTS_TIMEOUT_S) -> dict:
    """``pytest -m edgetpu`` in a child process: its return code and summary line.

    The installed kiosk has no ``tests/`` folder; a git checkout does.
    """
    if not (Path(root) / "tests").is_dir():
        return {"ran": False, "why": f"no tests/ in {root}: run the report from a git checkout"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "edgetpu", "tests"]
    try:
        result = run(cmd, cwd=str(root), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ran": True, "command": " ".join(cmd), "summary": f"timed out after {timeout} s"}
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return {
        "ran": True,
        "command": " ".join(cmd),
        "returncode": result.returncode,
        "summary": lines[-1] if lines else (result.stderr.strip().splitlines() or [""])[-1],
        "skipped": [line for line in lines if line.startswith("SKIPPED")][:20],
    }


class Hardware(NamedTuple):
    """What the report runs on; the defaults open the real Edge TPU, tests pass the CPU.

    Attributes:
      probe: ``probe_edgetpu``'s signature; returns a ProbeResult.
      open_tpu: ``probe result -> Extractor`` on the Edge TPU.
      open_cpu: ``() -> Extractor`` on the CPU.
      make_interpreter: ``(path, probe result) -> allocated interpreter`` with the delegate.
      base_model: ``() -> bytes`` of the ``_edgetpu`` extractor.
      run_tests: ``() -> dict`` (``run_edgetpu_tests``).
    """

    probe: Callable
    open_tpu: Callable
    open_cpu: Callable
    make_interpreter: Callable
    base_model: Callable
    run_tests: Callable = run_edgetpu_tests


def _delegate_interpreter(path: str, result, library: Optional[str]):
    """An interpreter with the Edge TPU delegate, on the runtime and library the probe passed."""
    runtime = rt.load_runtime(result.runtime, only=True)
    return rt.make_edgetpu_interpreter(str(path), runtime, library=library or result.library)


def real_hardware(settings, edgetpu_lib: Optional[Path] = None, probe=None) -> Hardware:
    """The Edge TPU and CPU of this machine, found as the kiosk finds them."""
    library = str(edgetpu_lib) if edgetpu_lib is not None else None
    where = {"data_dir": settings.data_dir, "mirror": settings.mirror}

    def edgetpu_path() -> Path:
        return models.locate(models.EXTRACTOR_EDGETPU, download=False, **where)

    return Hardware(
        probe=probe or doctor._default_probe(),
        open_tpu=lambda result: open_extractor(
            "on", probe_result=result, edgetpu_lib=edgetpu_lib, download=False, **where
        ),
        open_cpu=lambda: open_extractor("off", download=False, **where),
        make_interpreter=lambda path, result: _delegate_interpreter(path, result, library),
        base_model=lambda: edgetpu_path().read_bytes(),
    )


def _as_dict(result) -> dict:
    if hasattr(result, "as_dict"):
        return result.as_dict()
    if hasattr(result, "_asdict"):
        return dict(result._asdict())
    return dict(vars(result))


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


class _Report:
    """The report's dict, written to its file after every change."""

    def __init__(self, path: Path, head: dict):
        self.path, self.data = Path(path), dict(head)
        self.save()

    def save(self) -> None:
        text = json.dumps(self.data, indent=2, ensure_ascii=False, default=str) + "\n"
        models.atomic_write(lambda f: f.write(text.encode()), self.path)

    def part(self, name: str, fn: Callable[[], dict]) -> Optional[dict]:
        """Runs one part; a part that raises is recorded with its error, the next ones run."""
        self.data["running"] = name
        self.save()
        start = time.monotonic()
        try:
            result = fn()
        except Exception as e:  # one part failing must not lose what the others find
            log.warning("report part %s failed: %s", name, e)
            result = {
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=8).splitlines(),
            }
        result = dict(result)
        result["seconds"] = round(time.monotonic() - start, 2)
        self.data[name] = result
        self.data.pop("running")
        self.save()
        return result

    def skip(self, name: str, why: str) -> None:
        self.data[name] = {"skipped": why}
        self.save()


def build_report(
    path: Path,
    settings,
    hardware: Hardware,
    *,
    photos_dir: Optional[Path] = None,
    edgetpu_lib: Optional[Path] = None,
    machine: Optional[doctor.Machine] = None,
    environ=None,
    settings_check: Optional[doctor.Check] = None,
    rounds: int = BENCH_ROUNDS,
) -> dict:
    """Runs every part into the report file at ``path``; returns the report.

    Args:
      path: the JSON file to write (replaced after each part).
      settings: the kiosk's settings (data directory, mirror).
      hardware: the probe, extractors and interpreters to use.
      photos_dir: a folder of class folders; default: the sign-language digits if present.
      edgetpu_lib: an explicit libedgetpu (``--edgetpu-lib``).
      machine, environ, settings_check: for the doctor's rows (tests pass fakes).
      rounds: timed rounds of the benchmark.
    """
    report = _Report(
        path,
        {
            "report": "teachable kiosk Edge TPU report",
            "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "app": _git_commit(ROOT),
            "command": " ".join(sys.argv),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
    )
    report.part(
        "machine",
        lambda: {
            "checks": [
                c.as_dict()
                for c in doctor.run_checks(
                    settings,
                    machine=machine,
                    environ=environ,
                    edgetpu_lib=edgetpu_lib,
                    settings_check=settings_check,
                )
            ]
        },
    )
    library = str(edgetpu_lib) if edgetpu_lib is not None else None
    probed = []

    def probe() -> dict:
        probed.append(
            hardware.probe(library=library, data_dir=settings.data_dir, mirror=settings.mirror)
        )
        return _as_dict(probed[0])

    report.part("probe", probe)
    result = probed[0] if probed else None
    photos, photos_problem = _find_photos(photos_dir, settings)
    works = result is not None and getattr(result, "outcome", "") == "ok"
    if not works:
        why = "the Edge TPU probe did not pass: " + (
            getattr(result, "diagnosis", "") if result is not None else "the probe itself failed"
        )
        for name in ("benchmark", "embeddings", "exported_model"):
            report.skip(name, why)
    else:
        _device_parts(report, hardware, result, photos, photos_problem, rounds)
    report.part("tests", hardware.run_tests)
    report.data["verdict"] = verdict(report.data)
    report.save()
    return report.data


def _find_photos(photos_dir: Optional[Path], settings) -> tuple:
    """(photos, "") from ``photos_dir`` or a known folder, else (None, why not)."""
    problem = ""
    folders = [photos_dir] if photos_dir is not None else known_photo_folders(settings.data_dir)
    for folder in folders:
        if Path(folder).is_dir():
            try:
                return load_photos(Path(folder)), ""
            except DatasetError as e:
                problem = f"{e}: pass --photos DIR with one sub-folder of images per class"
    return None, problem or (
        "no photos: pass --photos DIR (one sub-folder of images per class); looked in "
        + ", ".join(map(str, folders))
    )


def _device_parts(report, hardware: Hardware, result, photos, photos_problem: str, rounds: int):
    """The parts that run on the Edge TPU, once its probe passed."""
    extractors = {}

    def benchmark() -> dict:
        extractors["tpu"] = hardware.open_tpu(result)
        extractors["cpu"] = hardware.open_cpu()
        frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
        image = Image.fromarray(frame)
        return {
            "edgetpu": bench_extractor(extractors["tpu"], image, rounds),
            "cpu": bench_extractor(extractors["cpu"], image, rounds),
        }

    report.part("benchmark", benchmark)
    if "tpu" not in extractors or "cpu" not in extractors:
        for name in ("embeddings", "exported_model"):
            report.skip(name, "the Edge TPU or the CPU extractor did not open (benchmark)")
    elif photos is None:
        for name in ("embeddings", "exported_model"):
            report.skip(name, photos_problem)
    else:
        tpu, cpu = extractors["tpu"], extractors["cpu"]
        report.part("embeddings", lambda: compare_embeddings(tpu, cpu, photos))
        report.part(
            "exported_model",
            lambda: check_exported(
                tpu,
                lambda p: hardware.make_interpreter(p, result),
                hardware.base_model(),
                photos,
            ),
        )


def verdict(data: dict) -> str:
    """One line: whether the Edge TPU works here and what disagreed."""
    probe = data.get("probe", {})
    if probe.get("outcome") != "ok":
        reason = probe.get("diagnosis") or probe.get("error") or "the probe did not run"
        return f"the Edge TPU does not work here: {reason}"
    problems = [
        f"{name} failed ({data[name]['error']})"
        for name in ("benchmark", "embeddings", "exported_model", "tests")
        if "error" in data.get(name, {})
    ]
    embeddings, exported = data.get("embeddings", {}), data.get("exported_model", {})
    if embeddings.get("agreement_pct", 100.0) < 100.0:
        problems.append(f"the CPU-trained head agrees {embeddings['agreement_pct']} %")
    if exported.get("agreement_pct", 100.0) < 100.0:
        problems.append(f"the exported model agrees {exported['agreement_pct']} % with the app")
    tests = data.get("tests", {})
    if tests.get("returncode") not in (None, 0, 5):  # 5: no test collected
        problems.append(f"pytest -m edgetpu: {tests.get('summary')}")
    if problems:
        return "the Edge TPU runs, but: " + "; ".join(problems)
    return "the Edge TPU works here and agrees with the CPU"


def summary_lines(data: dict) -> List[str]:
    """A few lines for the terminal; the file holds everything."""
    lines = [f"verdict: {data.get('verdict', '')}"]
    probe = data.get("probe", {})
    lines.append(f"probe: {probe.get('outcome', '?')} {probe.get('diagnosis', '')}".rstrip())
    bench = data.get("benchmark", {})
    if "edgetpu" in bench:
        lines.append(
            f"benchmark: embed {bench['edgetpu']['embed_ms']} ms on the Edge TPU, "
            f"{bench['cpu']['embed_ms']} ms on the CPU"
        )
    emb = data.get("embeddings", {})
    if "cosine_median" in emb:
        lines.append(
            f"embeddings: cosine median {emb['cosine_median']}, min {emb['cosine_min']}; "
            f"head agreement {emb['agreement_pct']} %"
        )
    exp = data.get("exported_model", {})
    if "agreement_pct" in exp:
        lines.append(f"exported model: agrees {exp['agreement_pct']} % with the app")
    tests = data.get("tests", {})
    lines.append(f"tests: {tests.get('summary') or tests.get('why') or tests.get('error', '')}")
    return lines


def main(
    args,
    settings,
    *,
    edgetpu_lib=None,
    machine=None,
    probe=None,
    hardware=None,
    environ=None,
    settings_check=None,
) -> int:
    """``python -m server.doctor --hardware-report FILE``: 0 when the Edge TPU works."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    path = Path(args.hardware_report)
    if path.exists() and path.is_dir():
        print(f"error: {path} is a folder; give a file name such as edgetpu-report.json")
        return 2
    if args.photos is not None and not Path(args.photos).is_dir():
        print(f"error: --photos {args.photos} is not a folder")
        return 2
    hardware = hardware or real_hardware(settings, edgetpu_lib, probe)
    data = build_report(
        path,
        settings,
        hardware,
        photos_dir=args.photos,
        edgetpu_lib=edgetpu_lib,
        machine=machine,
        environ=environ,
        settings_check=settings_check,
    )
    for line in summary_lines(data):
        print(line)
    print(f"report: {path.resolve()}")
    return 0 if data["verdict"].startswith("the Edge TPU works") else 1
