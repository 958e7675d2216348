"""benchmarks/real_data.py: every coco128 row's config loads, ``--only`` picks rows by folder
exactly, a run stopped early reads back with the epochs it reached, and ``--write-docs`` keeps notes."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys

import pytest
import yaml

from detseg.config import load_config


@pytest.fixture(scope="module")
def real_data(repo):
    spec = importlib.util.spec_from_file_location("_detseg_bench_real_data", repo / "benchmarks" / "real_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def coco_args(**kw):
    return argparse.Namespace(**{"image_size": 128, "batch_size": 2, "workers": 0, "device": "cpu", "seed": 0} | kw)


def test_every_coco128_row_builds_a_valid_config(real_data, repo):
    args = coco_args()
    entries = real_data.coco_entries(args)
    assert len({e.folder for e in entries}) == len(entries)
    archs = set()
    for e in entries:
        cfg = load_config(repo / "configs" / e.config, [*real_data.coco_overrides(args), *e.overrides])
        assert cfg.data.format == "coco" and cfg.model.num_classes == 80 and cfg.data.augment.hflip_prob == 0
        archs.add(cfg.model.arch)
    assert archs == {"faster_rcnn", "mask_rcnn", "yolo", "fast_rcnn", "rcnn", "yolov1"}


def test_only_picks_a_row_by_its_folder_exactly(real_data):
    entries = real_data.coco_entries(coco_args())
    assert [e.folder for e in entries if e.chosen(["rcnn"])] == ["rcnn"]
    assert {e.folder for e in entries if e.chosen(["R-CNN"])} == {"faster_rcnn", "mask_rcnn", "fast_rcnn", "rcnn"}
    assert all(e.chosen(None) for e in entries)


def test_a_run_stopped_early_reads_back_with_the_epochs_it_reached(real_data, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"train": {"epochs": 10}}))
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "train/loss", "bbox/mAP50"])
        writer.writeheader()
        for epoch, value in ((1, ""), (2, 0.2), (3, ""), (4, 0.5), (5, "")):
            writer.writerow({"epoch": epoch, "train/loss": 1.0 / epoch, "bbox/mAP50": value})
    assert real_data.finished_run(tmp_path, None, "bbox/mAP50") is None  # not all its epochs
    best = real_data.finished_run(tmp_path, None, "bbox/mAP50", partial=True)
    assert (best["epoch"], best["bbox/mAP50"], best["epochs_run"], best["epochs_planned"]) == (4, 0.5, 5, 10)


def test_write_docs_records_the_command_and_machine_and_keeps_hand_written_notes(real_data, tmp_path, monkeypatch):
    (tmp_path / "docs" / "images").mkdir(parents=True)
    (tmp_path / "docs" / "real_data.yaml").write_text(yaml.safe_dump({"coco128": {"rows": [], "notes": "why"}}))
    curve = tmp_path / "coco128_curves.png"
    curve.write_bytes(b"png")
    monkeypatch.setattr(real_data, "REPO", tmp_path)
    monkeypatch.setattr(sys, "argv", ["real_data.py", "--task", "coco128", "--out", "x", "--write-docs"])
    real_data.write_docs("coco128", {"data": "coco128", "setting": "a setting", "rows": [{"model": "m"}]}, curve, "cpu")
    entry = yaml.safe_load((tmp_path / "docs" / "real_data.yaml").read_text())["coco128"]
    assert list(entry) == ["command", "data", "setting", "rows", "picture", "hardware", "notes"]
    assert entry["command"] == "python benchmarks/real_data.py --task coco128"
    assert entry["rows"] == [{"model": "m"}] and entry["notes"] == "why" and "torch" in entry["hardware"]
    assert (tmp_path / "docs" / "images" / "coco128_curves.png").read_bytes() == b"png"


def test_curves_draws_finished_runs_labelled_by_folder_and_refuses_other_folders(real_data, tmp_path):
    for name, size, segm in (("faster_rcnn_coco128_overfit", 256, False), ("mask_rcnn_coco128_overfit", 256, True)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({"data": {"augment": {"image_size": size}}, "train": {"epochs": 4}}))
        with open(run / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["epoch", "bbox/mAP50", "segm/mAP50"])
            writer.writeheader()
            for epoch in (2, 4):
                writer.writerow({"epoch": epoch, "bbox/mAP50": epoch / 5, "segm/mAP50": epoch / 6 if segm else ""})
    out = tmp_path / "out"
    out.mkdir()
    args = argparse.Namespace(curves=[tmp_path / "faster_rcnn_coco128_overfit", tmp_path / "mask_rcnn_coco128_overfit"],
                              out=out, write_docs=False, device="cpu")
    real_data.main_curves(args)
    assert (out / "coco128_overfit_curves.png").stat().st_size > 1000
    args.curves = [tmp_path / "out"]
    with pytest.raises(SystemExit, match="not a training run"):
        real_data.main_curves(args)
