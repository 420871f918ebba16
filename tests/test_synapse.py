"""Synapse layers against SpikingJelly's multi-step stateless wrappers and Matterhorn's definition."""
from __future__ import annotations

import pytest
import torch

from snntrain import build

from .examples.synapse import LAYER_EXAMPLES

sj_layer = pytest.importorskip("spikingjelly.activation_based.layer")

# our name -> (SpikingJelly class, positional args built from our example kwargs)
PEERS = {
    "linear": ("Linear", lambda k: (k["in_features"], k["out_features"])),
    "conv1d": ("Conv1d", lambda k: (k["in_channels"], k["out_channels"], 3, 1, 1)),
    "conv2d": ("Conv2d", lambda k: (k["in_channels"], k["out_channels"], 3, 1, 1)),
    "conv3d": ("Conv3d", lambda k: (k["in_channels"], k["out_channels"], 3, 1, 1)),
    "conv_transpose1d": ("ConvTranspose1d", lambda k: (k["in_channels"], k["out_channels"], 2, 2)),
    "conv_transpose2d": ("ConvTranspose2d", lambda k: (k["in_channels"], k["out_channels"], 2, 2)),
    "conv_transpose3d": ("ConvTranspose3d", lambda k: (k["in_channels"], k["out_channels"], 2, 2)),
    "maxpool1d": ("MaxPool1d", lambda k: (2,)),
    "maxpool2d": ("MaxPool2d", lambda k: (2,)),
    "maxpool3d": ("MaxPool3d", lambda k: (2,)),
    "avgpool1d": ("AvgPool1d", lambda k: (2,)),
    "avgpool2d": ("AvgPool2d", lambda k: (2,)),
    "avgpool3d": ("AvgPool3d", lambda k: (2,)),
    "adaptive_avgpool1d": ("AdaptiveAvgPool1d", lambda k: (k["output_size"],)),
    "adaptive_avgpool2d": ("AdaptiveAvgPool2d", lambda k: (tuple(k["output_size"]),)),
    "adaptive_avgpool3d": ("AdaptiveAvgPool3d", lambda k: (k["output_size"],)),
    "flatten": ("Flatten", lambda k: ()),
    "upsample": ("Upsample", lambda k: (None, 2.0)),
}


@pytest.mark.parametrize("name", sorted(PEERS))
def test_matches_spikingjelly_multistep(name):
    cls_name, args = PEERS[name]
    if not hasattr(sj_layer, cls_name):
        pytest.skip(f"spikingjelly has no layer.{cls_name}")
    kwargs, in_shape, out_shape = LAYER_EXAMPLES[name][:3]
    torch.manual_seed(0)
    ours = build("layer", name, **kwargs)
    peer = getattr(sj_layer, cls_name)(*args(kwargs), step_mode="m")
    peer.load_state_dict(ours.module.state_dict())
    x = torch.randn(6, 3, *in_shape)
    xo, xp = x.clone().requires_grad_(), x.clone().requires_grad_()
    yo, yp = ours(xo), peer(xp)
    assert yo.shape == yp.shape == (6, 3, *out_shape)
    assert (yo - yp).abs().max() <= 1e-6
    g = torch.randn_like(yo)
    (yo * g).sum().backward()
    (yp * g).sum().backward()
    assert (xo.grad - xp.grad).abs().max() <= 1e-6
    for (n, po), pp in zip(ours.module.named_parameters(), peer.parameters()):
        assert (po.grad - pp.grad).abs().max() <= 1e-5, n


def test_conv_is_per_step_convolution():
    # Matterhorn's definition X(t) = C * O(t): the sequence call equals a loop over t
    conv = build("layer", "conv2d", in_channels=2, out_channels=3)
    x = torch.randn(5, 4, 2, 7, 7)
    loop = torch.stack([torch.nn.functional.conv2d(x[t], conv.module.weight, conv.module.bias, padding=1) for t in range(5)])
    assert torch.allclose(conv(x), loop, atol=1e-6)
