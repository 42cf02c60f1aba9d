"""The one worker that owns the learner, fed by the embedder that runs the extractor.

Two threads. The embedder takes the camera's newest frame and embeds it (the slow part: ~14 ms
on two CPU cores), then hands the embedding to the worker. The worker owns the learner and the
store: per frame it scores every class, smooths over time, publishes the prediction and adds an
example for every client that holds "record". Everything else (adding a class, undo, a method
switch, an uploaded photo) reaches the worker as a command on its queue, so the learner has one
owner and needs no locks, and a command never waits for an embedding to finish: only for the
worker's current (short) task. The extractor is shared under a lock (uploaded photos are
embedded on the caller's thread). Training runs on a separate thread from a frozen copy of the
data (``Learner.training_job``) and its result is applied by the worker.

Public methods are thread-safe: they put a command on the queue and wait for its answer.
Failures a user can cause raise ``ServiceError`` with a code and a sentence.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import io
import logging
import queue
import statistics
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
from PIL import Image

from server import bundle, export, memory, models
from server import exhibit as exhibit_mod
from server import store as store_mod
from server.errors import ServiceError
from server.learn import METHODS, Learner, make_learner
from server.metrics import Metrics
from server.settings import Settings
from server.skip_reasons import SKIP_MESSAGES

log = logging.getLogger(__name__)

Emit = Callable[..., None]
"""emit(event, payload, to=None): sends a Socket.IO event to one client or to all."""

THUMBNAIL_SIZE = 96
TICK = 0.05  # s: the longest the worker and the embedder wait before looking around again
CLIENTS_PERIOD = 1.0  # s: a change in the number of browsers alone is broadcast this often
RECENT_THUMBNAILS = 8  # example ids per class in ``state``, newest first
DARK_LUMA = 20.0  # mean luma (0-255) below which a frame is too dark to learn from
BLUR_VARIANCE = 8.0  # Laplacian variance at 160 px below which a frame is too blurred
HANG_SECONDS = 5.0  # one embed() call longer than this: the extractor hangs
FAILURES_IN_A_ROW = 15  # failed embed() calls in a row (0.5 s at 30 fps): the device is lost
WATCHDOG_PERIOD = 0.5
TRACEBACK_PERIOD = 10.0  # at most one logged traceback per this many seconds for bad frames
FAULT_MESSAGE = (
    "The camera's model stopped working (the Edge TPU may have been unplugged): the kiosk is "
    "restarting. Nothing you taught is lost."
)


class Published(NamedTuple):
    """A processed frame and what the learner made of it, for the streamer."""

    index: int
    image: np.ndarray
    prediction: dict


class LatestSlot:
    """Holds the newest value; readers wait for one newer than what they have seen."""

    def __init__(self):
        self._cond = threading.Condition()
        self._value = None
        self._count = 0

    def put(self, value) -> None:
        with self._cond:
            self._value = value
            self._count += 1
            self._cond.notify_all()

    def get(self, after: int = 0, timeout: float = 1.0):
        """(count, value) of a value newer than ``after``, or (after, None) on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count > after, timeout):
                return after, None
            return self._count, self._value


class _Recorder(NamedTuple):
    class_id: int
    burst: int
    next_at: float


def frame_quality(image: np.ndarray) -> Optional[str]:
    """None if ``image`` (HxWx3 uint8) is fit to learn from, else "too_dark" or "too_blurry"."""
    step = max(1, image.shape[1] // 160)
    gray = image[::step, ::step].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if gray.mean() < DARK_LUMA:
        return "too_dark"
    lap = 4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    if lap.var() < BLUR_VARIANCE:
        return "too_blurry"
    return None


def thumbnail_jpeg(image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A small square JPEG of the centre of ``image`` (PIL image or HxWx3 array)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
    small = image.crop(box).resize((size, size), Image.BILINEAR)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=70)
    return out.getvalue()


class Pipeline:
    """Camera → extractor → learner → every client, with one owner for the learner.

    Args:
      settings: the validated settings.
      camera: a started or startable ``server.hw.cameras.Camera``.
      extractor: a ``server.hw.extractor.Extractor``.
      store: the ``server.store.Store``.
      emit: sends Socket.IO events (see ``Emit``).
      clock: ``time.monotonic`` or a fake.
      on_fault: called once, with a reason, when the extractor hangs (one call longer than
        ``HANG_SECONDS``) or fails ``FAILURES_IN_A_ROW`` times in a row; the server restarts
        its worker process there (``server.__main__``). Clients get an ``error`` either way
        and ``/healthz`` reports the fault.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        camera,
        extractor,
        store,
        emit: Emit,
        clock: Callable[[], float] = time.monotonic,
        metrics: Optional[Metrics] = None,
        exhibit=None,
        on_fault: Optional[Callable[[str], None]] = None,
    ):
        self.settings = settings
        self.camera = camera
        self.extractor = extractor
        self.store = store
        self.emit = emit
        self.clock = clock
        self.frames = LatestSlot()
        self._commands: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._embedder: Optional[threading.Thread] = None
        self._extractor_lock = threading.Lock()  # the embedder's, and uploaded photos'
        self._start_lock = threading.Lock()
        self._recorders: Dict[str, _Recorder] = {}
        self._last_skip: Dict[tuple, float] = {}
        self._clients: set = set()
        self._clients_dirty = False  # the number of browsers changed since the last state
        self._clients_sent = -1e9  # when a change in that number alone was last broadcast
        self._smoothed: Optional[np.ndarray] = None
        self._smoothed_classes: tuple = ()
        self._frame_times: collections.deque = collections.deque(maxlen=120)
        self._latencies: collections.deque = collections.deque(maxlen=200)
        self.frames_processed = 0
        self.errors = 0
        self.on_fault = on_fault
        self.fault = ""  # why the extractor is considered lost, once it is
        self._embed_since: Optional[float] = None  # when the running embed() call started
        self._embed_failures = 0  # in a row
        self._watchdog: Optional[threading.Thread] = None
        self._last_traceback = -1e9
        self._tracebacks_skipped = 0
        self.metrics = metrics or Metrics()
        self.metrics.bind(
            fps=lambda: self.fps,
            clients=lambda: len(self._clients),
            backend=lambda: self.extractor.backend,
        )
        self.exhibit = exhibit
        self._touched = False
        self._preset = None  # the operator's preset project, validated once
        self.smoothing = settings.smoothing
        self.learner_options: dict = {}
        if exhibit is not None:
            self._apply_operator(exhibit.config.values)
        self._version = 0
        self._training: Optional[dict] = None
        self._training_thread: Optional[threading.Thread] = None
        self._last_training: Optional[dict] = None
        self._state_cache: dict = {}
        method = store.get_setting("method", settings.method)
        self.learner: Learner = self._rebuild(method if method in METHODS else settings.method)
        self._refresh_state(broadcast=False)

    # ----- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Starts the camera and the worker thread (once, whoever calls first)."""
        with self._start_lock:
            if self._thread is not None:
                return
            self.camera.on_status = self._on_camera_status
            self.camera.start()
            self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
            self._thread.start()
            self._embedder = threading.Thread(
                target=self._embed_frames, name="pipeline-embedder", daemon=True
            )
            self._embedder.start()
            self._watchdog = threading.Thread(
                target=self._watch, name="pipeline-watchdog", daemon=True
            )
            self._watchdog.start()
            if self.exhibit is not None:
                self._preset = self._load_preset()
                self.submit(self._reset_to_preset, "start")
                self.submit(self._apply_operator, self.exhibit.config.values)
            self.submit(self._maybe_train)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._embedder is not None:
            self._embedder.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._watchdog is not None:
            self._watchdog.join(timeout)
        if self._training_thread is not None:
            self._training_thread.join(timeout)
        self.camera.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ----- the hot loop -----------------------------------------------------------------
    def _run(self) -> None:
        """The worker: commands (each embedded frame is one) as they come, and ticks."""
        while not self._stop.is_set():
            try:
                command = self._commands.get(timeout=TICK)
            except queue.Empty:
                command = None
            if command is not None:
                self._run_command(*command)
            self._flush_clients()
            if self.exhibit is not None:
                self._exhibit_tick()
        self._drain_commands()

    def _embed_frames(self) -> None:
        """The embedder: the camera's newest frame, embedded, handed to the worker.

        At most one embedded frame waits for the worker, so a busy worker makes the embedder
        skip camera frames instead of queueing them; meanwhile the next one is embedded.
        """
        last, handed = -1, None
        while not self._stop.is_set():
            frame = self.camera.latest(after=last, timeout=TICK)
            if frame is None:
                continue
            last = frame.index
            start = self.clock()
            try:
                embedding = self._embed(frame.image)
            except Exception:  # a bad frame must not stop the kiosk
                self._error()
                self._log_frame_failure(frame.index)
                continue
            while handed is not None and not handed.done() and not self._stop.is_set():
                concurrent.futures.wait([handed], TICK)
            handed = self.submit(self._finish_frame, frame, embedding, start)

    def _log_frame_failure(self, index: int) -> None:
        """A traceback at most every ``TRACEBACK_PERIOD`` s: a failing device logs no flood."""
        now = self.clock()
        if now - self._last_traceback < TRACEBACK_PERIOD:
            self._tracebacks_skipped += 1
            return
        skipped, self._tracebacks_skipped, self._last_traceback = self._tracebacks_skipped, 0, now
        more = f" ({skipped} more failed since the last report)" if skipped else ""
        log.exception("frame %d failed; carrying on%s", index, more)

    # ----- the extractor and its watchdog ---------------------------------------------------
    def _embed(self, image) -> np.ndarray:
        """``extractor.embed`` where the watchdog can see it; counts failures in a row.

        Any thread; one call at a time (the interpreter is not thread-safe).
        """
        with self._extractor_lock:
            self._embed_since = self.clock()
            try:
                embedding = self.extractor.embed(image)
            except Exception as e:
                self._embed_failures += 1
                if self._embed_failures >= FAILURES_IN_A_ROW:
                    self._set_fault(
                        f"the extractor failed {self._embed_failures} times in a row: {e}"
                    )
                raise
            finally:
                self._embed_since = None
            self._embed_failures = 0
            return embedding

    def _watch(self) -> None:
        """Notices an extractor call that never returns (a hung Edge TPU)."""
        while not self._stop.wait(WATCHDOG_PERIOD) and not self.fault:
            since = self._embed_since
            if since is not None and self.clock() - since > HANG_SECONDS:
                self._set_fault(f"the extractor has not answered for {HANG_SECONDS:g} s")

    def _set_fault(self, reason: str) -> None:
        """Once: log, tell every client and hand over to ``on_fault`` (any thread)."""
        if self.fault:
            return
        self.fault = reason
        log.critical("%s; the pipeline cannot go on", reason)
        self._error()
        self.emit("error", {"code": "extractor_failed", "message": FAULT_MESSAGE})
        if self.on_fault is not None:
            self.on_fault(reason)

    def _finish_frame(self, frame, embedding: np.ndarray, start: float) -> None:
        """The worker's part of a frame: predict, publish, record."""
        try:
            self._predict_frame(frame, embedding, start)
        except Exception:  # a bad frame must not stop the kiosk
            self._error()
            self._log_frame_failure(frame.index)

    def _predict_frame(self, frame, embedding: np.ndarray, start: float) -> None:
        pred = self.learner.predict(embedding)
        payload = self._prediction_payload(pred, embedding, frame)
        now = self.clock()
        self._latencies.append((now - frame.time) * 1000.0)
        self._frame_times.append(now)
        self.frames_processed += 1
        self.metrics.frames.inc()
        self.metrics.latency.observe(now - frame.time)
        payload["latency_ms"] = round((now - frame.time) * 1000.0, 1)
        payload["process_ms"] = round((now - start) * 1000.0, 1)
        self.frames.put(Published(frame.index, frame.image, payload))
        if self._recorders:
            self._record(frame, embedding, now)

    def _prediction_payload(self, pred, embedding: np.ndarray, frame) -> dict:
        probs = pred.probs[0]
        classes = pred.class_ids
        if classes != self._smoothed_classes or self._smoothed is None:
            self._smoothed, self._smoothed_classes = probs.copy(), classes
        else:
            a = self.smoothing
            self._smoothed = a * self._smoothed + (1 - a) * probs
        smoothed = self._smoothed
        top = int(np.argmax(smoothed)) if len(classes) and smoothed.sum() > 0 else -1
        class_id = classes[top] if top >= 0 else None
        names = self._state_cache.get("names", {})
        return {
            "frame": frame.index,
            "class_id": class_id,
            "label": names.get(class_id),
            "scores": {str(c): round(float(p), 4) for c, p in zip(classes, smoothed)},
            "unknown": bool(pred.unknown[0]) if top >= 0 else True,
            "similarity": round(float(pred.similarity[0]), 4),
            "nearest": self.learner.nearest(embedding, class_id, 3) if class_id is not None else [],
            "method": self.learner.name,
            "fps": round(self.fps, 1),
        }

    def _record(self, frame, embedding: np.ndarray, now: float) -> None:
        counts = self.learner.counts()
        changed = False
        for sid, rec in list(self._recorders.items()):
            if now < rec.next_at:
                continue
            self._recorders[sid] = rec._replace(
                next_at=now + self.settings.record_interval_ms / 1e3
            )
            reason = "full" if counts.get(rec.class_id, 0) >= self.settings.max_examples else None
            reason = reason or frame_quality(frame.image)
            if reason:
                self._tell_skip(sid, reason, now)
                continue
            thumb = thumbnail_jpeg(frame.image) if self.settings.thumbnails else None
            try:
                ids = self.store.add_examples(
                    rec.class_id, embedding[np.newaxis], [thumb], burst=rec.burst
                )
            except store_mod.StoreError as e:
                self._recorders.pop(sid, None)  # refused until the client tries again
                self.emit("error", {"code": "storage", "message": str(e)}, to=sid)
                changed = True  # everyone sees that this recording stopped
                continue
            self.learner.add(rec.class_id, embedding, ids)
            self.metrics.examples.inc()
            counts[rec.class_id] = counts.get(rec.class_id, 0) + 1
            changed = True
        if changed:
            self._refresh_state()

    def _tell_skip(self, sid: str, reason: str, now: float) -> None:
        key = (sid, reason)
        if now - self._last_skip.get(key, -1e9) >= 1.0:
            self._last_skip[key] = now
            self.emit(
                "record_skipped", {"reason": reason, "message": SKIP_MESSAGES[reason]}, to=sid
            )

    # ----- commands ---------------------------------------------------------------------
    def submit(self, fn: Callable, *args) -> concurrent.futures.Future:
        """Runs ``fn(*args)`` on the worker thread; the future holds its result."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._commands.put((fn, args, future))
        return future

    def call(self, fn: Callable, *args, timeout: float = 10.0, touch: bool = True):
        """``submit`` and wait: the result, or the ServiceError the command raised.

        ``touch``: the call counts as a visitor's activity (exhibit mode's idle timer and
        attract screen); the operator's own actions pass False.
        """
        self._check_running()
        if touch:
            self._touched = True  # somebody is using the kiosk (exhibit mode's idle timer)
        try:
            return self.submit(fn, *args).result(timeout)
        except concurrent.futures.TimeoutError:
            raise ServiceError("timeout", "The kiosk is busy; try again.", 503) from None

    def _check_running(self) -> None:
        if not self.running and threading.current_thread() is not self._thread:
            raise ServiceError("not_running", "The camera pipeline is not running.", 503)

    def _drain_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            self._run_command(*command)

    def _run_command(self, fn: Callable, args: tuple, future: concurrent.futures.Future) -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except ServiceError as e:
                future.set_exception(e)
            except store_mod.StoreError as e:
                future.set_exception(_store_error(e))
            except Exception as e:  # reported to the caller, and logged here
                log.exception("command %s failed", getattr(fn, "__name__", fn))
                self._error()
                future.set_exception(ServiceError("internal", f"Something went wrong: {e}", 500))

    # ----- the service API (thread-safe) -------------------------------------------------
    def state(self) -> dict:
        """The last broadcast state (cheap; safe from any thread)."""
        return self._state_cache["public"]

    # Arguments of the wrong type are refused here, on the caller's thread: only commands that
    # can be carried out wait for the worker.

    def add_class(self, name: str) -> dict:
        return self.call(self._add_class, _name(name))

    def rename_class(self, class_id: int, name: str) -> dict:
        return self.call(self._rename_class, _int(class_id, "class_id"), _name(name))

    def delete_class(self, class_id: int) -> None:
        return self.call(self._delete_class, _int(class_id, "class_id"))

    def clear_class(self, class_id: int) -> int:
        return self.call(self._clear_class, _int(class_id, "class_id"))

    def record_start(self, sid: str, class_id: int) -> None:
        return self.call(self._record_start, sid, _int(class_id, "class_id"))

    def record_stop(self, sid: str) -> None:
        return self.call(self._record_stop, sid)

    def undo(self) -> int:
        return self.call(self._undo)

    def delete_example(self, example_id: int) -> None:
        return self.call(self._delete_example, _int(example_id, "example_id"))

    def set_method(self, method: str) -> None:
        return self.call(self._set_method, _method(method))

    def train(self, method: Optional[str] = None) -> dict:
        return self.call(self._train, None if method is None else _method(method))

    def reset(self) -> None:
        return self.call(self._reset)

    def add_images(self, class_id: int, images: List[Image.Image]) -> int:
        """Adds uploaded photos to a class. They are embedded on the caller's thread (the
        worker meanwhile goes on with frames and commands) once the class is known to exist
        and have room; the worker checks again when it adds them."""
        row = self._class_row(_int(class_id, "class_id"))
        self._check_room(row["name"], row["examples"], len(images))
        self._check_running()
        embeddings = np.stack([self._embed(im) for im in images])
        thumbs = [thumbnail_jpeg(im) if self.settings.thumbnails else None for im in images]
        return self.call(self._add_embeddings, class_id, embeddings, thumbs, timeout=60.0)

    def predict_image(self, image: Image.Image) -> dict:
        self._check_running()
        return self.call(self._predict_embedding, self._embed(image))

    def client_connected(self, sid: str) -> None:
        self.submit(self._client_connected, sid)

    def client_disconnected(self, sid: str) -> None:
        self.submit(self._client_disconnected, sid)

    def thumbnail(self, example_id: int) -> Optional[bytes]:
        return self.store.thumbnail(example_id)

    # Projects and model export: the worker takes a consistent snapshot (or applies an import
    # that was validated before), while the slow part (zipping, validating, building the
    # flatbuffer) runs on the caller's thread, so the hot loop never waits for it.
    @functools.cached_property
    def extractor_id(self) -> bundle.ExtractorId:
        """The running extractor's name, file, sha256 and D: what bundles record and check."""
        return bundle.identify(
            getattr(self.extractor, "model_path", ""), getattr(self.extractor, "dim", 0)
        )

    def export_labels(self) -> str:
        """``labels.txt`` of the current classifier (ServiceError 409 when nothing to export)."""
        _head, names = self.call(self._export_head)
        return export.labels_txt(names)

    def export_model(self, target: str = "cpu") -> export.Exported:
        """The current classifier appended to the ``target`` extractor (``cpu``/``edgetpu``)."""
        path, base_name = self._base_model(target)
        head, names = self.call(self._export_head)
        try:
            tflite = export.build_model(path.read_bytes(), head, names, base_name)
        except export.ExportError as e:
            raise ServiceError(e.code, str(e), 503 if e.code == "no_schema" else 409) from None
        except OSError as e:
            raise ServiceError("model_missing", f"Cannot read {path}: {e}", 503) from None
        return export.Exported(tflite, export.labels_txt(names), head, names)

    def export_project(self, touch: bool = True) -> bytes:
        """The whole project as a bundle (``server.bundle``)."""
        rows, ids, class_ids, x, method = self.call(self._project_snapshot, touch=touch)
        classes = []
        for row in rows:
            mask = class_ids == row.id
            thumbs = None
            if self.settings.thumbnails:
                thumbs = [self._thumbnail_or_none(int(i)) for i in ids[mask]]
            examples = x[mask] if len(x) else np.zeros((0, self.extractor_id.dim), np.float32)
            classes.append(bundle.ClassData(row.name, row.color, examples, thumbs))
        return bundle.write_bundle(bundle.Project(classes, method, self.extractor_id))

    def import_project(self, data: bytes) -> dict:
        """Replaces every class and example with a bundle's, or changes nothing.

        The bundle is validated completely before the store is touched; then the store is
        replaced in one transaction, the learner rebuilt (with the bundle's method when it is
        a known one) and the state broadcast.

        Returns:
          ``{"classes": n, "examples": m, "method": "auto"}``.
        """
        limits = bundle.Limits(max_examples=self.settings.max_examples)
        try:
            project = bundle.read_bundle(data, running=self.extractor_id, limits=limits)
        except bundle.BundleError as e:
            raise ServiceError(e.code, str(e), e.status) from None
        return self.call(self._import_project, project, timeout=60.0)

    def _base_model(self, target: str) -> Tuple[Path, str]:
        """The extractor file to append the layer to, and its name."""
        if target not in export.TARGETS:
            raise ServiceError("bad_target", f"target must be one of {', '.join(export.TARGETS)}.")
        info = models.EXTRACTOR_EDGETPU if target == "edgetpu" else models.EXTRACTOR_CPU
        own = getattr(self.extractor, "model_path", "")
        if own and self.extractor.backend == target and Path(own).is_file():
            return Path(own), self.extractor_id.name
        wanted = bundle.ExtractorId(info.name, info.filename, info.sha256, self.extractor_id.dim)
        if not bundle.compatible(wanted, self.extractor_id):
            raise ServiceError(
                "wrong_model",
                f"The kiosk's examples come from {self.extractor_id.describe()}; a model built "
                f"on {info.name} would misread them. Export for target "
                f"{self.extractor.backend} instead.",
                409,
            )
        try:
            path = models.locate(
                info,
                path=self.settings.model if target == "cpu" else None,
                data_dir=self.settings.data_dir,
                mirror=self.settings.mirror,
                download=False,
            )
        except models.ModelError as e:
            raise ServiceError("model_missing", str(e), 503) from None
        return path, info.name

    def _thumbnail_or_none(self, example_id: int) -> Optional[bytes]:
        try:
            return self.store.thumbnail(example_id)
        except store_mod.NotFound:  # deleted since the snapshot
            return None

    def health(self) -> dict:
        s = self.state()
        health = {
            "status": "failed" if self.fault else "ok" if self.running else "stopped",
            "backend": self.extractor.backend,
            "camera": self.camera.status,
            "fps": round(self.fps, 1),
            "clients": len(self._clients),
            "classes": len(s["classes"]),
            "examples": sum(c["examples"] for c in s["classes"]),
        }
        if self.fault:
            health["fault"] = self.fault
        probe = getattr(self.extractor, "probe", None)
        if probe is not None:
            health["edgetpu"] = {"outcome": probe.outcome, "diagnosis": probe.diagnosis}
        return health

    @property
    def training_running(self) -> bool:
        return self._training is not None

    @property
    def fps(self) -> float:
        times = list(self._frame_times)
        if len(times) < 2 or self.clock() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    @property
    def latency_ms(self) -> float:
        return statistics.median(self._latencies) if self._latencies else 0.0

    # ----- command bodies (worker thread only) -------------------------------------------
    def _class_row(self, class_id: int) -> dict:
        for c in self._state_cache["public"]["classes"]:
            if c["id"] == class_id:
                return c
        raise ServiceError("not_found", f"There is no class {class_id}.", 404)

    def _add_class(self, name: str) -> dict:
        row = self.store.add_class(name)
        self.learner.add_class(row.id)
        self._refresh_state()
        return self._class_row(row.id)

    def _rename_class(self, class_id: int, name: str) -> dict:
        self.store.rename_class(class_id, name)
        self._refresh_state()
        return self._class_row(class_id)

    def _delete_class(self, class_id: int) -> None:
        self.store.delete_class(class_id)
        self.learner.remove_class(class_id)
        for sid, rec in list(self._recorders.items()):
            if rec.class_id == class_id:
                del self._recorders[sid]
        self._changed()

    def _clear_class(self, class_id: int) -> int:
        removed = self.store.clear_class(class_id)
        self.learner.clear_class(class_id)
        self._changed()
        return len(removed)

    def _record_start(self, sid: str, class_id: int) -> None:
        self.store.get_class(class_id)  # NotFound for an unknown class
        burst = self.store.new_burst()
        self._recorders[sid] = _Recorder(class_id, burst, self.clock())
        self._refresh_state()

    def _record_stop(self, sid: str) -> None:
        if self._recorders.pop(sid, None) is not None:
            self._refresh_state()
            if self.learner.name == "auto":
                self._maybe_train()

    def _undo(self) -> int:
        burst = self.store.last_burst()
        if burst is None:
            raise ServiceError("nothing_to_undo", "There is no recording to undo.")
        removed = self.store.delete_examples(self.store.burst_examples(burst))
        self.learner.remove(removed)
        self._changed()
        return len(removed)

    def _delete_example(self, example_id: int) -> None:
        removed = self.store.delete_examples([example_id])
        if not removed:
            raise ServiceError("not_found", f"There is no example {example_id}.", 404)
        self.learner.remove(removed)
        self._changed()

    def _set_method(self, method: str) -> None:
        if method != self.learner.name:
            new = make_learner(method, **self.learner_options)
            new.load_state(self.learner.state())
            self.learner = new
            self.store.set_setting("method", method)
            self._refresh_state()
            if method == "auto":
                self._maybe_train()

    def _train(self, method: Optional[str]) -> dict:
        if method is not None:
            self._set_method(method)
        if self._training is not None:
            raise ServiceError("busy", "A training is already running; wait for it to finish.", 409)
        if not self._start_training():
            raise ServiceError("nothing_to_train", "Teach at least one class first.")
        return dict(self._training)

    def _reset(self, reason: str = "start_over") -> None:
        self.store.reset()
        self.learner = make_learner(self.learner.name, **self.learner_options)
        self._recorders.clear()
        self._last_training = None
        self.metrics.resets.labels(reason).inc()
        self._changed()

    def _check_room(self, name: str, examples: int, adding: int) -> None:
        if examples + adding > self.settings.max_examples:
            raise ServiceError(
                "full",
                f"Class {name!r} would have more than {self.settings.max_examples} examples.",
                409,
            )

    def _add_embeddings(
        self, class_id: int, embeddings: np.ndarray, thumbs: List[Optional[bytes]]
    ) -> int:
        row = self.store.get_class(class_id)
        self._check_room(row.name, row.examples, len(embeddings))
        ids = self.store.add_examples(class_id, embeddings, thumbs, burst=self.store.new_burst())
        self.learner.add(class_id, embeddings, ids)
        self.metrics.examples.inc(len(ids))
        self._changed()
        return len(ids)

    def _predict_embedding(self, embedding: np.ndarray) -> dict:
        pred = self.learner.predict(embedding)
        class_id = pred.top_class(0)
        names = self._state_cache.get("names", {})
        return {
            "label": names.get(class_id),
            "class_id": class_id,
            "scores": {
                names.get(c, str(c)): round(float(p), 4)
                for c, p in zip(pred.class_ids, pred.probs[0])
            },
            "unknown": bool(pred.unknown[0]) if class_id is not None else True,
        }

    def _export_head(self) -> tuple:
        try:
            head = export.head_of(self.learner)
        except export.ExportError as e:
            raise ServiceError(e.code, str(e), 409) from None
        names = self._state_cache.get("names", {})
        return head, [names.get(c, str(c)) for c in head.class_ids]

    def _project_snapshot(self) -> tuple:
        ids, class_ids, x = self.store.examples()
        return self.store.classes(), ids, class_ids, x, self.learner.name

    def _import_project(self, project: bundle.Project) -> dict:
        method = project.method if project.method in METHODS else self.learner.name
        self.store.replace_all(project.store_classes(), settings={"method": method})
        self._recorders.clear()
        self._last_training = None  # it described the old project
        self.learner = self._rebuild(method)
        log.info(
            "imported a project: %d classes, %d examples, method %s",
            len(project.classes),
            project.examples,
            method,
        )
        self._changed()
        return {"classes": len(project.classes), "examples": project.examples, "method": method}

    def _client_connected(self, sid: str) -> None:
        self._clients.add(sid)
        self._clients_changed()

    def _client_disconnected(self, sid: str) -> None:
        self._clients.discard(sid)
        if self._recorders.pop(sid, None) is not None:
            self._refresh_state()  # its recording stopped: everyone sees that at once
        else:
            self._clients_changed()
        if self.learner.name == "auto":
            self._maybe_train()

    def _clients_changed(self) -> None:
        """Only the number of browsers changed: the state is broadcast without a query, and
        at most every ``CLIENTS_PERIOD`` s, so that a crowd arriving (or a flood of sockets)
        costs one broadcast, not two per connection."""
        self._clients_dirty = True
        self._flush_clients()

    def _flush_clients(self) -> None:
        """Broadcasts a pending change in the number of browsers once its period is over."""
        if not self._clients_dirty or self.clock() - self._clients_sent < CLIENTS_PERIOD:
            return
        self._version += 1
        public = dict(self._state_cache["public"], version=self._version)
        public["clients"] = len(self._clients)
        self._state_cache = dict(self._state_cache, public=public)
        self._clients_dirty, self._clients_sent = False, self.clock()
        self.emit("state", public)

    def _on_camera_status(self, status: str, reason: str) -> None:
        # called from a camera thread: hand it to the worker
        self.submit(self._refresh_state)

    # ----- training -----------------------------------------------------------------------
    def _changed(self) -> None:
        self._smoothed = None
        self._refresh_state()
        if self.learner.name == "auto" and not self._recorders:
            self._maybe_train()

    def _maybe_train(self) -> None:
        if self._training is None and self.learner.needs_fit:
            self._start_training()

    def _start_training(self) -> bool:
        job = self.learner.training_job()
        if job is None:
            return False
        learner = self.learner
        self._training = {
            "state": "running",
            "method": learner.name,
            "iteration": 0,
            "iterations": job.iterations,
            "loss": None,
            "accuracy": None,
        }
        self.emit("training", dict(self._training))

        def progress(iteration: int, loss: float, accuracy: float) -> None:
            update = dict(
                self._training,
                iteration=iteration,
                loss=round(loss, 4),
                accuracy=round(accuracy, 4),
            )
            self._training = update
            self.emit("training", update)

        def run() -> None:
            try:
                head = job.run(progress)
            except Exception as e:  # reported to every client; the old head stays
                log.exception("training failed")
                self.submit(self._training_failed, str(e))
                return
            self.submit(self._training_done, learner, head)

        self._training_thread = threading.Thread(target=run, name="training", daemon=True)
        self._training_thread.start()
        return True

    def _training_done(self, learner: Learner, head) -> None:
        report = head.report
        self._training = None
        self.metrics.trainings.labels(learner.name).inc()
        self._last_training = {
            "state": "done",
            "method": learner.name,
            "iteration": report.iterations,
            "iterations": report.iterations,
            "loss": round(report.loss, 4),
            "accuracy": round(report.accuracy, 4),
            "ms": round(report.ms, 1),
        }
        if learner is self.learner:  # not switched away meanwhile
            learner.apply(head)
            self._smoothed = None
            self._last_training["per_class"] = per_class_accuracy(learner)
        self.emit("training", self._last_training)
        self._refresh_state()
        memory.trim()  # what the training thread allocated goes back to the system
        if self.learner.name == "auto" and not self._recorders:
            self._maybe_train()

    def _training_failed(self, message: str) -> None:
        self._training = None
        self._error()
        self.emit("training", {"state": "failed", "message": message})
        self.emit("error", {"code": "training_failed", "message": f"Training failed: {message}"})

    # ----- exhibit mode -------------------------------------------------------------------
    def wake(self) -> None:
        """A visitor touched the screen: the attract screen goes away."""
        self.call(lambda: None)  # call() itself counts as activity

    def operator_settings(self) -> dict:
        return dict(self._exhibit().config.values)

    def update_operator_settings(self, changes: dict) -> dict:
        """Saves the operator's changes and applies those that can change live.

        Returns:
          ``{"settings": {...}, "restart_needed": bool}``: a new camera or privacy choice takes
          effect at the next start.
        """
        exhibit = self._exhibit()
        try:
            values = exhibit.config.update(changes)
        except exhibit_mod.OperatorError as e:
            raise ServiceError("bad_setting", str(e), **e.fields) from None
        self.call(self._apply_operator, values, touch=False)
        restart = "camera" in changes or (
            "keep_visitor_data" in changes and values["keep_visitor_data"] == exhibit.privacy
        )
        return {"settings": values, "restart_needed": bool(restart)}

    def save_preset(self) -> dict:
        """The current project becomes the operator's preset (what idle resets restore)."""
        config = self._exhibit().config
        data = self.export_project(touch=False)
        exhibit_mod.save_preset(config, data)
        self._preset = self._load_preset()
        self.call(self._refresh_state, touch=False)
        return {"classes": len(self._preset.classes), "examples": self._preset.examples}

    def restore_preset(self) -> dict:
        self._exhibit()
        return self.call(self._reset_to_preset, "operator", touch=False)

    def _exhibit(self):
        if self.exhibit is None:
            raise ServiceError("not_exhibit", "The kiosk is not in exhibit mode (--exhibit).", 404)
        return self.exhibit

    def _load_preset(self):
        data = exhibit_mod.preset_bytes(self.exhibit.config)
        if data is None:
            return None
        limits = bundle.Limits(max_examples=self.settings.max_examples)
        try:
            return bundle.read_bundle(data, running=self.extractor_id, limits=limits)
        except bundle.BundleError as e:
            log.error("the operator's preset cannot be used (%s): idle resets empty the kiosk", e)
            return None

    def _apply_operator(self, values: dict) -> None:
        if values.get("smoothing") is not None:
            self.smoothing = values["smoothing"]
        self.learner_options = {"unknown_quantile": values["unknown_quantile"]}
        if getattr(self, "learner", None) is not None:
            self.learner.set_unknown_quantile(values["unknown_quantile"])
            if values.get("method") in METHODS and values["method"] != self.learner.name:
                self._set_method(values["method"])
        if self.exhibit is not None:
            self.exhibit.timer.timeout = values["idle_minutes"] * 60.0
        if getattr(self, "_state_cache", None):
            self._refresh_state()

    def _exhibit_tick(self) -> None:
        exhibit = self.exhibit
        if self._touched:
            self._touched = False
            exhibit.timer.touch()
            if exhibit.attract:
                exhibit.attract = False
                self._refresh_state()
        elif exhibit.timer.expired() and not self._recorders:
            log.info("no touch for %.0f s: resetting for the next visitor", exhibit.timer.timeout)
            self._reset_to_preset("idle")

    def _reset_to_preset(self, reason: str) -> dict:
        if self._preset is not None:
            result = self._import_project(self._preset)
            self.metrics.resets.labels(reason).inc()
        else:
            self._reset(reason)
            result = {"classes": 0, "examples": 0, "method": self.learner.name}
        self.exhibit.attract = True
        self._refresh_state()
        return result

    def _notices(self) -> list:
        notices = []
        if self.settings.tpu != "off" and self.extractor.backend != "edgetpu":
            notice = getattr(self.extractor, "notice", "")
            entry = {
                "code": "edgetpu_failed" if notice else "no_edgetpu",
                "message": notice or "No Edge TPU: the camera runs on the CPU (slower).",
            }
            probe = getattr(self.extractor, "probe", None)
            if notice and probe is not None and not probe.ok:
                entry.update(outcome=probe.outcome, detail=probe.diagnosis)
            notices.append(entry)
        if self.fault:
            notices.append({"code": "extractor_failed", "message": FAULT_MESSAGE})
        if self.exhibit is not None and self.exhibit.privacy:
            notices.append({"code": "privacy", "message": "Nothing you show the camera is saved."})
        return notices

    def _error(self) -> None:
        self.errors += 1
        self.metrics.errors.inc()

    # ----- state --------------------------------------------------------------------------
    def _rebuild(self, method: str) -> Learner:
        learner = make_learner(method, **self.learner_options)
        rows = self.store.classes()
        for row in rows:
            learner.add_class(row.id)
        ids, class_ids, x = self.store.examples()
        for row in rows:
            mask = class_ids == row.id
            if mask.any():
                learner.add(row.id, x[mask], ids[mask])
        log.info("learner %s rebuilt: %d classes, %d examples", method, len(rows), len(ids))
        return learner

    def _refresh_state(self, broadcast: bool = True) -> None:
        self._version += 1
        rows = self.store.classes()
        recording = sorted({r.class_id for r in self._recorders.values()})
        public = {
            "version": self._version,
            "classes": [
                {
                    "id": r.id,
                    "name": r.name,
                    "color": r.color,
                    "examples": r.examples,
                    "recent": self.store.recent_examples(r.id, RECENT_THUMBNAILS),
                }
                for r in rows
            ],
            "method": self.learner.name,
            "needs_training": bool(self.learner.needs_fit),
            "training": self._training or self._last_training,
            "recording": recording,
            "backend": self.extractor.backend,
            "camera": {
                "status": self.camera.status,
                "reason": self.camera.status_reason,
                "name": self.camera.name,
                "notice": getattr(self.camera, "notice", ""),
            },
            "clients": len(self._clients),
            "limits": {
                "max_examples": self.settings.max_examples,
                "record_interval_ms": self.settings.record_interval_ms,
            },
            "thumbnails": self.settings.thumbnails,
            "pin_required": self.settings.pin is not None,
            "exhibit": self.exhibit.public() if self.exhibit is not None else None,
            "notices": self._notices(),
        }
        self._state_cache = {"public": public, "names": {r.id: r.name for r in rows}}
        self._clients_dirty = False  # the count is in this state
        if broadcast:
            self.emit("state", public)


def per_class_accuracy(learner: Learner) -> Dict[str, float]:
    """Share of each class's own examples that the learner now puts in that class."""
    data = learner.dataset()
    if len(data.x) == 0:
        return {}
    top = learner.predict(data.x).top
    result = {}
    for index, class_id in enumerate(data.class_ids):
        mask = data.labels == index
        if mask.any():
            result[str(class_id)] = round(float(np.mean(top[mask] == index)), 4)
    return result


def _name(name) -> str:
    if not isinstance(name, str):
        raise ServiceError("bad_name", "A class name must be text.")
    return name


def _method(method) -> str:
    if not isinstance(method, str) or method not in METHODS:
        given = f" {method[:40]!r}" if isinstance(method, str) else ""
        raise ServiceError("bad_method", f"Unknown method{given}: use {', '.join(METHODS)}.")
    return method


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServiceError("bad_request", f"{what} must be a whole number.")
    return value


def _store_error(e: store_mod.StoreError) -> ServiceError:
    for kind, code, status in (
        (store_mod.NotFound, "not_found", 404),
        (store_mod.NameTaken, "name_taken", 409),
        (store_mod.InvalidName, "bad_name", 400),
        (store_mod.WriteFailed, "storage", 507),
    ):
        if isinstance(e, kind):
            return ServiceError(code, str(e), status, **e.fields)
    return ServiceError("bad_request", str(e), 400)
