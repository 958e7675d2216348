"""Ctrl-C that stops a run at a batch boundary, so the saved state is one the run really had.

A ``KeyboardInterrupt`` raised wherever the signal lands (inside a backward pass, half-way
through an optimiser update, while the next batch is being augmented) leaves gradients, optimiser
moments or random generators in a state no uninterrupted run passes through, and a resume from
it diverges from the straight run. :class:`StopRequest` turns the first Ctrl-C (SIGINT) into a
flag that the loop reads after each batch; a second Ctrl-C raises at once, for a loop that hangs.
"""

from __future__ import annotations

import os
import signal
import threading

import torch
import torch.distributed as dist


class StopRequest:
    """Context manager: SIGINT sets :attr:`requested` (the second one raises ``KeyboardInterrupt``).

    Forked DataLoader workers inherit the handler and ignore the signal (the terminal sends it to
    the whole process group): the main process decides, and its workers keep serving batches
    until it stops. Outside the main thread (where Python allows no handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._pid = os.getpid()
        self._previous = None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._pid = os.getpid()
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: a handler that prints can land inside tqdm's own write to stderr
        os.write(2, b"\n[train] Ctrl-C: stopping after this batch and saving last.pt (Ctrl-C again stops at once)\n")

    def agreed(self, device: torch.device) -> bool:
        """Whether to stop now; under DDP, when any rank was asked (all ranks must stop together)."""
        if not dist.is_initialized() or dist.get_world_size() == 1:
            return self.requested
        flag = torch.tensor([float(self.requested)], device=device)
        dist.all_reduce(flag)
        return bool(flag.item() > 0)
