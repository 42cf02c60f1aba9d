"""The REST API: the same service layer as the socket handlers, over JSON and multipart.

=========================================  ================================================
``GET /api/state``                         the ``state`` object of the Socket.IO protocol
``POST /api/classes``  ``{"name"}``        201 + ``{"id", "name", "color", "examples"}``
``PATCH /api/classes/<id>``  ``{"name"}``  the renamed class
``DELETE /api/classes/<id>``               204 (PIN: header ``X-Pin``)
``POST /api/classes/<id>/examples``        multipart field ``image`` (one or more files)
                                           → ``{"added": n}``
``DELETE /api/examples/<id>``              204
``GET /api/examples/<id>/thumbnail``       the example's JPEG thumbnail
``POST /api/train``  ``{"method"?}``       202 + the training that started
``POST /api/reset``                        204 (PIN: header ``X-Pin``)
``POST /api/predict``                      multipart field ``image`` → ``{"label",
                                           "class_id", "scores", "unknown"}``
``GET /api/export/model.tflite``           the classifier as one TFLite model; query
                                           ``target=cpu`` (default) or ``edgetpu``; 409
                                           when there is nothing (trained) to export
``GET /api/export/labels.txt``             its labels, one ``index name`` a line
``GET /api/project``                       the whole project as a zip (``server.bundle``)
``POST /api/project``                      multipart field ``file``: replaces the whole
                                           project, or nothing (PIN: header ``X-Pin``)
                                           → ``{"classes", "examples", "method"}``
``GET /api/join``                          ``{"urls": ["http://192.168.1.20:5000/"]}``
``GET /api/join.svg``                      a QR code of the first of those URLs
``GET /metrics``                           Prometheus text format
``GET|PUT /api/operator``                  exhibit mode: the operator's settings (``X-Pin``)
``POST /api/operator/preset``              the current project becomes the preset (``X-Pin``)
``POST /api/operator/preset/restore``      back to the preset now (``X-Pin``)
``POST /api/operator/restart``             restart the server process (``X-Pin``)
``GET /healthz``                           ``{"status": "ok", "backend", "camera", "fps",
                                           "clients", "classes", "examples"}``; 503 with
                                           ``"status": "failed"`` and ``"fault"`` when the
                                           extractor hangs or fails
=========================================  ================================================

Errors are ``{"error": {"code", "message"}}`` with a 4xx status; nothing changes. Some carry
a field the page words them with (``name_taken``: ``name``); codes and fields: ``server.errors``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from typing import List

import segno
from flask import Blueprint, current_app, jsonify, make_response, request
from PIL import Image, UnidentifiedImageError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from server import bundle, supervisor
from server.errors import ServiceError, http_code
from server.web import netinfo
from server.web.security import check_pin, origin_allowed

log = logging.getLogger(__name__)

MAX_PIXELS = 4096 * 4096
# gunicorn takes a worker's exit code 3 (boot error) or 4 (app load error) as fatal and stops
# the whole server; any other code makes it start a fresh worker
RESTART_EXIT_CODE = 75

bp = Blueprint("api", __name__)


def _services():
    return current_app.extensions["teachable"]


@bp.before_request
def check_origin():
    """Refuses a state-changing request from another web site (CSRF)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if not origin_allowed(
        request.headers.get("Origin"), request.environ, _services().settings.allow_origins
    ):
        raise ServiceError("forbidden_origin", "Requests from another web site are refused.", 403)
    return None


@bp.errorhandler(ServiceError)
def service_error(e: ServiceError):
    return jsonify({"error": e.as_dict()}), e.status


@bp.errorhandler(RequestEntityTooLarge)
def too_large(e):
    limit = _services().settings
    message = (
        f"The upload is too large: at most {limit.max_upload_mb:g} MB and "
        f"{limit.max_upload_files} files."
    )
    return jsonify({"error": {"code": "too_large", "message": message}}), 413


@bp.errorhandler(HTTPException)
def http_error(e: HTTPException):
    return jsonify({"error": {"code": http_code(e.name), "message": e.description}}), e.code


def _json() -> dict:
    data = request.get_json(silent=True)
    if data is None and request.content_length:
        raise ServiceError("bad_request", "The body must be a JSON object.")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ServiceError("bad_request", "The body must be a JSON object.")
    return data


def decode_uploads(field: str = "image") -> List[Image.Image]:
    """The uploaded images of ``field``, decoded and checked; ServiceError for a bad one."""
    files = request.files.getlist(field)
    settings = _services().settings
    if not files:
        raise ServiceError("no_image", f"Send the photo(s) as multipart field {field!r}.")
    if len(files) > settings.max_upload_files:
        raise ServiceError(
            "too_many_files",
            f"At most {settings.max_upload_files} files per upload.",
            413,
            max=settings.max_upload_files,
        )
    images = []
    for f in files:
        try:
            with Image.open(f.stream) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ServiceError(
                        "too_large", f"{f.filename}: at most 4096 x 4096 pixels.", 413
                    )
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            raise ServiceError(
                "bad_image",
                f"{f.filename or 'a file'} is not a readable image.",
                file=f.filename or "",
            ) from None
    return images


@bp.get("/api/state")
def get_state():
    return jsonify(_services().pipeline.state())


@bp.post("/api/classes")
def add_class():
    return jsonify(_services().pipeline.add_class(_json().get("name"))), 201


@bp.patch("/api/classes/<int:class_id>")
def rename_class(class_id: int):
    return jsonify(_services().pipeline.rename_class(class_id, _json().get("name")))


@bp.delete("/api/classes/<int:class_id>")
def delete_class(class_id: int):
    check_pin(_services().settings, request.headers.get("X-Pin"))
    _services().pipeline.delete_class(class_id)
    return "", 204


@bp.post("/api/classes/<int:class_id>/examples")
def add_examples(class_id: int):
    images = decode_uploads()
    return jsonify({"added": _services().pipeline.add_images(class_id, images)})


@bp.delete("/api/examples/<int:example_id>")
def delete_example(example_id: int):
    _services().pipeline.delete_example(example_id)
    return "", 204


@bp.get("/api/examples/<int:example_id>/thumbnail")
def thumbnail(example_id: int):
    jpeg = _services().pipeline.thumbnail(example_id)
    if jpeg is None:
        raise ServiceError("not_found", f"Example {example_id} has no thumbnail.", 404)
    # revalidated by content: ids restart with a new data directory on the same address
    response = make_response(jpeg)
    response.headers["Content-Type"] = "image/jpeg"
    response.headers["Cache-Control"] = "no-cache"
    response.set_etag(hashlib.sha1(jpeg).hexdigest())
    return response.make_conditional(request)


@bp.post("/api/train")
def train():
    return jsonify(_services().pipeline.train(_json().get("method"))), 202


@bp.post("/api/reset")
def reset():
    check_pin(_services().settings, request.headers.get("X-Pin"))
    _services().pipeline.reset()
    return "", 204


@bp.post("/api/predict")
def predict():
    images = decode_uploads()
    if len(images) != 1:
        raise ServiceError("one_image", "Send exactly one photo to predict.")
    return jsonify(_services().pipeline.predict_image(images[0]))


@bp.get("/api/export/model.tflite")
def export_model():
    """The classifier for Coral/TFLite tools: base on the Edge TPU or CPU, last layer on CPU."""
    target = request.args.get("target", "cpu")
    exported = _services().pipeline.export_model(target)
    name = "model_edgetpu.tflite" if target == "edgetpu" else "model.tflite"
    body, status, headers = _download(exported.tflite, "application/octet-stream", name)
    if exported.head.note:  # k-NN: exported as its nearest class mean
        headers["X-Export-Note"] = exported.head.note
    return body, status, headers


@bp.get("/api/export/labels.txt")
def export_labels():
    labels = _services().pipeline.export_labels()
    return _download(labels.encode(), "text/plain; charset=utf-8", "labels.txt")


@bp.get("/api/project")
def export_project():
    data = _services().pipeline.export_project()
    name = time.strftime("teachable-project-%Y%m%d-%H%M%S.zip")
    return _download(data, "application/zip", name)


@bp.post("/api/project")
def import_project():
    settings = _services().settings
    check_pin(settings, request.headers.get("X-Pin"))
    # the --max-upload-mb limit (8 MB: about 2,400 examples with thumbnails) holds here too
    limit = min(bundle.Limits().max_bytes, settings.max_upload_bytes)
    try:
        files = request.files.getlist("file")
    except RequestEntityTooLarge:
        raise ServiceError(
            "too_large",
            f"A project file can have at most {limit / bundle.MIB:g} MB (--max-upload-mb).",
            413,
        ) from None
    if len(files) != 1:
        raise ServiceError("no_file", "Send the project file as one multipart field 'file'.")
    data = files[0].stream.read(limit + 1)
    return jsonify(_services().pipeline.import_project(data))


def _download(data: bytes, content_type: str, filename: str):
    return (
        data,
        200,
        {
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/api/join")
def join():
    settings = _services().settings
    return jsonify({"urls": netinfo.join_urls(settings.port, settings.host)})


@bp.get("/api/join.svg")
def join_qr():
    """A QR code of the kiosk's first LAN address, for phones to join."""
    settings = _services().settings
    urls = netinfo.join_urls(settings.port, settings.host)
    if not urls:
        raise ServiceError("no_lan", "The kiosk listens on this machine only (--host).", 404)
    out = io.BytesIO()
    segno.make(urls[0], error="m").save(
        out, kind="svg", scale=4, border=2, xmldecl=False, svgns=True, title=urls[0]
    )
    return out.getvalue(), 200, {"Content-Type": "image/svg+xml", "Cache-Control": "no-store"}


@bp.get("/healthz")
def healthz():
    """503 unless all is well, so that a plain HTTP check (curl -f) sees a fault."""
    health = _services().pipeline.health()
    return jsonify(health), 200 if health["status"] == "ok" else 503


@bp.get("/metrics")
def metrics():
    """Prometheus text format: frames, fps, latency histogram, backend, clients, ..."""
    from server.metrics import CONTENT_TYPE

    return _services().pipeline.metrics.render(), 200, {"Content-Type": CONTENT_TYPE}


# ----- exhibit mode: the operator's actions, all behind the PIN ----------------------------
def _operator():
    services = _services()
    check_pin(services.settings, request.headers.get("X-Pin"))
    return services.pipeline


@bp.get("/api/operator")
def operator_settings():
    pipeline = _operator()
    return jsonify(
        {"settings": pipeline.operator_settings(), "exhibit": pipeline.state()["exhibit"]}
    )


@bp.put("/api/operator")
def update_operator_settings():
    return jsonify(_operator().update_operator_settings(_json()))


@bp.post("/api/operator/preset")
def save_preset():
    return jsonify(_operator().save_preset()), 201


@bp.post("/api/operator/preset/restore")
def restore_preset():
    return jsonify(_operator().restore_preset())


@bp.post("/api/operator/restart")
def restart():
    """Ends this worker process; gunicorn (or systemd) starts a fresh one."""
    _operator()._exhibit()
    log.warning("the operator asked for a restart")
    supervisor.exit_later(RESTART_EXIT_CODE, planned=True)
    return jsonify({"restarting": True}), 202
