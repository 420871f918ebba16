"""Binary synapse inputs kept as bits: the same outputs and bit-for-bit the same gradients as fp32."""
from __future__ import annotations

import pytest
import torch

from snntrain import build
from snntrain.layers import bits

LAYERS = {
    "linear": (dict(in_features=37, out_features=11), (37,)),
    "conv1d": (dict(in_channels=3, out_channels=4, stride=2), (3, 17)),
    "conv2d": (dict(in_channels=3, out_channels=5), (3, 9, 7)),
    "conv2d_nobias": (dict(in_channels=4, out_channels=6, kernel_size=5, padding=2, bias=False, dilation=1), (4, 8, 8)),
    "conv3d": (dict(in_channels=2, out_channels=3), (2, 5, 6, 4)),
    "maxpool2d": (dict(kernel_size=2), (3, 8, 6)),
    "maxpool1d": (dict(kernel_size=3, stride=2), (3, 11)),
    # average pooling keeps nothing at all (its backward needs the shape only)
    "avgpool2d": (dict(kernel_size=2), (3, 8, 6)),
    "avgpool2d_pad": (dict(kernel_size=3, stride=2, padding=1), (3, 9, 7)),
    "avgpool1d": (dict(kernel_size=3, stride=2), (3, 11)),
    "avgpool3d": (dict(kernel_size=2), (2, 4, 6, 4)),
    "adaptive_avgpool2d": (dict(output_size=1), (3, 8, 6)),
    "adaptive_avgpool2d_grid": (dict(output_size=(3, 2)), (3, 8, 7)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_packed_gradients_are_bitwise_the_fp32_ones(name):
    kwargs, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = build("layer", name.removesuffix("_nobias").removesuffix("_pad").removesuffix("_grid"), **kwargs)
    assert layer.pack_spikes
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(4, 3, *shape, generator=g) < 0.3).float()  # spikes, many ties in every pool window
    results = []
    for pack in (False, True):
        layer.zero_grad()
        layer.pack_spikes = pack
        xi = x.clone().requires_grad_()
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t, lambda t: t):
            y = layer(xi)
        (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
        results.append((y.detach(), xi.grad, [p.grad.clone() for p in layer.parameters()], sum(saved)))
    (y0, gx0, gp0, saved0), (y1, gx1, gp1, saved1) = results
    assert torch.equal(y0, y1) and torch.equal(gx0, gx1)
    assert all(torch.equal(a, b) for a, b in zip(gp0, gp1))
    x_bytes = x.numel() * 4
    if name == "adaptive_avgpool2d":  # to 1x1 autograd runs a mean, which saves nothing either
        assert saved0 == saved1 == 0
        return
    assert saved0 - saved1 >= x_bytes - x_bytes // 32 - 8  # the fp32 input is kept as bits: 1/32 of its bytes
    if "avgpool" in name:
        assert saved1 == 0 and saved0 >= x_bytes


def test_pack_unpack_round_trip_and_non_binary_inputs_stay_fp32():
    x = (torch.rand(3, 5, 7) < 0.5).float()
    packed = bits.pack_bits(x)
    assert packed.dtype == torch.uint8 and packed.numel() == (105 + 7) // 8
    assert torch.equal(bits.unpack_bits(packed, x.shape, x.dtype), x)
    assert bits.is_binary(x) and not bits.is_binary(x * 0.5 + 0.25)
    assert bits.pack_if_binary(x * 0.5 + 0.25) is None
    assert torch.equal(bits.pack_if_binary(x), packed)  # the C++ pass (where it builds) packs as pack_bits does
    layer = build("layer", "linear", in_features=7, out_features=2)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t):
        layer(torch.randn(2, 3, 7))  # not binary: the fp32 path
    assert torch.uint8 not in saved and torch.float32 in saved


def test_autocast_runs_the_plain_layer():
    layer = build("layer", "linear", in_features=8, out_features=3)
    x = (torch.rand(2, 4, 8) < 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not layer._packs(x.flatten(0, 1))
        y = layer(x)
    assert y.dtype == torch.bfloat16


@pytest.mark.parametrize("where", [0, 70_000, -1])
def test_one_non_binary_element_anywhere_keeps_fp32(where):
    """The packing pass stops early on a non-binary input; a single such element, first, middle or last, still counts."""
    x = (torch.rand(300_001) < 0.5).float()
    assert bits.pack_if_binary(x) is not None
    x[where] = 0.5
    assert bits.pack_if_binary(x) is None


@pytest.mark.parametrize("n", [1, 15, 16, 17, 31, 33, 129, 4095 * 8 + 3, 200_013])
def test_packing_at_every_length_equals_the_reference_and_round_trips(n):
    """The C++ pass (16 elements at a time with AVX-512, 8 with AVX2, a scalar tail) against pack_bits."""
    x = (torch.rand(n, generator=torch.Generator().manual_seed(n)) < 0.4).float()
    packed = bits.pack_if_binary(x)
    assert torch.equal(packed, bits.pack_bits(x))
    assert torch.equal(bits.unpack_bits(packed, x.shape, x.dtype), x)
    y = x.clone()
    y[n // 2] = float("nan")
    assert bits.pack_if_binary(y) is None


def test_an_input_from_outside_the_graph_is_kept_as_it_is():
    """Binary data (requires no grad) stays a reference: its caller holds it, so bits would only cost time;
    the same spikes made inside the graph are kept as bits."""
    layer = build("layer", "linear", in_features=64, out_features=3)
    x = (torch.rand(2, 4, 64) < 0.5).float()
    for requires_grad, dtype in ((False, torch.float32), (True, torch.uint8)):
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            layer(x.clone().requires_grad_(requires_grad))
        inputs = [t for t in saved if t.data_ptr() != layer.module.weight.data_ptr()]
        assert [t.dtype for t in inputs] == [dtype], requires_grad
