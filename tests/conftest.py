"""Shared fixtures and visible skips for the markers declared in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# One intra-op thread per test process: on a 2-core CI machine the default (all cores) makes
# concurrent work thrash and runs the tiny test models 10x slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
COCO128 = REPO.parent / "shared" / "data" / "coco128"
ISBI2012 = REPO.parent / "shared" / "data" / "isbi2012_membrane"


def pytest_collection_modifyitems(config, items):
    no_gpu = pytest.mark.skip(reason="needs a CUDA device")
    no_coco = pytest.mark.skip(reason=f"coco128 not found at {COCO128}")
    no_isbi = pytest.mark.skip(reason=f"isbi2012_membrane not found at {ISBI2012}")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        if "coco128" in item.keywords and not COCO128.is_dir():
            item.add_marker(no_coco)
        if "isbi2012" in item.keywords and not ISBI2012.is_dir():
            item.add_marker(no_isbi)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (tools/ and configs/ live here)."""
    return REPO
