"""Shared fixtures: the read-only ``../shared`` folder beside the checkout, and the real model."""

from pathlib import Path

import pytest

from server import models
from server.hw.extractor import open_extractor

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (models and photos beside the checkout) is missing")
    return SHARED


@pytest.fixture(scope="session")
def digits_dir(shared_dir) -> Path:
    return shared_dir / "data" / "sign-language-digits"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, shared_dir) -> Path:
    """A data directory holding verified copies of the models, taken from the mirror."""
    data_dir = tmp_path_factory.mktemp("data")
    for info in models.KNOWN.values():
        models.locate(info, data_dir=data_dir, mirror=shared_dir / "models", download=False)
    return data_dir


@pytest.fixture(scope="session")
def extractor(model_dir):
    return open_extractor("off", data_dir=model_dir, download=False)
