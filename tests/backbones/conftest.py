"""Fixtures for backbone tests: torchvision reference models with non-trivial weights on disk."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Move BN statistics and affine parameters off their defaults, so parity tests can fail."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.75 + 0.5 * torch.rand(n, generator=gen))
                m.weight.copy_(0.75 + 0.5 * torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))


@pytest.fixture
def saved_weights(tmp_path):
    """``save(model_or_torchvision_name, **kwargs) -> (model in eval mode, path of its state dict)``.

    A name builds a randomly initialised torchvision classifier (seed 0); either way BN is
    randomized first so that a wrong mapping of statistics shows up in the outputs.
    """
    def save(model: nn.Module | str, **kwargs) -> tuple[nn.Module, str]:
        torch.manual_seed(0)
        name = model if isinstance(model, str) else type(model).__name__.lower()
        if isinstance(model, str):
            model = getattr(torchvision.models, model)(weights=None, **kwargs)
        randomize_bn(model)
        path = str(tmp_path / f"{name}.pth")
        torch.save(model.state_dict(), path)
        return model.eval(), path
    return save
