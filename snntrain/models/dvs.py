r"""The DVS-Gesture network of the tdBN paper (Zheng et al., "Going Deeper With
Directly-Trained Larger Spiking Neural Networks", AAAI 2021): a spiking ResNet-17.

The paper reports 96.87% on DVS128 Gesture with a "ResNet-17" (T=40) but we could not
check its exact layout here; this follows the reconstruction in the AutoSNN code
(Na et al. ICML 2022, ``Spiking_DVS_ResNet17_Zheng``): 3x3 conv -> 2x2 max pool ->
3x3 conv -> 2x2 max pool -> 7 basic blocks (widths c, c, c, 2c, 2c, 2c, 2c; stride 2 in
the 1st and 4th) -> 2x2 average pool -> 256 FC (spiking, 4c) -> readout, with c = 64.
The SEW ResNet paper (Fang et al. 2021, Table 4) lists 11.18M parameters for tdBN's
ResNet-17, far more than this reconstruction has (1.9M): treat the layout as uncertain.
"""
from __future__ import annotations

from torch import nn

from ..errors import check
from ..layers import flatten, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, pool2d, scaled
from .resnet import conv_stage, residual_stages


@register("model", "tdbn_dvsnet")
def tdbn_dvsnet(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory,
    width: float = 1.0, zero_init_residual: bool = False,
) -> SpikingNet:
    r"""tdBN's DVS-Gesture ResNet-17 (Zheng et al. 2021), as reconstructed by AutoSNN: stem, 2 pools, 7 blocks, 2 FC.

    Parameters with ``norm=bn`` on DVS128 Gesture (2x128x128, 11 classes):
    **1,908,235** = stem 2·64·9 + 128, conv 64·64·9 + 128, blocks 64→64 (stride 2:
    2·36,864 + 1x1 shortcut 4,096 + 3 BN·128), 2 × (2·36,864 + 256), 64→128 (stride 2:
    73,728 + 147,456 + 8,192 + 768), 3 × (2·147,456 + 512), FC 128·4·4·256 + 256,
    readout 256·11 + 11. The paper states no count; see the module note on 11.18M.
    ``width`` multiplies every layer's width.
    """
    check(len(in_shape) == 3, "in_shape", f"tdbn_dvsnet needs frames [C, H, W], got {tuple(in_shape)}")
    c, h, w = in_shape
    channels = scaled(64, width)
    layers: list[nn.Module] = []
    for c_out in (channels, channels):
        stage, h, w = conv_stage(c, c_out, 3, 1, h, w, neuron, norm)
        pooled, h, w = pool2d("max", h, w)
        layers += [*stage, *pooled]
        c = c_out
    stages = [(channels, 3, 2), (scaled(128, width), 4, 2)]
    blocks, c, h, w = residual_stages(stages, c, h, w, neuron, norm, zero_init=zero_init_residual)
    pooled, h, w = pool2d("avg", h, w)
    hidden = scaled(256, width)
    layers += [*blocks, *pooled, flatten(), linear(c * h * w, hidden), neuron((hidden,)),
               linear(hidden, num_classes)]
    return SpikingNet(*layers)
