"""Who may talk to the kiosk: the page's own origin, and the origins the operator allowed.

Three checks:

* **Origin** (cross-site request forgery): a browser page from another site may not change
  anything nor open a socket; the page's own origin and ``--allow-origin`` ones may.
* **Host** (DNS rebinding): a site can point its own name at the kiosk's address, and the
  browser then thinks kiosk pages are "same origin" with it. Requests must therefore name the
  kiosk by an IP address, ``localhost``, this machine's host name (also ``.local``), or a host
  of an allowed origin.
* **Connection rate**: one address may open at most ``SOCKETS_PER_S`` new sockets a second
  (``SOCKET_BURST`` at once). A page opens one and reconnects every few seconds at most; a
  program opening dozens a second (a fuzzer, a broken script) would take the CPU from the
  camera. More are answered 429 before any thread, socket or session exists for them.

And the operator's **PIN** (``check_pin``, for REST and Socket.IO alike): wrong guesses are
counted per address, so a 4-digit PIN takes days to guess instead of seconds.
"""

from __future__ import annotations

import collections
import functools
import hmac
import ipaddress
import json
import math
import socket
import threading
import time
from typing import Dict, Mapping, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

from flask import current_app, request

from server.errors import ServiceError

SOCKETS_PER_S = 10.0
SOCKET_BURST = 20
SOCKET_PATH = "/socket.io/"
PIN_TRIES = 5  # wrong PINs from one address within PIN_WINDOW_S before it has to wait
PIN_WINDOW_S = 60.0


def same_origin(environ: Mapping) -> Optional[str]:
    """The origin (``scheme://host[:port]``) the request was addressed to."""
    host = environ.get("HTTP_HOST")
    if not host:
        return None
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


@functools.lru_cache(maxsize=1)
def own_names() -> frozenset:
    """This machine's names, as a browser on the local network may address it."""
    names = {"localhost"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.update({name.lower(), name.split(".")[0].lower() + ".local"})
    return frozenset(names)


def _hostname(host_header: str) -> str:
    return (urlsplit("//" + host_header).hostname or "").lower()


def host_allowed(environ: Mapping, allowed_origins: Sequence[str]) -> bool:
    """Whether the Host header names this kiosk (see the module docstring)."""
    host = _hostname(environ.get("HTTP_HOST", ""))
    if not host:
        return True  # HTTP/1.0 programs; a browser always sends Host
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass  # a name, not an address: checked below
    if host in own_names() or host.endswith(".localhost"):
        return True
    return host in {(urlsplit(o).hostname or "").lower() for o in allowed_origins}


def origin_allowed(origin: Optional[str], environ: Mapping, allowed: Sequence[str]) -> bool:
    """Whether a request with this ``Origin`` header may change things or open a socket.

    Browsers send Origin on every cross-site request that could change state, so a request
    without one comes from a program (curl, python-socketio), which CSRF cannot forge.
    """
    if not host_allowed(environ, allowed):
        return False
    if origin is None:
        return True
    return origin == same_origin(environ) or origin in allowed


class TokenBucket:
    """Allows ``rate`` events a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.last = burst, clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.last) * self.rate >= self.burst


class SocketRateLimit:
    """WSGI middleware: new Socket.IO sessions from one address are limited to ``rate`` a
    second, ``burst`` at once; others are answered 429 (see the module docstring).

    A session's later requests (long-polling, its upgrade to a WebSocket) carry its ``sid``
    and are not counted.
    """

    def __init__(self, app, *, rate=SOCKETS_PER_S, burst=SOCKET_BURST, clock=time.monotonic):
        self.app, self.rate, self.burst, self.clock = app, rate, burst, clock
        self._buckets: Dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(SOCKET_PATH) and not self._allowed(environ):
            body = json.dumps(
                {
                    "error": {
                        "code": "slow_down",
                        "message": "Too many new connections from this device; slow down.",
                    }
                }
            ).encode()
            start_response(
                "429 Too Many Requests",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", "1"),
                ],
            )
            return [body]
        return self.app(environ, start_response)

    def _allowed(self, environ) -> bool:
        if "sid" in parse_qs(environ.get("QUERY_STRING", "")):
            return True  # a session that exists already
        address = environ.get("REMOTE_ADDR") or "?"
        with self._lock:
            if len(self._buckets) > 1000:  # forget addresses whose bucket has refilled
                now = self.clock()
                for key in [k for k, b in self._buckets.items() if b.full(now)]:
                    del self._buckets[key]
            bucket = self._buckets.get(address)
            if bucket is None:
                bucket = self._buckets[address] = TokenBucket(self.rate, self.burst, self.clock)
            return bucket.take()


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
