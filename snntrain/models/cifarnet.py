r"""CIFARNet of the NeuNorm paper (Wu et al., "Direct Training for Spiking Neural Networks:
Faster, Larger, Better", AAAI 2019, arXiv:1809.05793).

128C3 (encoding) - 256C3 - AP2 - 512C3 - AP2 - 1024C3 - 512C3 - 1024FC - 512FC - Voting,
3x3 convs of stride 1 and padding 1, 2x2 average pools. The first conv receives the
image itself and encodes it into spikes. The voting layer has ``voting`` output
neurons per class and a class's score is the mean of its group (Sec. "Voting").
"""
from __future__ import annotations

from torch import Tensor, nn

from ..errors import check
from ..layers import conv2d, flatten, linear
from ..registry import register
from .net import NeuronFactory, NormFactory, SpikingNet, bias_before, dense_synapse, pool2d, scaled, spiking_stage


class Voting(nn.Module):
    """Class scores as group means: ``[T, B, classes * voters] -> [T, B, classes]`` (neuron groups of Wu et al. 2019)."""

    def __init__(self, voters: int) -> None:
        super().__init__()
        self.voters = int(voters)

    def forward(self, x_seq: Tensor) -> Tensor:
        return x_seq.unflatten(-1, (-1, self.voters)).mean(-1)

    def extra_repr(self) -> str:
        return f"voters={self.voters}"


@register("model", "cifarnet")
def cifarnet(
    in_shape: tuple[int, ...], num_classes: int, neuron: NeuronFactory, norm: NormFactory, voting: int = 10,
    width: float = 1.0,
) -> SpikingNet:
    r"""CIFARNet (Wu et al. AAAI 2019): 128C3-256C3-AP2-512C3-AP2-1024C3-512C3-1024FC-512FC-Voting.

    The readout is non-spiking: ``voting`` linear outputs per class, averaged per class
    (the paper averages the spike counts of each group). Parameters with ``norm=bn`` on
    CIFAR-10 (3x32x32, 10 classes, ``voting=10``): **45,053,156** = conv weights
    9·(3·128 + 128·256 + 256·512 + 512·1024 + 1024·512) = 10,915,200, their BN
    2·2,432 = 4,864, FC 32,768·1,024 = 33,554,432 + BN 2,048, FC 1,024·512 = 524,288 +
    BN 1,024, voting 512·100 + 100 = 51,300. The paper states no count. ``width``
    multiplies every hidden layer's width.
    """
    check(len(in_shape) == 3, "in_shape", f"cifarnet needs image inputs [C, H, W], got {tuple(in_shape)}")
    check(voting >= 1, "voting", f"must be >= 1, got {voting}")
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for item in (128, 256, "M", 512, "M", 1024, 512):
        if item == "M":
            pooled, h, w = pool2d("avg", h, w)
            layers += pooled
            continue
        c_out = scaled(item, width)  # type: ignore[arg-type]
        stage = spiking_stage((c_out, h, w), neuron, norm)
        layers += [conv2d(c, c_out, 3, 1, 1, bias=bias_before(stage[0])), *stage]
        c = c_out
    layers.append(flatten())
    features = c * h * w
    for f in (scaled(1024, width), scaled(512, width)):
        stage = spiking_stage((f,), neuron, norm)
        layers += [dense_synapse("linear", features, f, bias_before(stage[0])), *stage]
        features = f
    layers += [linear(features, num_classes * voting), Voting(voting)]
    return SpikingNet(*layers)
