import torch

from detseg.data.geometry import Resize


def test_maps_back_crops_the_letterbox_padding_and_resamples_to_the_file():
    r = Resize.of((50, 100), 64, "letterbox")  # content 32 x 64 at pad_y 16
    maps = torch.zeros(1, 64, 64)
    maps[:, 16:48] = 1.0  # exactly the content
    maps[:, 16:48, :32] = 2.0  # its left half
    back = r.maps_back(maps)
    assert back.shape == (1, 50, 100) and back.dtype == torch.float32
    assert (back[0, :, :50] == 2).all() and (back[0, :, 50:] == 1).all()
    assert r.maps_back(torch.zeros(0, 64, 64, dtype=torch.bool)).shape == (0, 50, 100)
