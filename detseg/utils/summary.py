"""Per-layer model summary in the style of the CS231n "VGGNet in detail" tables.

:func:`summarize` runs one forward pass (batch 1, ``torch.no_grad``, eval mode) with forward hooks
on every leaf module and records, per call, the output shape, the size of the output
(activations), the parameters and the arithmetic cost. The result is a :class:`ModelSummary`
whose :meth:`~ModelSummary.table` prints an aligned text table with grouped totals.

Counting conventions (shape shorthand: N = 1 image, ``C_in``/``C_out`` channels, ``k`` the
product of the kernel sizes, ``g`` groups):

* **MACs** (multiply-accumulates) are counted only for layers made of multiply-adds:

  - ``Conv{1,2,3}d``: ``numel(output) * C_in / g * k``
    (= ``K_h * K_w * C_in / g * C_out * H_out * W_out`` for 2-D);
  - ``ConvTranspose{1,2,3}d``: the same product taken over *input* positions, since each input
    value is scattered through the kernel: ``numel(input) * C_out / g * k``;
  - ``Linear``: ``numel(output) * in_features``.

  Bias additions are ignored (they are one add per output element, < 0.1% of a conv's cost),
  which matches the usual published figures, e.g. 0.71 GMACs for torchvision's AlexNet at 224.
* **Elementwise ops** for every other leaf that does work, one op per element, not doubled:
  pooling layers (max/avg/adaptive/LP) count one op per *input* element; everything else
  (BatchNorm/FrozenBatchNorm, other norms, ReLU and other activations, LRN, upsampling) one op
  per *output* element. Unknown leaf types fall in this last group, so their cost is a floor.
* **FLOPs** = ``2 * MACs + elementwise ops``: a multiply-add is two floating-point operations,
  an elementwise op one. :attr:`ModelSummary.total_macs` therefore stays comparable with
  published MAC counts, while FLOPs include the (small) elementwise share.
* **Activations** are the number of elements in a layer's output (all tensors, if it returns
  several); memory is reported for float32, 4 bytes per element. Outputs that share storage with
  the layer's input (``ReLU(inplace=True)``) are listed but not added to the activation memory
  total, as CS231n folds ReLU into the conv it follows. The input image is not a row and is not
  in the total. The backward pass roughly doubles this figure.
* **Params** are ``nn.Parameter`` elements only; buffers (BN running statistics, the affine
  terms of ``FrozenBatchNorm2d``) are not counted. Totals count each parameter once, even when a
  module is shared; parameters of modules that do not run (e.g. GoogLeNet's auxiliary
  classifiers in eval mode) are in the totals but have no row.

Rows: one per *call* of a leaf module (a module with no children), so a module called twice
gets two rows (the second shows its params as shared). Leaves that do no work in eval mode
(``Identity``, ``Flatten``, ``Unflatten``, ``Dropout*``) get no row. Work done by functional calls
inside a non-leaf module's ``forward`` (e.g. ``torch.flatten``, a residual ``+``, DenseNet's
final ``F.relu``) is not seen by hooks and is not counted.

Example:
    >>> from torch import nn
    >>> s = summarize(nn.Conv2d(3, 8, 3, padding=1), input_size=(3, 32, 32))
    >>> s.layers[0].output_shape, s.total_params, s.total_macs
    ((1, 8, 32, 32), 224, 221184)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "LayerStats",
    "ModelSummary",
    "summarize",
    "conv_output_size",
    "conv_transpose_output_size",
]

#: Bytes per value used for every memory figure (float32).
BYTES_PER_ELEMENT = 4

_POOLS = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._LPPoolNd,
)
# Leaves that only return their input or a view of it in eval mode.
_NO_WORK = (nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.dropout._DropoutNd)


@dataclass
class LayerStats:
    """What one call of one leaf module produced and cost.

    Attributes:
        name: qualified module path, e.g. ``"features.0"`` (``""`` for a model that is a leaf).
        type: module class name, e.g. ``"Conv2d"``.
        output_shape: shape of the (first) output tensor, batch dimension (1) included.
        activations: number of output elements (all output tensors).
        params: parameter elements owned by the module.
        macs: multiply-accumulates (conv, transposed conv, linear; bias ignored).
        ops: elementwise operations that are not multiply-adds (norms, activations, pools).
        in_place: the output shares storage with the input, so it adds no activation memory.
        call: 0 for a module's first call, 1 for its second (shared module), ...
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    activations: int
    params: int
    macs: int
    ops: int = 0
    in_place: bool = False
    call: int = 0

    @property
    def flops(self) -> int:
        """Floating-point operations: ``2 * macs + ops``."""
        return 2 * self.macs + self.ops

    @property
    def activation_bytes(self) -> int:
        """New float32 memory held by the output (0 for in-place outputs)."""
        return 0 if self.in_place else self.activations * BYTES_PER_ELEMENT


@dataclass
class ModelSummary:
    """Per-layer statistics of one forward pass plus model-wide parameter totals.

    Attributes:
        layers: one :class:`LayerStats` per leaf-module call, in execution order.
        total_params: parameter elements in the model, each counted once.
        trainable_params: those with ``requires_grad``.
        input_size: ``(C, H, W)`` of the single image that was run.
        param_types: parameter elements per owning module type, from the whole module tree;
            ``None`` makes :meth:`params_by_type` fall back to the rows.
    """

    layers: list[LayerStats]
    total_params: int
    trainable_params: int
    input_size: tuple[int, ...]
    param_types: dict[str, int] | None = None

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates of all rows (conv, transposed conv, linear)."""
        return sum(layer.macs for layer in self.layers)

    @property
    def total_flops(self) -> int:
        """``2 * total_macs`` plus all elementwise ops."""
        return sum(layer.flops for layer in self.layers)

    @property
    def activation_bytes(self) -> int:
        """Float32 memory of all layer outputs of one image's forward pass (in-place excluded)."""
        return sum(layer.activation_bytes for layer in self.layers)

    @property
    def param_bytes(self) -> int:
        """Float32 memory of the parameters."""
        return self.total_params * BYTES_PER_ELEMENT

    def params_by_type(self) -> dict[str, int]:
        """Parameter elements per module type, largest first: ``{"Linear": ..., "Conv2d": ...}``.

        Each parameter is counted once, under the type of the module that owns it directly.
        """
        if self.param_types is not None:
            counts = Counter(self.param_types)
        else:
            counts = Counter()
            for layer in self.layers:
                if layer.call == 0:
                    counts[layer.type] += layer.params
        return {name: n for name, n in counts.most_common() if n}

    def table(self, max_rows: int | None = None) -> str:
        """Render an aligned text table: one line per row, then totals per type and overall.

        Args:
            max_rows: show at most this many layer rows (first and last halves, with the number
                of omitted rows in between); totals always cover every row.

        Returns:
            The table as one string without a trailing newline.
        """
        header = ("Layer", "Type", "Output", "Activations", "Memory", "Params", "FLOPs")
        rows = [_layer_cells(layer) for layer in self.layers]
        omitted = 0
        if max_rows is not None and len(rows) > max_rows:
            head = (max_rows + 1) // 2
            tail = max_rows - head
            omitted = len(rows) - max_rows
            rows = rows[:head] + [None] + (rows[-tail:] if tail else [])

        # Grouped totals: rows and FLOPs from the forward pass, params from the module tree.
        by_type_params = self.params_by_type()
        calls: Counter[str] = Counter()
        flops: Counter[str] = Counter()
        for layer in self.layers:
            calls[layer.type] += 1
            flops[layer.type] += layer.flops
        types = list(dict.fromkeys([*flops, *by_type_params]))
        types.sort(key=lambda t: (flops[t], by_type_params.get(t, 0)), reverse=True)
        total_flops = self.total_flops
        group_header = ("By type", "Rows", "", "", "% FLOPs", "Params", "FLOPs")
        group_rows = [
            (
                t,
                str(calls[t]),
                "",
                "",
                f"{100 * flops[t] / total_flops:.1f}%" if total_flops else "-",
                _human(by_type_params.get(t, 0)) if by_type_params.get(t) else "-",
                _human(flops[t]) if flops[t] else "-",
            )
            for t in types
        ]

        all_cells = [header, group_header, *group_rows, *(r for r in rows if r is not None)]
        widths = [max(len(cells[i]) for cells in all_cells) for i in range(len(header))]

        def line(cells: Sequence[str]) -> str:
            left = [c.ljust(w) for c, w in zip(cells[:3], widths[:3])]
            right = [c.rjust(w) for c, w in zip(cells[3:], widths[3:])]
            return "  ".join(left + right).rstrip()

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        out = [line(header), rule]
        for r in rows:
            out.append(line(r) if r is not None else f"... {omitted} rows omitted ...")
        out += [rule, line(group_header), rule, *(line(r) for r in group_rows), rule]

        n_inplace = sum(layer.in_place for layer in self.layers)
        non_trainable = self.total_params - self.trainable_params
        size = "x".join(str(s) for s in self.input_size)
        out += [
            f"Input size: {size} (batch 1)",
            f"Total params: {self.total_params:,} ({_human(self.total_params)}), "
            f"trainable: {self.trainable_params:,}, non-trainable: {non_trainable:,}",
            f"Total MACs: {self.total_macs:,} ({_human(self.total_macs, 'MACs')}, bias adds "
            "ignored)",
            f"Total FLOPs: {total_flops:,} ({_human(total_flops, 'FLOPs')} = 2 x MACs "
            "+ elementwise ops)",
            f"Param memory: {_human_bytes(self.param_bytes)} (float32)",
            f"Activation memory: {_human_bytes(self.activation_bytes)} (float32, forward, "
            "one image)",
        ]
        if n_inplace:
            out.append("* output shares memory with its input (in-place); not in activation memory")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def summarize(
    model: nn.Module,
    input_size: Sequence[int] = (3, 224, 224),
    *,
    forward: Callable[[Tensor], Any] | None = None,
) -> ModelSummary:
    """Run one image through ``model`` and collect per-layer statistics.

    The model runs in eval mode under ``torch.no_grad`` (so BatchNorm uses, and does not update,
    its running statistics, and batch 1 is valid); every module's train/eval flag is restored
    afterwards. The input is random, drawn in [0.5, 1.5) from a private generator: it has no
    zeros and leaves the global RNG untouched.

    Args:
        model: the network; hooks go on all of its leaf modules.
        input_size: ``(C, H, W)`` of the image; a batch dimension of 1 is added.
        forward: what to call on the input ``Tensor[1, C, H, W]``; defaults to ``model``. Pass
            e.g. ``backbone.classify`` to summarize a detseg backbone with its classifier head.

    Returns:
        A :class:`ModelSummary`; see the module docstring for the counting conventions.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(
        ...     nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10)
        ... )
        >>> s = summarize(net, (3, 32, 32))
        >>> [(l.name, l.type, l.macs) for l in s.layers]
        [('0', 'Conv2d', 194400), ('1', 'ReLU', 0), ('3', 'Linear', 72000)]
    """
    input_size = tuple(int(s) for s in input_size)
    layers = _record_layers(model, _probe_input(model, input_size), forward or model)
    total, trainable, param_types = _count_parameters(model)
    return ModelSummary(layers, total, trainable, input_size, param_types)


def _probe_input(model: nn.Module, input_size: tuple[int, ...]) -> Tensor:
    """``Tensor[1, *input_size]`` in [0.5, 1.5) on the model's device and float dtype, drawn
    from a private generator (no zeros; the global RNG untouched)."""
    first = next(model.parameters(), None)
    first = first if first is not None else next(model.buffers(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    generator = torch.Generator().manual_seed(0)
    return (torch.rand((1, *input_size), generator=generator) + 0.5).to(device=device, dtype=dtype)


def _record_layers(model: nn.Module, x: Tensor, forward: Callable[[Tensor], Any]) -> list[LayerStats]:
    """One :class:`LayerStats` per call of a leaf module during ``forward(x)`` (eval mode, no
    grad); the hooks and every module's train/eval flag are restored afterwards."""
    layers: list[LayerStats] = []
    calls: Counter[nn.Module] = Counter()
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        if isinstance(module, _NO_WORK):
            return
        inputs = _tensors(args)
        outputs = _tensors(output)
        if not outputs:
            return
        in_place = bool(inputs) and any(_same_storage(o, inputs[0]) for o in outputs)
        layers.append(
            LayerStats(
                name=names[module],
                type=type(module).__name__,
                output_shape=tuple(outputs[0].shape),
                activations=sum(o.numel() for o in outputs),
                params=sum(p.numel() for p in module.parameters(recurse=False)),
                macs=_macs(module, inputs, outputs),
                ops=_ops(module, inputs, outputs),
                in_place=in_place,
                call=calls[module],
            )
        )
        calls[module] += 1

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            forward(x)
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes:
            m.training = mode
    return layers


def _count_parameters(model: nn.Module) -> tuple[int, int, dict[str, int]]:
    """``(total, trainable, parameters per module type)``.

    Counted after the forward pass, so lazy modules are materialized; deduplicated by identity
    because shared modules and tied weights appear under several owners.
    """
    seen: set[int] = set()
    total = trainable = 0
    param_types: Counter[str] = Counter()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
            param_types[type(module).__name__] += p.numel()
    return total, trainable, dict(param_types)


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution or pooling window along one axis (floor mode).

    ``floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``, as ``Conv2d`` and
    ``MaxPool2d(ceil_mode=False)`` compute it.

    Example:
        >>> conv_output_size(224, 11, stride=4, padding=2)  # AlexNet conv1
        55

    Raises:
        ValueError: the window does not fit (output would be empty) or an argument is invalid.
    """
    if size < 1 or kernel < 1 or stride < 1 or dilation < 1 or padding < 0:
        raise ValueError(
            f"invalid conv arguments: size={size}, kernel={kernel}, stride={stride}, "
            f"padding={padding}, dilation={dilation}"
        )
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span) // stride + 1
    if out < 1:
        raise ValueError(
            f"kernel span {span} does not fit an input of {size} padded by {padding} on each side"
        )
    return out


def conv_transpose_output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a transposed convolution along one axis.

    ``(size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1``, as
    ``ConvTranspose2d`` computes it; it inverts :func:`conv_output_size` up to the
    ``output_padding`` that floor division lost.

    Example:
        >>> conv_transpose_output_size(7, 64, stride=32, padding=16)  # FCN-32s upsampling
        224

    Raises:
        ValueError: invalid arguments, including ``output_padding >= max(stride, dilation)``,
            which PyTorch rejects too.
    """
    if size < 1 or kernel < 1 or stride < 1 or dilation < 1 or padding < 0 or output_padding < 0:
        raise ValueError(
            f"invalid transposed conv arguments: size={size}, kernel={kernel}, stride={stride}, "
            f"padding={padding}, output_padding={output_padding}, dilation={dilation}"
        )
    if output_padding >= max(stride, dilation):
        raise ValueError(
            f"output_padding ({output_padding}) must be smaller than stride ({stride}) "
            f"or dilation ({dilation})"
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"padding {padding} leaves no output for size {size}")
    return out


# ---- counting ---------------------------------------------------------------------------------
def _macs(module: nn.Module, inputs: list[Tensor], outputs: list[Tensor]) -> int:
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        if module.transposed:
            return inputs[0].numel() * (module.out_channels // module.groups) * kernel
        return outputs[0].numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return outputs[0].numel() * module.in_features
    return 0


def _ops(module: nn.Module, inputs: list[Tensor], outputs: list[Tensor]) -> int:
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        return 0
    if isinstance(module, _POOLS) and inputs:
        return inputs[0].numel()
    return sum(o.numel() for o in outputs)


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _same_storage(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# ---- formatting -------------------------------------------------------------------------------
def _human(n: int, unit: str = "") -> str:
    """About three significant digits, decimal prefixes: 1234 -> '1.23K', (1.43e9, 'FLOPs') ->
    '1.43 GFLOPs'."""
    sep = " " if unit else ""
    for value, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= value:
            scaled = n / value
            decimals = 2 if abs(scaled) < 10 else 1 if abs(scaled) < 100 else 0
            return f"{scaled:.{decimals}f}{sep}{prefix}{unit}"
    return f"{n}{sep}{unit}"


def _human_bytes(n: int) -> str:
    for value, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= value:
            scaled = n / value
            decimals = 2 if scaled < 10 else 1 if scaled < 100 else 0
            return f"{scaled:.{decimals}f} {unit}"
    return f"{n} B"


def _layer_cells(layer: LayerStats) -> tuple[str, ...]:
    # The batch dimension is always 1, so it is dropped from the displayed shape.
    shape = "x".join(str(s) for s in layer.output_shape[1:]) or "1"
    name = layer.name or "(model)"
    if layer.call:
        name += f" (call {layer.call + 1})"
    params = _human(layer.params) if layer.params else "-"
    if layer.call and layer.params:
        params = "shared"
    return (
        name,
        layer.type,
        shape,
        _human(layer.activations) + ("*" if layer.in_place else ""),
        _human_bytes(layer.activation_bytes) if layer.activation_bytes else "-",
        params,
        _human(layer.flops) if layer.flops else "-",
    )
