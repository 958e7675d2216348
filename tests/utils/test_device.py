import pytest
import torch

from detseg.utils.device import resolve_device


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu0'"):
        resolve_device("tpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_resolve_device_without_cuda_names_the_fix():
    with pytest.raises(ValueError, match="no CUDA GPU .* use cpu or auto"):
        resolve_device("gpu")
