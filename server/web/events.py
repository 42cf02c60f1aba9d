"""The Socket.IO protocol, and its handlers: validate, hand to the pipeline, reply.

Transport: Socket.IO 4 (Engine.IO 4) over WebSocket (long-polling as a fallback), default
namespace, threading mode; each connection's events are handled one after the other on that
connection's own thread. Connections are accepted from the page's own origin and the origins
given with ``--allow-origin``; clients that send no Origin header (programs) are accepted too.
An incoming message may be at most 1 MB.

Server → client
---------------
``state``
    Sent on connect and after every change, to every client::

        {"version": 12, "classes": [{"id": 1, "name": "rock", "color": "#0072b2",
         "examples": 40}, ...], "method": "auto", "needs_training": false,
         "training": null | {"state": "running"|"done"|"failed", ...}, "recording": [1],
         "backend": "cpu"|"edgetpu", "camera": {"status": "online"|"offline"|"starting",
         "reason": "...", "name": "folder:...", "notice": "..."}, "clients": 2,
         "limits": {"max_examples": 200, "record_interval_ms": 100}, "thumbnails": true,
         "pin_required": false, "exhibit": null | {"attract": true, "privacy": true,
         "idle_minutes": 3, "preset": true}, "notices": [{"code": "no_edgetpu",
         "message": "..."}]}

    Each class also carries ``"recent": [ids]``, its newest example ids (thumbnails below).

    ``version`` increases with every state; a client keeps the highest it has seen.
``frame``
    ``{"index": 1234, "jpeg": <binary JPEG>}``, with an acknowledgement callback: answer it
    (any value) once the frame is shown. At most two frames are unacknowledged per client;
    newer frames are skipped for a client that is behind, and a client that acknowledges
    nothing for 10 s is disconnected.
``prediction``
    Sent with each frame::

        {"frame": 1234, "class_id": 1 | null, "label": "rock" | null,
         "scores": {"1": 0.91, "2": 0.09}, "unknown": false, "similarity": 0.83,
         "nearest": [17, 22, 9], "method": "auto", "latency_ms": 21.5, "process_ms": 8.2}

    ``scores`` are smoothed over time; ``nearest`` are example ids of the top class (their
    thumbnails: ``GET /api/examples/<id>/thumbnail``).
``training``
    ``{"state": "running", "method": "backprop", "iteration": 100, "iterations": 500,
    "loss": 0.41, "accuracy": 0.93}``, then ``{"state": "done", ..., "ms": 180.0}`` or
    ``{"state": "failed", "message": "..."}``.
``record_skipped``
    To the recording client, at most once a second per reason:
    ``{"reason": "too_dark"|"too_blurry"|"full", "message": "..."}``.
``error``
    ``{"code": "name_taken", "message": "...", "name": "rock"}``, to the client whose
    request failed. Nothing changed. Codes and their fields: ``server.errors``.

Client → server
---------------
Every event takes one JSON object and, when the client asks for one, answers through the
acknowledgement callback with ``{"ok": true, ...}`` or ``{"ok": false, "error": {...}}`` (the
same error is also sent as an ``error`` event).

==================  ==========================================  ==========================
event               payload                                     answer
==================  ==========================================  ==========================
``add_class``       ``{"name": "rock"}``                        ``{"ok", "class"}``
``rename_class``    ``{"class_id": 1, "name": "paper"}``        ``{"ok", "class"}``
``delete_class``    ``{"class_id": 1, "pin"?}``                 ``{"ok"}``
``clear_class``     ``{"class_id": 1}``                         ``{"ok", "removed"}``
``record_start``    ``{"class_id": 1}``                         ``{"ok"}``
``record_stop``     ``{}``                                      ``{"ok"}``
``undo``            ``{}``                                      ``{"ok", "removed"}``
``delete_example``  ``{"example_id": 17}``                      ``{"ok"}``
``set_method``      ``{"method": "backprop"}``                  ``{"ok"}``
``train``           ``{"method"?: "backprop"}``                 ``{"ok", "training"}``
``reset``           ``{"pin"?}``                                ``{"ok"}``
``wake``            ``{}`` (a touch on the attract screen)       ``{"ok"}``
``frame``           binary JPEG (``browser`` camera only)       none
==================  ==========================================  ==========================

``pin`` is needed when the server runs with ``--pin``. Recording stops on ``record_stop``
and when the client disconnects.

Limits
------
A connection may send 20 events a second on average, 40 at once; beyond that each event is
answered ``{"ok": false, "error": {"code": "slow_down", ...}}`` at once, and a connection that
keeps going (200 refused events, refilled at 10 a second) is closed: what it sent after that is
never read. A packet that does not decode closes its connection too. One address may open 10
new connections a second (20 at once); more are answered HTTP 429 (``server.web.security``).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from flask import request
from flask_socketio import SocketIO, emit

from server.errors import ServiceError
from server.web.security import TokenBucket, check_pin, origin_allowed

log = logging.getLogger(__name__)

OWNER_TIMEOUT_S = 3.0
EVENTS_PER_S = 20.0  # sustained events a connection may send (a held button sends 2)
EVENT_BURST = 40
FLOOD_LIMIT = 200  # refused events (refilled at FLOOD_RATE a second) before a connection
FLOOD_RATE = 10.0  # is dropped: what it sent after that is never read
SLOW_DOWN = {"code": "slow_down", "message": "Too many requests at once; slow down."}
BUSY = "A training is already running; wait for it to finish."


def _payload(data) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ServiceError("bad_request", "The message must be a JSON object.")
    return data


def _error(code: str, message: str) -> None:
    emit("error", {"code": code, "message": message})


class Handlers:
    """The Socket.IO handlers of one app: each validates, hands to the pipeline, replies.

    Per connection it keeps a rate limit (``buckets``), a count of refused events
    (``floods``) and, for the ``browser`` camera, which page sends the frames (``owner``).
    """

    def __init__(self, socketio: SocketIO, pipeline, streamer, settings, camera):
        self.socketio, self.pipeline, self.streamer = socketio, pipeline, streamer
        self.settings, self.camera = settings, camera
        self.buckets: dict = {}  # sid -> TokenBucket: a flood must not queue up on the pipeline
        self.floods: dict = {}  # sid -> TokenBucket of refusals: one used up drops the client
        # one page at a time sends the browser camera's frames: the first that sends, until
        # it stops for OWNER_TIMEOUT_S or leaves
        self.owner = {"sid": None, "last": 0.0}

    # ----- the commands -------------------------------------------------------------------
    def commands(self) -> dict:
        """event name -> fn(payload) -> the answer's fields (or None)."""
        p = self.pipeline
        return {
            "add_class": lambda d: {"class": p.add_class(d.get("name"))},
            "rename_class": lambda d: {"class": p.rename_class(d.get("class_id"), d.get("name"))},
            "delete_class": self.delete_class,
            "clear_class": lambda d: {"removed": p.clear_class(d.get("class_id"))},
            "record_start": lambda d: p.record_start(request.sid, d.get("class_id")),
            "record_stop": lambda d: p.record_stop(request.sid),
            "undo": lambda d: {"removed": p.undo()},
            "delete_example": lambda d: p.delete_example(d.get("example_id")),
            "set_method": lambda d: p.set_method(d.get("method")),
            "train": self.train,
            "reset": self.reset,
            "wake": lambda d: p.wake(),
        }

    def delete_class(self, d: dict) -> None:
        check_pin(self.settings, d.get("pin"))
        self.pipeline.delete_class(d.get("class_id"))

    def train(self, d: dict) -> dict:
        running = self.pipeline.training_running
        if not self.buckets[request.sid].take() and not running:
            self.count_refusal()
            raise ServiceError(**SLOW_DOWN, status=429)
        if running:  # answered here, never queued behind other commands
            raise ServiceError("busy", BUSY, 409)
        return {"training": self.pipeline.train(d.get("method"))}

    def reset(self, d: dict) -> None:
        check_pin(self.settings, d.get("pin"))
        self.pipeline.reset()

    def wrap(self, event: str, fn: Callable[[dict], Optional[dict]]) -> Callable:
        """``fn`` behind the connection's rate limit, its errors answered (and emitted)."""
        timer = self.pipeline.metrics.events.labels(event)

        def wrapped(data=None, *extra):
            with timer.time():
                bucket = self.buckets.setdefault(
                    request.sid, TokenBucket(EVENTS_PER_S, EVENT_BURST)
                )
                if event != "train" and not bucket.take():
                    self.count_refusal()
                    # answered through the acknowledgement only: a flood gets no extra messages
                    return {"ok": False, "error": SLOW_DOWN}
                try:
                    result = fn(_payload(data)) or {}
                except ServiceError as e:
                    emit("error", e.as_dict())
                    return {"ok": False, "error": e.as_dict()}
                return {"ok": True, **result}

        wrapped.__name__ = f"on_{event}"
        return wrapped

    def count_refusal(self) -> None:
        """An event over the rate was refused: a connection that keeps going is closed."""
        flood = self.floods.setdefault(request.sid, TokenBucket(FLOOD_RATE, FLOOD_LIMIT))
        if not flood.take():  # no page does that: a program does
            log.warning("disconnecting a client that keeps sending too many events")
            self.drop_client()

    def drop_client(self) -> None:
        """Closes the current client's connection itself (Engine.IO), not only its Socket.IO
        session: nothing it sent after this is read."""
        server = self.socketio.server
        server.eio.disconnect(server.manager.eio_sid_from_sid(request.sid, "/"))

    # ----- connections --------------------------------------------------------------------
    def on_connect(self, auth=None):
        # Engine.IO checks the Origin already; checked again here so that no transport or
        # future option can skip it
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.environ, self.settings.allow_origins):
            log.warning("refused a socket from origin %s", origin)
            return False
        self.streamer.add(request.sid)
        self.pipeline.client_connected(request.sid)
        emit("state", self.pipeline.state())
        return None

    def on_disconnect(self, *args) -> None:
        self.buckets.pop(request.sid, None)
        self.floods.pop(request.sid, None)
        if self.owner["sid"] == request.sid:
            self.owner["sid"] = None
        self.streamer.remove(request.sid)
        self.pipeline.client_disconnected(request.sid)

    def on_error(self, e) -> None:  # a handler bug: tell the client, keep the connection
        log.exception("socket handler failed")
        _error("internal", "Something went wrong.")

    # ----- the browser camera -------------------------------------------------------------
    def on_frame(self, data=None, *extra) -> None:
        with self.pipeline.metrics.events.labels("frame").time():
            self.take_frame(data)

    def take_frame(self, data) -> None:
        now, owner = time.monotonic(), self.owner
        if owner["sid"] not in (None, request.sid) and now - owner["last"] < OWNER_TIMEOUT_S:
            return _error("camera_taken", "Another device is already sending its camera.")
        owner.update(sid=request.sid, last=now)
        push = getattr(self.camera, "push", None)
        if push is None:
            return _error(
                "not_browser_camera", "The kiosk uses its own camera; frames are not accepted."
            )
        if not isinstance(data, (bytes, bytearray)):
            return _error("bad_frame", "A frame must be a binary JPEG.")
        try:
            push(bytes(data))
        except ValueError as e:
            _error("bad_frame", str(e))
        return None


def register(socketio: SocketIO, pipeline, streamer, settings, camera) -> Handlers:
    """Registers every Socket.IO handler on ``socketio``."""
    handlers = Handlers(socketio, pipeline, streamer, settings, camera)
    socketio.on_event("connect", handlers.on_connect)
    socketio.on_event("disconnect", handlers.on_disconnect)
    for event, fn in handlers.commands().items():
        socketio.on_event(event, handlers.wrap(event, fn))
    socketio.on_event("frame", handlers.on_frame)
    socketio.on_error_default(handlers.on_error)
    return handlers
