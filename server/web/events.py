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

import collections
import hmac
import logging
import math
import threading
import time
from typing import Callable, Dict, Optional

from flask import current_app, request
from flask_socketio import SocketIO, emit

from server.errors import ServiceError
from server.web.security import TokenBucket, origin_allowed

log = logging.getLogger(__name__)

OWNER_TIMEOUT_S = 3.0
EVENTS_PER_S = 20.0  # sustained events a connection may send (a held button sends 2)
EVENT_BURST = 40
FLOOD_LIMIT = 200  # refused events (refilled at FLOOD_RATE a second) before a connection
FLOOD_RATE = 10.0  # is dropped: what it sent after that is never read
SLOW_DOWN = {"code": "slow_down", "message": "Too many requests at once; slow down."}
PIN_TRIES = 5  # wrong PINs from one address within PIN_WINDOW_S before it has to wait
PIN_WINDOW_S = 60.0


class PinGuard:
    """Counts wrong PINs per address: after ``tries`` within ``window`` s, it must wait.

    A 4-digit PIN then takes days to guess instead of seconds.
    """

    def __init__(self, tries: int = PIN_TRIES, window: float = PIN_WINDOW_S, clock=time.monotonic):
        self.tries, self.window, self.clock = tries, window, clock
        self._wrong: Dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def check(self, pin: str, given, who: str) -> None:
        now = self.clock()
        with self._lock:
            for address in [a for a, w in self._wrong.items() if now - w[-1] > self.window]:
                del self._wrong[address]  # forget old mistakes: the table stays small
            wrong = self._wrong.get(who, collections.deque())
            while wrong and now - wrong[0] > self.window:
                wrong.popleft()
            if len(wrong) >= self.tries:
                wait = math.ceil(self.window - (now - wrong[0]))
                raise ServiceError(
                    "pin_locked", f"Too many wrong PINs: try again in {wait} s.", 429, seconds=wait
                )
            if not isinstance(given, str) or not given:
                pass  # no PIN given: not a guess
            elif hmac.compare_digest(given.encode(), pin.encode()):
                return
            else:
                wrong.append(now)
                self._wrong[who] = wrong
        raise ServiceError("pin_required", "This needs the operator's PIN.", 403)


def check_pin(settings, given) -> None:
    """Raises ServiceError unless the PIN is not required or ``given`` matches it.

    Called in a request (REST or Socket.IO event); wrong guesses are counted per address.
    """
    if settings.pin is None:
        return
    guard = current_app.extensions.setdefault("teachable_pins", PinGuard())
    guard.check(settings.pin, given, request.remote_addr or "?")


def _payload(data) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ServiceError("bad_request", "The message must be a JSON object.")
    return data


def register(socketio: SocketIO, pipeline, streamer, settings, camera) -> None:
    """Registers every Socket.IO handler on ``socketio``."""

    def drop_client() -> None:
        """Closes the current client's connection itself (Engine.IO), not only its Socket.IO
        session: nothing it sent after this is read."""
        server = socketio.server
        server.eio.disconnect(server.manager.eio_sid_from_sid(request.sid, "/"))

    # one page at a time sends the browser camera's frames: the first that sends, until it
    # stops for OWNER_TIMEOUT_S or leaves
    owner = {"sid": None, "last": 0.0}

    buckets = {}  # sid -> TokenBucket: a flood from one page must not queue up on the pipeline
    floods = {}  # sid -> TokenBucket of refusals: a connection that uses it up is dropped

    def count_refusal() -> None:
        """An event over the rate was refused: a connection that keeps going is closed."""
        flood = floods.setdefault(request.sid, TokenBucket(FLOOD_RATE, FLOOD_LIMIT))
        if not flood.take():  # no page does that: a program does
            log.warning("disconnecting a client that keeps sending too many events")
            drop_client()

    def handler(event: str, fn: Callable[[dict], Optional[dict]]):
        timer = pipeline.metrics.events.labels(event)

        def wrapped(data=None, *extra):
            with timer.time():
                bucket = buckets.setdefault(request.sid, TokenBucket(EVENTS_PER_S, EVENT_BURST))
                if event != "train" and not bucket.take():
                    count_refusal()
                    # answered through the acknowledgement only: a flood gets no extra messages
                    return {"ok": False, "error": SLOW_DOWN}
                try:
                    result = fn(_payload(data)) or {}
                except ServiceError as e:
                    emit("error", e.as_dict())
                    return {"ok": False, "error": e.as_dict()}
                return {"ok": True, **result}

        wrapped.__name__ = f"on_{event}"
        socketio.on_event(event, wrapped)

    @socketio.on("connect")
    def on_connect(auth=None):
        # Engine.IO checks the Origin already; checked again here so that no transport or
        # future option can skip it
        if not origin_allowed(
            request.headers.get("Origin"), request.environ, settings.allow_origins
        ):
            log.warning("refused a socket from origin %s", request.headers.get("Origin"))
            return False
        streamer.add(request.sid)
        pipeline.client_connected(request.sid)
        emit("state", pipeline.state())

    @socketio.on("disconnect")
    def on_disconnect(*args):
        buckets.pop(request.sid, None)
        floods.pop(request.sid, None)
        if owner["sid"] == request.sid:
            owner["sid"] = None
        streamer.remove(request.sid)
        pipeline.client_disconnected(request.sid)

    handler("add_class", lambda d: {"class": pipeline.add_class(d.get("name"))})
    handler(
        "rename_class", lambda d: {"class": pipeline.rename_class(d.get("class_id"), d.get("name"))}
    )

    def delete_class(d):
        check_pin(settings, d.get("pin"))
        pipeline.delete_class(d.get("class_id"))

    handler("delete_class", delete_class)
    handler("clear_class", lambda d: {"removed": pipeline.clear_class(d.get("class_id"))})
    handler("record_start", lambda d: pipeline.record_start(request.sid, d.get("class_id")))
    handler("record_stop", lambda d: pipeline.record_stop(request.sid))
    handler("undo", lambda d: {"removed": pipeline.undo()})
    handler("delete_example", lambda d: pipeline.delete_example(d.get("example_id")))
    handler("set_method", lambda d: pipeline.set_method(d.get("method")))

    def train(d):
        if not buckets[request.sid].take() and not pipeline.training_running:
            count_refusal()
            raise ServiceError(**SLOW_DOWN, status=429)
        if pipeline.training_running:  # answered here, never queued behind other commands
            raise ServiceError("busy", "A training is already running; wait for it to finish.", 409)
        return {"training": pipeline.train(d.get("method"))}

    handler("train", train)

    def reset(d):
        check_pin(settings, d.get("pin"))
        pipeline.reset()

    handler("reset", reset)
    handler("wake", lambda d: pipeline.wake())

    frame_timer = pipeline.metrics.events.labels("frame")

    @socketio.on("frame")
    def on_frame(data=None, *extra):
        with frame_timer.time():
            take_frame(data)

    def take_frame(data) -> None:
        now = time.monotonic()
        if owner["sid"] not in (None, request.sid) and now - owner["last"] < OWNER_TIMEOUT_S:
            emit(
                "error",
                {
                    "code": "camera_taken",
                    "message": "Another device is already sending its camera.",
                },
            )
            return
        owner.update(sid=request.sid, last=now)
        push = getattr(camera, "push", None)
        if push is None:
            emit(
                "error",
                {
                    "code": "not_browser_camera",
                    "message": "The kiosk uses its own camera; frames are not accepted.",
                },
            )
            return
        if not isinstance(data, (bytes, bytearray)):
            emit("error", {"code": "bad_frame", "message": "A frame must be a binary JPEG."})
            return
        try:
            push(bytes(data))
        except ValueError as e:
            emit("error", {"code": "bad_frame", "message": str(e)})

    @socketio.on_error_default
    def on_error(e):  # a handler bug: tell the client, keep the connection
        log.exception("socket handler failed")
        emit("error", {"code": "internal", "message": "Something went wrong."})
