"""Datasets: COCO-format loading and the embedded synthetic shapes set."""
