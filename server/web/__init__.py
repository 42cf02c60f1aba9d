"""The web layer: Flask blueprint, Socket.IO handlers and the frame streamer.

Handlers validate, hand the work to the pipeline and reply; nothing below this package
imports Flask.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial

from engineio import packet as eio_packet
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from flask import Flask, jsonify, render_template, request
from flask_socketio import SocketIO
from socketio import packet as sio_packet
from werkzeug.exceptions import HTTPException

from server.errors import http_code
from server.web import api, events
from server.web.security import SocketRateLimit, host_allowed, origin_allowed
from server.web.streamer import Streamer

log = logging.getLogger(__name__)

MAX_SOCKET_MESSAGE = 1024 * 1024
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def init_web(app: Flask, *, pipeline, settings, camera) -> tuple:
    """Binds the REST API, the page and Socket.IO to ``app``; returns (socketio, streamer)."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.config["MAX_FORM_PARTS"] = settings.max_upload_files + 10
    app.register_blueprint(api.bp)

    @app.get("/")
    def index():
        return render_template("index.html")

    @app.get("/operator")
    def operator():
        return render_template("operator.html")

    @app.before_request
    def check_host():
        # DNS rebinding: refuse requests addressed to a name that is not the kiosk's
        if not host_allowed(request.environ, settings.allow_origins):
            return jsonify(
                {
                    "error": {
                        "code": "bad_host",
                        "message": "Address the kiosk by its IP address or host name.",
                    }
                }
            ), 421
        return None

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if request.path.startswith("/api/"):
            return jsonify({"error": {"code": http_code(e.name), "message": e.description}}), e.code
        return e

    _refuse_websocket_compression()
    _end_pings_with_their_socket()
    socketio = SocketIO(
        app,
        async_mode="threading",
        serializer=CheckedPacket,
        async_handlers=False,  # one thread per connection, never one per event
        cors_allowed_origins=partial(origin_allowed, allowed=settings.allow_origins),
        max_http_buffer_size=MAX_SOCKET_MESSAGE,
        ping_interval=10,
        ping_timeout=10,
    )
    app.wsgi_app = SocketRateLimit(app.wsgi_app)  # outside Socket.IO: refused before it starts
    _serialize_sends(socketio.server)
    _drop_undecodable_clients(socketio.server)
    streamer = Streamer(pipeline, socketio.server, settings)
    pipeline.emit = socketio.emit
    events.register(socketio, pipeline, streamer, settings, camera)
    return socketio, streamer


def _serialize_sends(server) -> None:
    """Makes every packet send atomic, across threads.

    python-socketio sends an event with binary data (our ``frame``) as several Engine.IO
    messages, one call each; in threading mode another thread's send (a ``state`` broadcast, an
    acknowledgement) can land between them, and the client then fails to decode the stream.
    Sends only put messages on a queue, so one lock costs nothing measurable.
    """
    lock = threading.RLock()
    send_packet, send_eio_packet = server._send_packet, server._send_eio_packet

    def locked_send_packet(*args, **kwargs):
        with lock:
            return send_packet(*args, **kwargs)

    def locked_send_eio_packet(*args, **kwargs):
        with lock:
            return send_eio_packet(*args, **kwargs)

    server._send_packet = locked_send_packet
    server._send_eio_packet = locked_send_eio_packet


# event names the Socket.IO protocol keeps for itself: a browser never emits them
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting"})


class CheckedPacket(sio_packet.Packet):
    """Socket.IO packets as a browser sends them; decoding any other raises, which closes the
    connection (``_drop_undecodable_clients``).

    - At most one binary attachment. Only ``frame`` is binary, with one JPEG; a header claiming
      more (say 10⁹) would make the server buffer every later message as an attachment.
    - No event named like a reserved one: python-socketio would run the ``disconnect`` (or
      ``connect``) handler for it while the connection stays open, so one client could make the
      kiosk miscount its browsers and stop its own stream.
    """

    def decode(self, encoded_packet):
        count = super().decode(encoded_packet)
        if (count or 0) > 1:
            raise ValueError(f"a packet with {count} attachments: at most 1 is accepted")
        if self.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            name = self.data[0] if isinstance(self.data, list) and self.data else None
            if isinstance(name, str) and name in RESERVED_EVENTS:
                raise ValueError(f"an event named {name!r}, which is reserved")
        return count


def _end_pings_with_their_socket() -> None:
    """engineio sends each ping from a new thread that first sleeps the ping interval (10 s), so
    a closed socket's thread lived on for up to 10 s: the worker's thread count read one more
    for every browser that had just reconnected. Here the wait ends when the socket closes.
    Applied to engineio 4's ``Socket`` (whose ``_send_ping`` this repeats, after the wait)."""
    import engineio.socket

    base = engineio.socket.Socket
    if getattr(base, "pings_end_with_socket", False) or not hasattr(base, "_send_ping"):
        return

    class Socket(base):
        pings_end_with_socket = True

        def __init__(self, *args, **kwargs):
            self._ended = threading.Event()
            super().__init__(*args, **kwargs)

        def close(self, *args, **kwargs):
            try:
                return super().close(*args, **kwargs)
            finally:
                self._ended.set()

        def _send_ping(self):
            if self._ended.wait(self.server.ping_interval):
                return  # closed meanwhile: no ping, no thread left waiting
            if not self.closing and not self.closed:
                self.last_ping = time.time()
                self.send(eio_packet.Packet(eio_packet.PING))

    engineio.socket.Socket = Socket


def _refuse_websocket_compression() -> None:
    """Never negotiate permessage-deflate: frames are JPEGs (compression gains nothing), and
    wsproto inflates a whole frame at once, so 200 KB could expand to 200 MB before the 1 MB
    message limit is checked."""
    import simple_websocket.ws
    from wsproto.extensions import PerMessageDeflate

    class Declined(PerMessageDeflate):
        def accept(self, offer):
            return None

    simple_websocket.ws.PerMessageDeflate = Declined


def _drop_undecodable_clients(server) -> None:
    """A client that sends a packet that does not decode (bad JSON, a bad type, more than one
    attachment, an event array of the wrong shape) is broken or hostile: disconnect it with one
    log line, not a traceback.

    Two layers decode: Engine.IO (``CheckedWebSocket``: an undecodable message would otherwise
    escape engineio's receive loop, leave the session open until its ping timed out and make
    gunicorn log a traceback) and Socket.IO (here: python-socketio raises IndexError, KeyError,
    TypeError or RecursionError for some shapes, which engineio logs and then ignores).
    Exceptions of our own handlers never reach this: Flask-SocketIO hands them to ``on_error``.
    """
    handle = server._handle_eio_message

    def handle_or_drop(eio_sid, data):
        try:
            return handle(eio_sid, data)
        except Exception as e:  # any undecodable packet; logged, client dropped
            log.warning("disconnecting a client that sent an undecodable packet: %s", _why(e))
            server.eio.disconnect(eio_sid)
            return None

    server.eio.on("message", handle_or_drop)
    server.eio._async = dict(server.eio._async, websocket=CheckedWebSocket)


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:120]}"


class CheckedWebSocket(SimpleWebSocketWSGI):
    """Engine.IO's WebSocket, closing the connection on a message that is not an Engine.IO
    packet (empty, an unknown type character, bad base64, nesting too deep to parse)."""

    def wait(self):
        data = super().wait()
        if data is not None:
            try:
                eio_packet.Packet(encoded_packet=data)
            except Exception as e:  # any undecodable packet; logged, closed
                log.warning("disconnecting a client that sent an undecodable packet: %s", _why(e))
                raise ValueError("an undecodable Engine.IO packet") from None
        return data
