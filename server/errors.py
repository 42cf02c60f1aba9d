"""Every code the server sends, in one place, and ``ServiceError``, which carries one.

The server tells programs and pages what went wrong with a stable ``code``; its ``message`` is an
English sentence for programs and logs. The page says the code in its own language
(``static/i18n/*.js``: ``error_<code>``, ``skip_<reason>``, ``notice_<code>``), filling in the
fields that travel next to code and message (``FIELDS``); ``tests/test_i18n.py`` checks that
every code below has a string in every language and that the server sends no other.

Where the codes travel:

* ``ERRORS``: Socket.IO ``error`` events and ``{"ok": false, "error": {...}}`` acknowledgements,
  and REST bodies ``{"error": {"code", "message", ...}}``;
* ``SKIP_REASONS``: ``record_skipped`` events' ``reason``;
* ``NOTICES``: ``state.notices[].code``.
"""

from __future__ import annotations

ERRORS = {
    # requests
    "bad_request": "the message or body is not what the event or route takes",
    "bad_name": "a class name that is not text, empty, too long or with control characters",
    "bad_method": "an unknown learning method, or one that cannot be exported",
    "bad_setting": "an invalid operator setting (field: setting, when one is to blame)",
    "bad_target": "an export target other than cpu or edgetpu",
    "not_found": "no such class or example (or an example without a thumbnail)",
    "name_taken": "another class has this name (field: name, the other class's)",
    "full": "a class would have more examples than --max-examples",
    "nothing_to_undo": "no recording to undo",
    "nothing_to_train": "no class has examples yet",
    "busy": "a training is already running",
    "slow_down": "too many events or new connections at once",
    "timeout": "the worker did not answer in time",
    "not_running": "the camera pipeline is not running",
    "storage": "the database refused or failed a change; nothing was saved",
    "internal": "a bug: something went wrong",
    # the PIN and who may ask
    "pin_required": "the PIN is needed, or the one given is wrong",
    "pin_locked": "too many wrong PINs (field: seconds, the wait)",
    "forbidden_origin": "a state-changing request from another web site",
    "bad_host": "the request names the kiosk by a host it does not answer to",
    "not_exhibit": "an operator action without --exhibit",
    "no_lan": "the kiosk listens on this machine only",
    # uploads
    "no_image": "no photo in the upload",
    "one_image": "/api/predict takes exactly one photo",
    "bad_image": "a file that is not a readable image (field: file, its name)",
    "too_large": "an upload or a photo is too large",
    "too_many_files": "too many files in one upload (field: max)",
    "no_file": "no project file in the upload",
    # the browser camera
    "camera_taken": "another device is already sending its camera",
    "not_browser_camera": "frames sent to a kiosk that uses its own camera",
    "bad_frame": "a frame that is not a (readable) JPEG",
    # a project file (server.bundle)
    "bad_bundle": "not a zip file, or a damaged one",
    "too_many_entries": "a project file with too many entries",
    "unexpected_entry": "a project file with an unknown file in it",
    "missing_entry": "a project file that lacks a file",
    "bad_entry": "a project file entry with a bad name",
    "too_large_entry": "a project file entry that is too large",
    "zip_bomb": "a project file that would unpack to far more than it holds",
    "bad_manifest": "a project file whose manifest.json is wrong",
    "newer_version": "a project file made by a newer kiosk",
    "too_many_classes": "a project with too many classes",
    "too_many_examples": "a project class with more examples than --max-examples",
    "bad_array": "a project file's examples or thumbnails are damaged",
    "wrong_model": "examples from another extractor model",
    # exporting a model (server.export)
    "no_classes": "nothing to export: no class has examples",
    "needs_training": "the backprop layer is not trained on the current examples",
    "bad_model": "the base model is not a usable TFLite model",
    "dim_mismatch": "the base model's output does not fit the learned layer",
    "no_schema": "the TFLite schema package for exporting is not installed",
    "model_missing": "the base model file cannot be found or read",
    # from the pipeline, unasked
    "extractor_failed": "the extractor stopped working: the kiosk restarts",
    "training_failed": "a training failed; the previous one stays",
    # HTTP errors werkzeug raises before a view runs (named after werkzeug's exception)
    "method_not_allowed": "HTTP 405",
    "request_entity_too_large": "HTTP 413 outside the API's own check",
    "requested_range_not_satisfiable": "HTTP 416 (a thumbnail asked for with a Range header)",
    "internal_server_error": "HTTP 500",
}

SKIP_REASONS = {
    "too_dark": "the frame is too dark to learn from",
    "too_blurry": "the frame is too blurred to learn from",
    "full": "the class is full",
}

NOTICES = {
    "no_edgetpu": "--tpu asked for an Edge TPU and there is none: the CPU runs the model",
    "edgetpu_failed": "an Edge TPU is there but could not be used: the CPU runs the model",
    "extractor_failed": "the extractor stopped working: the kiosk restarts",
    "privacy": "exhibit mode does not keep what visitors show",
}

FIELDS = {
    "name_taken": ("name",),
    "pin_locked": ("seconds",),
    "bad_image": ("file",),
    "too_many_files": ("max",),
    "bad_setting": ("setting",),
}
"""The fields an error carries next to ``code`` and ``message``, for the page's sentence.

A field is only there when the server knows it (``bad_setting`` names no setting when the body
is not an object), so the page's sentences do without where they must."""


class ServiceError(Exception):
    """A request that cannot be done: ``code`` for programs, the message for people.

    Args:
      code: one of ``ERRORS``; any other is refused (``ValueError``), so the list stays whole.
      message: an English sentence (what programs and logs show).
      status: the HTTP status of a REST answer.
      **fields: values the page's sentence needs (see ``FIELDS``), sent next to code and
        message.
    """

    def __init__(self, code: str, message: str, status: int = 400, **fields):
        if code not in ERRORS:
            raise ValueError(f"unknown error code {code!r}: add it to server.errors.ERRORS")
        unknown = set(fields) - set(FIELDS.get(code, ()))
        if unknown:
            raise ValueError(f"error {code!r} has no field(s) {', '.join(sorted(unknown))}")
        super().__init__(message)
        self.code, self.message, self.status, self.fields = code, message, status, fields

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, **self.fields}


def http_code(name: str) -> str:
    """The code of an HTTP error werkzeug raises, from its name: ``Not Found`` → ``not_found``.

    The ones the kiosk's routes can meet are in ``ERRORS``; a rarer one keeps its name too, and
    the page shows its message.
    """
    return name.lower().replace(" ", "_")
