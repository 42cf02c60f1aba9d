"""Who may talk to the kiosk: the page's own origin, and the origins the operator allowed."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence


def same_origin(environ: Mapping) -> Optional[str]:
    """The origin (``scheme://host[:port]``) the request was addressed to."""
    host = environ.get("HTTP_HOST")
    if not host:
        return None
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def origin_allowed(origin: Optional[str], environ: Mapping, allowed: Sequence[str]) -> bool:
    """Whether a request with this ``Origin`` header may change things or open a socket.

    Browsers send Origin on every cross-site request that could change state, so a request
    without one comes from a program (curl, python-socketio), which CSRF cannot forge.
    """
    if origin is None:
        return True
    return origin == same_origin(environ) or origin in allowed
