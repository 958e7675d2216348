"""Exact counts on hand-computable layers, AlexNet against its published cost, and the CLI."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import alexnet

from detseg.utils.summary import (
    LayerStats,
    ModelSummary,
    conv_output_size,
    conv_transpose_output_size,
    summarize,
)

REPO = Path(__file__).resolve().parents[2]


def test_single_conv_exact():
    s = summarize(nn.Conv2d(3, 8, 3, padding=1), input_size=(3, 32, 32))
    (layer,) = s.layers
    assert (layer.name, layer.type, layer.output_shape) == ("", "Conv2d", (1, 8, 32, 32))
    assert layer.params == s.total_params == s.trainable_params == 3 * 3 * 3 * 8 + 8 == 224
    assert layer.macs == s.total_macs == 3 * 3 * 3 * 8 * 32 * 32
    assert layer.ops == 0  # bias adds are ignored
    assert layer.flops == s.total_flops == 2 * 3 * 3 * 3 * 8 * 32 * 32
    assert layer.activations == 8 * 32 * 32
    assert s.activation_bytes == 4 * 8 * 32 * 32
    assert s.param_bytes == 4 * 224


def test_linear_exact():
    s = summarize(nn.Linear(20, 5), input_size=(20,))
    (layer,) = s.layers
    assert layer.output_shape == (1, 5)
    assert (layer.params, layer.macs, layer.activations) == (20 * 5 + 5, 20 * 5, 5)


def test_conv_transpose_counts_input_positions():
    # 4x5x5 -> 2x10x10; every one of the 4*5*5 input values meets C_out * 3 * 3 weights.
    deconv = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    s = summarize(deconv, input_size=(4, 5, 5))
    (layer,) = s.layers
    assert layer.output_shape == (1, 2, 10, 10)
    assert conv_transpose_output_size(5, 3, stride=2, padding=1, output_padding=1) == 10
    assert layer.macs == (4 * 5 * 5) * 2 * 3 * 3 == 1800
    assert layer.params == 4 * 2 * 3 * 3 + 2
    assert layer.activations == 2 * 10 * 10


def test_grouped_conv():
    s = summarize(nn.Conv2d(8, 16, 3, groups=4, bias=False), input_size=(8, 10, 10))
    (layer,) = s.layers
    assert layer.output_shape == (1, 16, 8, 8)
    assert layer.macs == 3 * 3 * (8 // 4) * 16 * 8 * 8 == 18432
    assert layer.params == 16 * (8 // 4) * 3 * 3 == 288


def test_elementwise_ops_and_in_place_memory():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )
    s = summarize(model, input_size=(3, 8, 8))
    assert [(l.name, l.type) for l in s.layers] == [
        ("0", "Conv2d"),
        ("1", "BatchNorm2d"),
        ("2", "ReLU"),
        ("3", "MaxPool2d"),
    ]
    conv, bn, relu, pool = s.layers
    assert conv.macs == 3 * 4 * 8 * 8
    assert (bn.macs, bn.ops, bn.params) == (0, 4 * 8 * 8, 8)  # one op per output element
    assert (relu.ops, relu.in_place) == (4 * 8 * 8, True)
    assert (pool.ops, pool.activations) == (4 * 8 * 8, 4 * 4 * 4)  # per *input* element
    assert s.total_flops == 2 * 3 * 4 * 8 * 8 + 3 * 4 * 8 * 8
    # The in-place ReLU output is the BN output's storage: not counted twice.
    assert s.activation_bytes == 4 * (256 + 256 + 64)


def test_no_work_leaves_are_skipped_and_shared_module_gets_two_rows():
    shared = nn.Linear(10, 10)
    model = nn.Sequential(nn.Flatten(), shared, nn.Dropout(), nn.Identity(), shared)
    s = summarize(model, input_size=(10,))
    assert [(l.name, l.call) for l in s.layers] == [("1", 0), ("1", 1)]
    assert s.total_params == 110  # the shared weights count once
    assert s.params_by_type() == {"Linear": 110}
    assert s.total_macs == 2 * 100
    assert "(call 2)" in s.table() and "shared" in s.table()


def test_restores_modes_and_leaves_state_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout())
    model.train()
    model[2].eval()
    stats_before = model[1].running_mean.clone()
    rng_before = torch.get_rng_state()
    summarize(model, input_size=(3, 8, 8))
    assert [m.training for m in model] == [True, True, False]
    assert torch.equal(model[1].running_mean, stats_before)
    assert model[1].num_batches_tracked.item() == 0
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_forward_callable_is_used():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    s = summarize(model, input_size=(3, 8, 8), forward=lambda x: model[0](x))
    assert [l.name for l in s.layers] == ["0"]
    assert s.total_params == sum(p.numel() for p in model.parameters())


def _alexnet_macs_by_hand() -> int:
    # (kernel, C_in, C_out, H_out) for the five convs at 224, then the three FC layers.
    convs = [(11, 3, 64, 55), (5, 64, 192, 27), (3, 192, 384, 13), (3, 384, 256, 13),
             (3, 256, 256, 13)]  # fmt: skip
    fcs = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]
    return sum(k * k * cin * cout * h * h for k, cin, cout, h in convs) + sum(
        i * o for i, o in fcs
    )


@pytest.fixture(scope="module")
def alexnet_and_summary():
    model = alexnet(weights=None)
    return model, summarize(model)


def test_alexnet_totals(alexnet_and_summary):
    model, s = alexnet_and_summary
    assert s.total_params == sum(p.numel() for p in model.parameters()) == 61_100_840
    assert s.total_macs == _alexnet_macs_by_hand()
    assert s.total_macs == pytest.approx(0.714e9, rel=0.02)  # torchvision: 0.71 GFLOPS (MACs)
    by_type = s.params_by_type()
    assert set(by_type) == {"Linear", "Conv2d"}
    assert by_type["Linear"] / s.total_params > 0.9
    assert sum(by_type.values()) == s.total_params


def test_table_has_rows_and_totals(alexnet_and_summary):
    _, s = alexnet_and_summary
    text = s.table()
    assert "features.0" in text and "classifier.6" in text
    assert "Total params: 61,100,840" in text
    assert "Total MACs: 714,188,480" in text
    assert "GFLOPs" in text
    short = s.table(max_rows=4)
    assert f"... {len(s.layers) - 4} rows omitted ..." in short
    assert "features.0" in short and "classifier.6" in short and "features.6" not in short
    assert "Total params: 61,100,840" in short


def test_params_by_type_falls_back_to_rows():
    rows = [
        LayerStats("a", "Conv2d", (1, 4, 2, 2), 16, 10, 40),
        LayerStats("b", "Linear", (1, 3), 3, 50, 48),
        LayerStats("b", "Linear", (1, 3), 3, 50, 48, call=1),
    ]
    s = ModelSummary(rows, total_params=60, trainable_params=60, input_size=(3, 4, 4))
    assert s.params_by_type() == {"Linear": 50, "Conv2d": 10}
    assert (s.total_macs, s.total_flops) == (136, 272)


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation, expected",
    [
        (224, 11, 4, 2, 1, 55),  # AlexNet conv1
        (55, 3, 2, 0, 1, 27),  # AlexNet pool1 (floor)
        (32, 3, 1, 1, 1, 32),  # "same" 3x3
        (224, 7, 2, 3, 1, 112),  # ResNet stem
        (28, 3, 1, 2, 2, 28),  # dilated 3x3 keeps the size
        (5, 3, 2, 0, 1, 2),
    ],
)
def test_conv_output_size(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    assert conv(torch.zeros(1, 1, size, size)).shape[-1] == expected


@pytest.mark.parametrize(
    "size, kernel, stride, padding, output_padding, dilation, expected",
    [
        (7, 64, 32, 16, 0, 1, 224),  # FCN-32s upsampling
        (5, 3, 2, 1, 1, 1, 10),
        (16, 4, 2, 1, 0, 1, 32),  # exact 2x upsampling
        (3, 3, 1, 0, 0, 2, 7),
    ],
)
def test_conv_transpose_output_size(
    size, kernel, stride, padding, output_padding, dilation, expected
):
    got = conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation)
    assert got == expected
    deconv = nn.ConvTranspose2d(
        1, 1, kernel, stride, padding, output_padding=output_padding, dilation=dilation
    )
    assert deconv(torch.zeros(1, 1, size, size)).shape[-1] == expected


def test_output_size_errors():
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(2, 5)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose_output_size(4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError):
        conv_output_size(8, 3, stride=0)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "tools/summary.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_resnet18():
    result = _run_cli("resnet18", "--width", "0.25", "--input-size", "64")
    assert result.returncode == 0, result.stderr
    assert "Conv2d" in result.stdout and "Total params:" in result.stdout


def test_cli_unknown_model_lists_names():
    result = _run_cli("resnet19")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "resnet19" in line and "alexnet" in line and "resnet18" in line


def test_cli_features_in_process(capsys):
    spec = importlib.util.spec_from_file_location("tools_summary", REPO / "tools" / "summary.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["resnet18", "--features", "--width", "0.125", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "feature extractor" in out and "fc" not in out.split()
