"""Who may talk to the kiosk: the page's own origin, and the origins the operator allowed.

Two checks:

* **Origin** (cross-site request forgery): a browser page from another site may not change
  anything nor open a socket; the page's own origin and ``--allow-origin`` ones may.
* **Host** (DNS rebinding): a site can point its own name at the kiosk's address, and the
  browser then thinks kiosk pages are "same origin" with it. Requests must therefore name the
  kiosk by an IP address, ``localhost``, this machine's host name (also ``.local``), or a host
  of an allowed origin.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Mapping, Optional, Sequence
from urllib.parse import urlsplit


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
