"""Sends processed frames (at most ``stream_fps`` a second) to every client, at its own pace.

The JPEG is encoded once per frame and shared by all clients. Each ``frame`` event asks for an
acknowledgement; a client with two frames unacknowledged gets no new frame (nor prediction)
until it acknowledges one, so a slow phone never builds a backlog and never slows the others.
A client that acknowledges nothing for ``ack_timeout_s`` is disconnected.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import Dict, Optional

from PIL import Image

from server.web.security import TokenBucket

log = logging.getLogger(__name__)

MAX_UNACKED = 2


class _Client:
    __slots__ = ("unacked", "last_ack", "sent", "acked")

    def __init__(self, now: float):
        self.unacked = 0
        self.last_ack = now
        self.sent = 0
        self.acked = 0


def encode_jpeg(image, width: int, quality: int) -> bytes:
    """The frame (HxWx3 uint8 RGB) as a JPEG at most ``width`` pixels wide."""
    picture = Image.fromarray(image)
    if picture.width > width:
        picture = picture.resize(
            (width, round(picture.height * width / picture.width)), Image.BILINEAR
        )
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


class Streamer:
    """One thread: waits for the pipeline's newest frame and fans it out.

    Args:
      pipeline: a ``server.pipeline.Pipeline`` (its ``frames`` slot is read).
      server: the python-socketio server (``SocketIO.server``).
      settings: the ``Settings`` (stream width, JPEG quality, ack timeout).
    """

    def __init__(self, pipeline, server, settings, clock=time.monotonic):
        self.pipeline = pipeline
        self.server = server
        self.settings = settings
        self.clock = clock
        self._clients: Dict[str, _Client] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.frames_encoded = 0
        # at most stream_fps: a camera faster than the screens need costs no encoding or
        # sending; a burst of 2 lets a 30 fps camera's jitter (a late frame, then an early
        # one) through at 30
        self._pace = TokenBucket(settings.stream_fps, 2, clock)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="streamer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def add(self, sid: str) -> None:
        with self._lock:
            self._clients[sid] = _Client(self.clock())

    def remove(self, sid: str) -> None:
        with self._lock:
            self._clients.pop(sid, None)

    def stats(self) -> dict:
        with self._lock:
            return {
                sid: {"sent": c.sent, "acked": c.acked, "unacked": c.unacked}
                for sid, c in self._clients.items()
            }

    def _ack(self, sid: str) -> None:
        with self._lock:
            client = self._clients.get(sid)
            if client is not None:
                client.unacked = max(0, client.unacked - 1)
                client.acked += 1
                client.last_ack = self.clock()

    def _run(self) -> None:
        seen = 0
        while not self._stop.is_set():
            seen, published = self.pipeline.frames.get(after=seen, timeout=0.5)
            self._drop_stalled()
            if published is None:
                continue
            try:
                self._send(published)
            except Exception:  # one bad frame must not end the stream
                log.exception("could not stream frame %d", published.index)

    def _send(self, published) -> None:
        if not self._pace.take():
            return
        with self._lock:
            ready = [sid for sid, c in self._clients.items() if c.unacked < MAX_UNACKED]
            behind = [sid for sid, c in self._clients.items() if c.unacked >= MAX_UNACKED]
            for sid in ready:
                client = self._clients[sid]
                client.unacked += 1
                client.sent += 1
        if not ready:
            return
        jpeg = encode_jpeg(published.image, self.settings.stream_width, self.settings.jpeg_quality)
        self.frames_encoded += 1
        # the same prediction for everyone: one broadcast, encoded once, skips who is behind
        self.server.emit("prediction", published.prediction, skip_sid=behind)
        payload = {"index": published.index, "jpeg": jpeg}
        for sid in ready:  # one packet each: each carries its own acknowledgement id
            self.server.emit(
                "frame", payload, to=sid, callback=lambda *args, sid=sid: self._ack(sid)
            )

    def _drop_stalled(self) -> None:
        now = self.clock()
        with self._lock:
            stalled = [
                sid
                for sid, c in self._clients.items()
                if c.unacked and now - c.last_ack > self.settings.ack_timeout_s
            ]
            for sid in stalled:
                del self._clients[sid]
        for sid in stalled:
            log.warning(
                "client %s acknowledged no frame for %.0f s: disconnecting",
                sid,
                self.settings.ack_timeout_s,
            )
            self.server.disconnect(sid)
