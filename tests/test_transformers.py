"""Spikformer, Spike-driven Transformer and MS-ResNet against SpikingJelly's ``model`` package, and their sizes.

Parity: the same random weights (ours copied into SpikingJelly's model parameter by
parameter, in the same order, shapes checked), the same input, the same LIF neurons:
outputs, input and parameter gradients in training mode (batch statistics), the running
statistics, then the eval-mode outputs. At tiny widths and depths, to stay fast.

Sizes: the papers' configurations counted on the meta device against SpikingJelly's
implementation of the same configuration and the bold number in each docstring.
"""
from __future__ import annotations

import inspect
import re

import pytest
import torch
from torch import nn

from snntrain import build
from snntrain.models import make_factories
from snntrain.registry import entry

sj_model = pytest.importorskip("spikingjelly.activation_based.model")
from spikingjelly.activation_based import functional, neuron as sj_neuron, surrogate  # noqa: E402
from spikingjelly.activation_based.model import ms_resnet, spike_driven_transformer, spikformer  # noqa: E402

T, B = 2, 2
LIF = {"name": "lif", "tau": 2.0, "decay_input": True, "reset": "zero", "detach_reset": True}


def ours(name, lif=LIF, norm="bn", in_shape=(3, 16, 16), classes=10, meta=False, **kw):
    neuron, norm_f = make_factories(lif, {"name": "atan"}, {"name": norm}, T)
    ctx = {"in_shape": in_shape, "num_classes": classes, "T": T, "neuron": neuron, "norm": norm_f}
    if meta:  # parameter counts without allocating them
        with torch.device("meta"):
            return build("model", name, context=ctx, **kw)
    return build("model", name, context=ctx, **kw)


def in_peer_order(model: nn.Module, what: str) -> list:
    """Our parameters (or BN statistics) in SpikingJelly's registration order: QKFormer registers its three
    patch embeddings before its blocks; every other model registers in forward order, as ours."""
    from snntrain.models.qkformer import OnTokens

    children = list(model.children())
    rank = lambda i, m: 2 if i == len(children) - 1 else int(isinstance(m, OnTokens))  # noqa: E731
    ordered = sorted(enumerate(children), key=lambda im: rank(*im))
    if what == "params":
        return [p for _, m in ordered for p in m.parameters()]
    return [v for _, m in ordered for k, v in m.named_buffers() if k.rsplit(".", 1)[-1] in ("running_mean", "running_var")]


def copy_into(src: nn.Module, dst: nn.Module) -> None:
    """Random parameters in ``src``, copied in order into ``dst``; BN running statistics too."""
    torch.manual_seed(0)
    a, b = in_peer_order(src, "params"), list(dst.parameters())
    assert [p.shape for p in a] == [p.shape for p in b]
    stats = lambda m: [v for k, v in m.named_buffers() if k.rsplit(".", 1)[-1] in ("running_mean", "running_var")]  # noqa: E731
    sa, sb = in_peer_order(src, "stats"), stats(dst)
    assert [s.shape for s in sa] == [s.shape for s in sb]
    with torch.no_grad():
        for p, q in zip(a, b):
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.2) + (1.0 if p.dim() == 1 else 0.0) * 0.5)
            q.copy_(p)
        for s, t in zip(sa, sb):
            t.copy_(s)


def check_parity(mine: nn.Module, peer: nn.Module, reduce_time: bool, x_scale: float = 1.0, size: int = 16) -> None:
    x = (torch.rand(T, B, 3, size, size) * x_scale).requires_grad_()
    xp = x.detach().clone().requires_grad_()
    functional.reset_net(peer)
    out = mine(x)
    out = out.mean(0) if reduce_time else out
    ref = peer(xp)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert out.std() > 0  # not a constant: some spikes reached the readout
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(x.grad, xp.grad, rtol=1e-3, atol=1e-5)
    names = {id(p): n for n, p in mine.named_parameters()}
    for p, q in zip(in_peer_order(mine, "params"), peer.parameters()):
        n = names[id(p)]
        # a bias right before a batch norm gets a gradient of 0 up to rounding: compared at 1e-4
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-4 if n.endswith("bias") else 1e-5, msg=n)
    stats = lambda m: [v for k, v in m.named_buffers() if k.rsplit(".", 1)[-1] in ("running_mean", "running_var")]  # noqa: E731
    for s, t in zip(in_peer_order(mine, "stats"), stats(peer)):
        torch.testing.assert_close(s, t)
    mine.eval(), peer.eval()
    functional.reset_net(peer)
    x2 = torch.rand(T, B, 3, size, size) * x_scale
    o2 = mine(x2)
    torch.testing.assert_close(o2.mean(0) if reduce_time else o2, peer(x2), rtol=1e-4, atol=1e-5)


def test_spikformer_equals_spikingjelly():
    mine = ours("spikformer", dim=32, heads=2, depth=1)
    peer = spikformer.Spikformer(T=T, img_size_h=16, img_size_w=16, patch_size=4, num_classes=10, embed_dims=32,
                                 num_heads=2, depths=1, surrogate_function=surrogate.ATan())
    copy_into(mine, peer)
    check_parity(mine, peer, reduce_time=False, x_scale=3.0)


def test_spike_driven_transformer_equals_spikingjelly():
    mine = ours("spike_driven_transformer", dim=32, heads=2, depth=1, pooling="0011", conv_bias=True)
    peer = spike_driven_transformer.SpikeDrivenTransformer(
        T=T, num_classes=10, embed_dims=32, num_heads=2, depths=1, pooling_stat="0011",
        spiking_neuron=sj_neuron.LIFNode, tau=2.0, detach_reset=True, surrogate_function=surrogate.ATan())
    for blk in peer.blocks:  # a custom neuron class drops SpikingJelly's per-position defaults: restore the paper's 0.5
        blk.attn.attn_lif.v_threshold = 0.5
    copy_into(mine, peer)
    check_parity(mine, peer, reduce_time=True, x_scale=3.0)


def test_ms_resnet_equals_spikingjelly():
    lif = {"name": "lif", "tau": 4 / 3, "reset": "zero", "detach_reset": True, "threshold": 0.5}
    mine = ours("ms_resnet18", lif=lif, stem="imagenet", width=0.125)
    peer = ms_resnet.MSResNet(T=T, num_classes=10, base_channels=8, stage_channels=(8, 16, 32, 64),
                              surrogate_function=surrogate.ATan())
    copy_into(mine, peer)
    check_parity(mine, peer, reduce_time=True, x_scale=3.0)


@pytest.mark.parametrize("mode", ["token", "channel"])
def test_qkformer_equals_spikingjelly(mode):
    from spikingjelly.activation_based.model import qkformer

    # 32x32: four halvings to 2x2 (our QKFormer does not downsample below 2x2; SpikingJelly's would on 16x16)
    mine = ours("qkformer", dim=32, depths=[1, 1, 1], heads=[2, 2, 2], qk_attention=mode, conv_bias=True,
                in_shape=(3, 32, 32))
    peer = qkformer.QKFormer(T=T, num_classes=10, embed_dims=32, num_heads=(2, 2, 2), depths=(1, 1, 1), qka_type=mode,
                             spiking_neuron=sj_neuron.LIFNode, tau=2.0, detach_reset=True,
                             surrogate_function=surrogate.ATan())
    for stage in (peer.stage1, peer.stage2, peer.stage3):  # a custom neuron class drops the 0.5 of the attention neurons
        for blk in stage:
            blk.attn.attn_lif.v_threshold = 0.5
    copy_into(mine, peer)
    check_parity(mine, peer, reduce_time=True, x_scale=3.0, size=32)


# ------------------------------------------------------------------ sizes
def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def on_meta(fn):
    with torch.device("meta"):
        return fn()


CASES = {  # ours (name, in_shape, classes, kwargs) == SpikingJelly's builder of the same configuration
    "spikformer-4-384 cifar10": (("spikformer", (3, 32, 32), 10, {}), lambda: spikformer.spikformer_cifar10()),
    "spikformer-8-384 imagenet": (("spikformer", (3, 224, 224), 1000, {"depth": 8, "patch_size": 16}),
                                  lambda: spikformer.Spikformer(embed_dims=384, num_heads=12, depths=8)),
    "sdt-2-512 cifar10": (("spike_driven_transformer", (3, 32, 32), 10, {"conv_bias": True}),
                          lambda: spike_driven_transformer.SpikeDrivenTransformer(num_classes=10, embed_dims=512, depths=2,
                                                                                  pooling_stat="0011")),
    "sdt-8-384 imagenet": (("spike_driven_transformer", (3, 224, 224), 1000, {"dim": 384, "depth": 8, "pooling": "1111", "conv_bias": True}),
                           lambda: spike_driven_transformer.sdt_8_384()),
    "qkformer-10-384 imagenet": (("qkformer", (3, 224, 224), 1000, {"conv_bias": True}),
                                 lambda: __import__("spikingjelly.activation_based.model.qkformer",
                                                    fromlist=["qkformer_10_384"]).qkformer_10_384()),
    "ms18 imagenet": (("ms_resnet18", (3, 224, 224), 1000, {"stem": "imagenet"}), lambda: ms_resnet.ms_resnet18()),
    "ms34 imagenet": (("ms_resnet34", (3, 224, 224), 1000, {"stem": "imagenet"}), lambda: ms_resnet.ms_resnet34()),
    "ms18 cifar10 (imagenet stem)": (("ms_resnet18", (3, 32, 32), 10, {"stem": "imagenet"}),
                                     lambda: ms_resnet.ms_resnet18(num_classes=10)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_parameter_count_equals_spikingjellys(case):
    (name, shape, classes, kw), peer = CASES[case]
    assert n_params(ours(name, in_shape=shape, classes=classes, meta=True, **kw)) == on_meta(lambda: n_params(peer()))


@pytest.mark.parametrize("name,count", [("spikformer", 9_310_906), ("spike_driven_transformer", 10_227_274),
                                        ("ms_resnet18", 11_173_962), ("ms_resnet34", 21_282_122)])
def test_cifar10_counts_match_the_docstrings(name, count):
    doc = inspect.getdoc(entry("model", name).obj) or ""
    assert int(re.search(r"\*\*([\d,]+)\*\*", doc).group(1).replace(",", "")) == count
    assert n_params(ours(name, in_shape=(3, 32, 32), meta=True)) == count


def test_hand_derived_counts():
    # Spikformer-4-384 (docstring): SPS convs + norms, 4 blocks of 12 D^2 convs and 2(9D) norm parameters, readout
    D = 384
    sps = 9 * (3 * 48 + 48 * 96 + 96 * 192 + 192 * 384 + 384 * 384) + 2 * (48 + 96 + 192 + 384 + 384)
    assert sps + 4 * (12 * D * D + 2 * 9 * D) + D * 10 + 10 == 9_310_906
    # Spike-driven Transformer-2-512
    D = 512
    patch = 9 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 512) + (64 + 128 + 256 + 512) + 2 * (64 + 128 + 256 + 512 + 512)
    block = 12 * D * D + D + 4 * D + D + 2 * 9 * D
    assert patch + 2 * block + D * 10 + 10 == 10_234_378  # conv_bias=true
    biases = (64 + 128 + 256 + 512) + 2 * (D + 4 * D + D)
    assert patch + 2 * block + D * 10 + 10 - biases == 10_227_274


def test_bad_arguments_name_the_key():
    from snntrain import ConfigError

    with pytest.raises(ConfigError, match="model.patch_size"):
        ours("spikformer", patch_size=8)
    with pytest.raises(ConfigError, match="model.pooling"):
        ours("spike_driven_transformer", pooling="01")
    with pytest.raises(ConfigError, match="model.stem"):
        ours("ms_resnet18", stem="tiny")


def test_attention_neurons_fire_at_half_threshold_and_tdbn_alpha_on_summed_norms():
    import math

    from snntrain.models.spike_driven import SpikeDrivenSelfAttention
    from snntrain.models.spikformer import SpikingSelfAttention

    sf = ours("spikformer", dim=32, heads=2, depth=1)
    assert [float(m.attn_neuron.threshold) for m in sf.modules() if isinstance(m, SpikingSelfAttention)] == [0.5]
    sdt = ours("spike_driven_transformer", norm="tdbn", dim=32, heads=2, depth=1)
    att = next(m for m in sdt.modules() if isinstance(m, SpikeDrivenSelfAttention))
    assert float(att.attn_neuron.threshold) == 0.5
    assert att.proj[1].alpha == pytest.approx(1 / math.sqrt(2)) and att.q[1].alpha == 1.0
