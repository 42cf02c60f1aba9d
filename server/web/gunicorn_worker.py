"""gunicorn's threaded worker, with finished connections closed off its main loop."""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker


def _closed(graceful: bool = False) -> None:
    """A connection's close once it is closed: nothing left to do."""


class KioskThreadWorker(ThreadWorker):
    """``gthread``, but a finished connection is closed by the thread that served it.

    gunicorn 27 closes a finished connection "gracefully" (RFC 9112 section 9.6: shut down
    writing, then read until the peer closes, for up to 2 s) in ``finish_request``, on the
    thread that accepts connections. A client that leaves its end open (a fuzzer, a phone that
    dropped off the network, a socket the server refused) then stopped the kiosk from accepting
    anybody, page loads and ``/healthz`` included, for 2 s. Here the pool's thread closes it;
    the main loop's close becomes a no-op. Versions whose ``handle`` answers differently (a
    tuple, before gunicorn 24) are left as they are.
    """

    def handle(self, conn):
        result = super().handle(conn)
        if result is None or result is False:  # the connection ends (not kept alive, not deferred)
            try:
                conn.close(graceful=True)
            except OSError as e:  # closed already (gunicorn does so on an SSL EOF)
                self.log.debug("closing a finished connection: %s", e)
            conn.close = _closed
        return result
