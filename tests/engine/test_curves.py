"""curves.png: one panel per kind of curve, legends inside the figure, no per-class curves."""

import math

import matplotlib.pyplot as plt
import pytest

from detseg.engine.curves import curve_groups, curves_figure, plot_curves

STATS = ("mAP", "mAP50", "mAP75", "mAP_s", "mAP_m", "mAP_l", "AR1", "AR10", "AR100", "AR_s", "AR_m", "AR_l")
CLASSES = [f"class {i}" for i in range(80)]


def mask_rcnn_rows(epochs=6):
    """A Mask R-CNN log: train loss and lr every epoch; val terms, COCO stats and per-class AP every 2nd."""
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "train/loss": 2 / e, "lr": 0.003 / e}
        if e % 2 == 0:
            terms = ("rpn_cls", "rpn_box", "roi_cls", "roi_box", "mask")
            row.update({f"val/loss_{t}": 0.1 * i / e for i, t in enumerate(terms, 1)})
            row["val/loss"] = 1.5 / e
            for t in ("bbox", "segm"):
                row.update({f"{t}/{s}": 0.5 - 0.2 / e for s in STATS})
                row.update({f"{t}/f1_best": 0.4, f"{t}/f1_threshold": 0.3})
                for c in CLASSES:
                    row.update({f"{t}/AP/{c}": 0.3, f"{t}/AP50/{c}": 0.5, f"{t}/f1_threshold/{c}": 0.2})
        rows.append(row)
    return rows


def segmenter_rows():
    return [{"epoch": e, "train/loss": 1 / e, "lr": 0.01, "val/loss_seg": 0.8 / e, "val/loss_dice": 0.1 / e,
             "val/loss": 0.9 / e, "miou": 0.5, "pixel_acc": 0.9, "mean_acc": 0.6, "iou/background": 0.9,
             "iou/circle": math.nan} for e in (1, 2, 3)]


def classifier_rows():
    return [{"epoch": e, "train/loss": 1 / e, "lr": 0.002, "val/loss_cls": 1 / e, "val/loss": 1 / e,
             "accuracy": 0.9, "accuracy/circle": 0.8, "skipped_images": 1} for e in (1, 2)]


def test_mask_rcnn_log_groups_by_kind_without_per_class_keys():
    groups = curve_groups(mask_rcnn_rows())
    assert list(groups) == ["loss", "loss terms", "box (bbox/)", "mask (segm/)", "learning rate"]
    assert groups["loss"] == ["train/loss", "val/loss"]
    assert len(groups["loss terms"]) == 5 and groups["learning rate"] == ["lr"]
    assert groups["box (bbox/)"] == [f"bbox/{s}" for s in ("mAP", "mAP50", "mAP75", "mAP_s", "mAP_m", "mAP_l",
                                                             "AR100", "f1_best")]
    assert all(k.startswith("segm/") for k in groups["mask (segm/)"])


def test_segmenter_and_classifier_panels():
    assert list(curve_groups(segmenter_rows())) == ["loss", "loss terms", "segmentation", "learning rate"]
    assert curve_groups(segmenter_rows())["segmentation"] == ["miou", "pixel_acc", "mean_acc"]
    # a single loss term is the total again: no panel for it; skipped_images is bookkeeping
    assert curve_groups(classifier_rows()) == {"loss": ["train/loss", "val/loss"], "classification": ["accuracy"],
                                               "learning rate": ["lr"]}


@pytest.mark.parametrize("rows", [mask_rcnn_rows(), segmenter_rows(), classifier_rows()],
                         ids=["mask_rcnn", "segmenter", "classifier"])
def test_one_axes_per_group_and_every_legend_inside_the_figure(rows):
    groups = curve_groups(rows)
    fig = curves_figure(rows)
    try:
        fig.canvas.draw()
        assert [ax.get_title() for ax in fig.axes] == list(groups)
        assert not fig.legends  # no figure-level legend: each axes carries its own
        box = fig.bbox
        for ax, keys in zip(fig.axes, groups.values()):
            legend = ax.get_legend()
            assert [t.get_text() for t in legend.get_texts()] == keys
            inside = legend.get_window_extent()
            assert box.x0 <= inside.x0 and inside.x1 <= box.x1 and box.y0 <= inside.y0 and inside.y1 <= box.y1
    finally:
        plt.close(fig)


def test_plot_curves_writes_a_png(tmp_path):
    plot_curves(mask_rcnn_rows(), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
