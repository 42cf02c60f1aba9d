"""The teachable camera kiosk.

``create_app(settings, camera=..., extractor=..., store=...)`` wires the parts together;
collaborators that are not given are built from the settings (tests pass fakes).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:  # imported lazily: the offline tools and the learners load no web stack
    from flask import Flask

    from server.settings import Settings

log = logging.getLogger(__name__)

__version__ = "0.1.0"


class Services(NamedTuple):
    """What the web layer reaches through ``app.extensions["teachable"]``."""

    settings: Settings
    pipeline: object
    streamer: object
    socketio: object
    store: object
    camera: object

    def close(self) -> None:
        self.streamer.stop()
        self.pipeline.stop()
        self.store.close()


def create_app(
    settings: Optional[Settings] = None,
    *,
    camera=None,
    extractor=None,
    store=None,
    start: bool = True,
    avoid_tpu: str = "",
    on_fault=None,
    probe_result=None,
) -> Flask:
    """Builds the Flask app, its Socket.IO server, the pipeline and the streamer.

    Args:
      settings: validated settings (defaults when None).
      camera, extractor, store: collaborators to use instead of those the settings describe.
      start: start the camera, pipeline and streamer threads now.
      avoid_tpu: a reason not to open a present Edge TPU (``server.supervisor``).
      probe_result: the Edge TPU probe ``python -m server`` ran before the worker started
        (``server.hw.probe``); without it, opening the extractor probes when it must.
      on_fault: called when the extractor hangs or keeps failing (``Pipeline``).
    """
    from flask import Flask

    from server import exhibit as exhibit_mod
    from server.hw.extractor import open_extractor
    from server.metrics import Metrics
    from server.pipeline import Pipeline
    from server.settings import Settings
    from server.store import Store
    from server.web import init_web

    settings = settings or Settings()
    exhibit = None
    camera_spec = settings.camera
    if settings.exhibit:
        config = exhibit_mod.OperatorConfig(settings.data_dir)
        exhibit = exhibit_mod.ExhibitSession(config, time.monotonic)
        camera_spec = config["camera"] or settings.camera
        if exhibit.privacy and store is None:
            # visitors' examples live in memory only: nothing reaches the disk
            store = Store(":memory:", keep_thumbnails=settings.thumbnails)
    store = store or Store(settings.db_path, keep_thumbnails=settings.thumbnails)
    extractor = extractor or open_extractor(
        settings.tpu,
        model_path=settings.model,
        data_dir=settings.data_dir,
        mirror=settings.mirror,
        avoid_tpu=avoid_tpu,
        edgetpu_lib=settings.edgetpu_lib,
        probe_result=probe_result,
    )
    camera = camera or _open_camera(camera_spec, settings)
    app = Flask(__name__, static_folder="../static", template_folder="../templates")
    pipeline = Pipeline(
        settings,
        camera=camera,
        extractor=extractor,
        store=store,
        emit=lambda *a, **k: None,
        metrics=Metrics(),
        exhibit=exhibit,
        on_fault=on_fault,
    )
    socketio, streamer = init_web(app, pipeline=pipeline, settings=settings, camera=camera)
    app.extensions["teachable"] = Services(settings, pipeline, streamer, socketio, store, camera)
    if start:
        pipeline.start()
        streamer.start()
    return app


def _open_camera(spec: str, settings: Settings):
    """The camera ``spec`` names; the ``--camera`` one if the operator's choice (exhibit mode)
    cannot be opened: a mistyped path must not keep the kiosk from starting."""
    from server.hw.cameras import OpenCVMissing, open_camera

    try:
        return open_camera(spec, fps=settings.camera_fps)
    except (ValueError, OpenCVMissing) as e:
        if spec == settings.camera:
            raise
        log.error(
            "the operator's camera %r cannot be used (%s): using %r", spec, e, settings.camera
        )
        return open_camera(settings.camera, fps=settings.camera_fps)
