"""The allocator tuning of server.memory takes effect on glibc (this machine's libc)."""

import platform

import pytest

from server import memory

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc; this is not glibc"
)


@glibc
def test_glibc_accepts_two_arenas_and_a_trim():
    assert memory.limit_arenas() is True
    big = [bytearray(64 * 1024) for _ in range(200)]  # ~13 MB on the heap, then freed
    del big
    assert memory.trim() is True  # the freed 13 MB went back to the system
