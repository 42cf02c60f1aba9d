"""The web layer: Flask blueprint, Socket.IO handlers and the frame streamer.

Handlers validate, hand the work to the pipeline and reply; nothing below this package
imports Flask.
"""

from __future__ import annotations

from functools import partial

from flask import Flask, jsonify, render_template, request
from flask_socketio import SocketIO
from werkzeug.exceptions import HTTPException

from server.web import api, events
from server.web.security import origin_allowed
from server.web.streamer import Streamer

MAX_SOCKET_MESSAGE = 1024 * 1024


def init_web(app: Flask, *, pipeline, settings, camera) -> tuple:
    """Binds the REST API, the page and Socket.IO to ``app``; returns (socketio, streamer)."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.config["MAX_FORM_PARTS"] = settings.max_upload_files + 10
    app.register_blueprint(api.bp)

    @app.get("/")
    def index():
        return render_template("index.html")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if request.path.startswith("/api/"):
            return jsonify(
                {"error": {"code": e.name.lower().replace(" ", "_"), "message": e.description}}
            ), e.code
        return e

    socketio = SocketIO(
        app,
        async_mode="threading",
        async_handlers=False,  # one thread per connection, never one per event
        cors_allowed_origins=partial(origin_allowed, allowed=settings.allow_origins),
        max_http_buffer_size=MAX_SOCKET_MESSAGE,
        ping_interval=10,
        ping_timeout=10,
    )
    streamer = Streamer(pipeline, socketio.server, settings)
    pipeline.emit = socketio.emit
    events.register(socketio, pipeline, streamer, settings, camera)
    return socketio, streamer
