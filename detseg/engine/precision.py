"""Mixed precision that heals itself, gradient clipping, and the optimiser step in one place."""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Sequence

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)


class TrainingStopped(RuntimeError):
    """The run cannot go on (its message is one line); the last good checkpoint is left untouched."""


class NonFiniteLossError(TrainingStopped):
    """A NaN/inf loss or gradient in fp32 (or non-finite weights)."""


class Precision:
    """Autocast context, loss scaling and non-finite step handling for one run.

    * ``amp="auto"`` on CUDA: bf16 autocast when the GPU supports it (no scaler needed), else fp16
      with a ``GradScaler``; ``"bf16"``/``"fp16"`` force one. CPU always runs fp32.
    * A non-finite loss under mixed precision (and a non-finite gradient under bf16) skips the
      step and is counted; after ``max_nonfinite`` such steps the run switches itself to fp32 and
      logs why (instead of training on into a NaN model, or asking users to maintain an op
      allow-list). fp16 gradient overflows are not counted: the scaler skips those steps and
      lowers its scale, which is how it finds its scale.
    * In fp32 a non-finite loss or gradient raises :class:`NonFiniteLossError`
      (``on_nonfinite="error"``) or skips the step (``"skip"``), until ``max_nonfinite`` steps
      were skipped: then it raises too, since a run that keeps producing NaNs has diverged.
    * A fall-back in the middle of an accumulation window unscales the fp16 gradients summed so
      far at once, so the window's later (fp32) gradients add to them at the same scale.

    Args:
        amp: ``auto``, ``bf16``, ``fp16`` or ``off``.
        device: the training device.
        max_nonfinite: skipped steps tolerated before falling back to fp32 (mixed precision) or
            stopping (fp32 with ``on_nonfinite="skip"``).
        on_nonfinite: fp32 policy, ``error`` or ``skip``.
        params: the trained parameters (their gradients are unscaled at a fall-back).
    """

    def __init__(self, amp: str, device: torch.device, max_nonfinite: int = 3, on_nonfinite: str = "error",
                 params: Sequence[nn.Parameter] = ()) -> None:
        self.device = device
        self.dtype: torch.dtype | None = None
        if device.type == "cuda" and amp != "off":
            bf16 = amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported())
            self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.max_nonfinite = max_nonfinite
        self.on_nonfinite = on_nonfinite
        self.skipped = 0
        self.params = list(params)
        self.fell_back = False  # switched to fp32 by itself (kept on resume)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        """Context for the forward pass and loss."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def check_loss(self, losses: dict[str, Tensor], where: str, total: Tensor | None = None) -> bool:
        """True when the summed loss is finite; otherwise count/skip, fall back or raise.

        ``total``: the value to judge, when it is not ``sum(losses)`` (under DDP, the sum over
        ranks, so that every rank takes the same decision).
        """
        total = sum(losses.values()) if total is None else total
        if torch.isfinite(total):
            return True
        terms = {k: round(v.item(), 6) for k, v in losses.items()}
        self._nonfinite(f"non-finite loss at {where}: {terms}")
        return False

    def step(self, optimizer: torch.optim.Optimizer, params: list[nn.Parameter], clip: float | None, where: str) -> bool:
        """Unscale, clip, and step unless the gradients are non-finite; returns whether it stepped.

        The gradient norm is checked in every precision: in fp32 a non-finite gradient follows
        ``on_nonfinite`` like a non-finite loss.
        """
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        stepped = True
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf)
        if not torch.isfinite(norm):
            if self.scaler is None:  # the fp16 scaler skips and rescales by itself
                optimizer.zero_grad(set_to_none=True)
                self._nonfinite(f"non-finite gradient norm at {where}")
                return False
            stepped = False
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        return stepped

    def _nonfinite(self, message: str) -> None:
        self.skipped += 1
        if self.dtype is None:
            if self.on_nonfinite == "error":
                raise NonFiniteLossError(message)
            if self.skipped >= self.max_nonfinite:
                raise NonFiniteLossError(f"{self.skipped} non-finite steps skipped (train.max_nonfinite_steps); "
                                         f"last: {message}")
            logger.warning("%s; step skipped (%d so far)", message, self.skipped)
            return
        logger.warning("%s under %s; step skipped (%d so far)", message, self.name, self.skipped)
        if self.skipped >= self.max_nonfinite:
            print(f"[precision] {self.skipped} non-finite {self.name} steps: switching this run to fp32 "
                  f"(last: {message})", flush=True)
            if self.scaler is not None:  # the window's gradients so far carry the loss scale
                grads = [p.grad for p in self.params if p.grad is not None]
                if grads:
                    torch._foreach_mul_(grads, 1.0 / self.scaler.get_scale())
            self.dtype, self.scaler, self.skipped, self.fell_back = None, None, 0, True

    def state_dict(self) -> dict:
        return {"dtype": self.name, "scaler": None if self.scaler is None else self.scaler.state_dict(),
                "skipped": self.skipped, "fell_back": self.fell_back}

    def load_state_dict(self, state: dict) -> None:
        """Restore, keeping an earlier fall-back to fp32 (a run that was fp32 by configuration
        takes the precision configured now, e.g. after ``train.device=cuda``)."""
        if state.get("fell_back"):
            self.dtype, self.scaler, self.fell_back = None, None, True
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.skipped = state.get("skipped", 0)
