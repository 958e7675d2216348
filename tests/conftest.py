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


@pytest.fixture
def coco128_subset(tmp_path):
    """``make(n) -> overrides``: the first ``n`` coco128 images (by file name) as a COCO json in
    ``tmp_path``, given as train and val split overrides (train = val, the overfit check)."""
    import json

    def make(n: int) -> list[str]:
        data = json.loads((COCO128 / "annotations/instances.json").read_text())
        ids = {im["id"] for im in sorted(data["images"], key=lambda im: im["file_name"])[:n]}
        subset = {**data, "images": [im for im in data["images"] if im["id"] in ids],
                  "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
        path = tmp_path / f"coco128_first{n}.json"
        path.write_text(json.dumps(subset))
        return [f"data.{split}.{key}={value}" for split in ("train", "val")
                for key, value in (("images", COCO128 / "images"), ("annotations", path))]

    return make
