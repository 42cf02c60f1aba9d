"""The kiosk's own addresses on the local network, for the "join from your phone" QR code."""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
from typing import List

log = logging.getLogger(__name__)

SIOCGIFADDR = 0x8915


def lan_addresses() -> List[str]:
    """IPv4 addresses of this machine's interfaces, private ranges first, loopback left out.

    Reads each interface's address with the SIOCGIFADDR ioctl (Linux): no packet is sent.
    """
    found = []
    try:
        interfaces = socket.if_nameindex()
    except OSError as e:
        log.warning("cannot list network interfaces: %s", e)
        return []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in interfaces:
            try:
                packed = fcntl.ioctl(
                    s.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode())
                )
            except OSError:
                continue  # no IPv4 address on this interface
            address = ipaddress.ip_address(packed[20:24])
            if not address.is_loopback and not address.is_link_local:
                found.append(address)
    found.sort(key=lambda a: (not a.is_private, str(a)))
    return [str(a) for a in found]


def join_urls(port: int, host_setting: str) -> List[str]:
    """The URLs a phone on the same network can open (none when bound to loopback only)."""
    if host_setting in ("0.0.0.0", "::", ""):
        hosts = lan_addresses()
    elif _is_ip(host_setting) and ipaddress.ip_address(host_setting).is_loopback:
        hosts = []
    else:
        hosts = [host_setting]
    return [f"http://{h}:{port}/" for h in hosts]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
