"""Timing for the benchmark scripts: the median of synchronised wall-clock runs after a warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_seconds(fn: Callable[[], object], iters: int, warmup: int, device: torch.device) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` untimed calls (cuDNN autotuning,
    compilation and allocator growth stay out); CUDA work is synchronised around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
