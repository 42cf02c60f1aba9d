"""Fixtures of the reliability suite: one real server (gunicorn, folder camera) per module.

Every figure a test measures goes to one report (``$TEACHABLE_ARTIFACTS/reliability.json``,
else ``/tmp/teachable-artifacts/reliability.json``) and is printed (``pytest -s``).
"""

import pytest
from relhelp import start_server, write_report


@pytest.fixture(scope="session", autouse=True)
def reliability_report():
    yield
    write_report()


@pytest.fixture(scope="module")
def folder_camera(digits_dir):
    return f"folder:{digits_dir / '3'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, folder_camera, shared_dir):
    s = start_server(tmp_path_factory, folder_camera, shared_dir)
    yield s
    s.stop()
