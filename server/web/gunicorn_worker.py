"""gunicorn's threaded worker, with finished connections closed off its main loop."""

from __future__ import annotations

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


def _closed(graceful: bool = False) -> None:
    """A connection's close once it is closed: nothing left to do."""


class KioskThreadWorker(ThreadWorker):
    """``gthread``, but a finished connection is closed by the thread that served it.

    gunicorn 27 closes a finished connection "gracefully" (RFC 9112 section 9.6: shut down
    writing, then read until the peer closes, for up to 2 s) in ``finish_request``, on the
    thread that accepts connections. A client that leaves its end open (a fuzzer, a phone that
    dropped off the network, a socket the server refused) then stopped the kiosk from accepting
    anybody, page loads and ``/healthz`` included, for 2 s. Here the pool's thread closes it,
    and the main loop's close becomes a no-op. A WebSocket (the app took the socket over and
    ended with ``StopIteration``) has no HTTP response left to protect: it is closed at once,
    so no pool thread lingers and the pool does not grow when browsers reconnect. Versions
    whose ``handle`` answers differently (a tuple, before gunicorn 24) are left as they are.
    """

    def handle_request(self, req, conn):
        try:
            return super().handle_request(req, conn)
        except StopIteration:
            conn.taken_over = True  # a WebSocket, closed by its own protocol
            raise

    def handle(self, conn):
        result = super().handle(conn)
        if result is None or result is False:  # the connection ends (not kept alive, not deferred)
            try:
                if getattr(conn, "taken_over", False):
                    util.close(conn.sock)
                else:
                    conn.close(graceful=True)
            except OSError as e:  # closed already (gunicorn does so on an SSL EOF)
                self.log.debug("closing a finished connection: %s", e)
            conn.close = _closed
        return result
