"""Shared test fixtures. Tests run on CPU in float32 with tiny configs."""

from __future__ import annotations

import os

import pytest
import torch

# Session servers for every test module: S3-compatible (moto) and Prefect, both on 127.0.0.1.
pytest_plugins = ["tests.s3_server", "tests.prefect_server"]

# Keep CPU tests deterministic and quiet.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


def pytest_configure(config):
    import tests.prefect_server

    tests.prefect_server.PYTEST_CONFIG = config  # say(): progress lines of the long tests, past the capture
