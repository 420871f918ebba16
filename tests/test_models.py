"""The papers' networks: one training step for every model x norm, parameter counts, SEW connects, norm placement."""
from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from snntrain import available, build
from snntrain.layers import SeqWrap
from snntrain.layers.carry import carry_state
from snntrain.models import make_factories
from snntrain.models.blocks import CONNECT, ResidualBlock
from snntrain.neurons import SpikingNeuron
from snntrain.neurons.base import neuron_layers
from snntrain.norm import NeuNorm, NoNorm, ThresholdDependentBatchNorm
from snntrain.registry import entry

T, B = 2, 2
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions run many times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(name: str, norm: str = "bn", in_shape=(3, 16, 16), num_classes: int = 10, norm_args=None, T: int = T, **kw):
    neuron, norm_f = make_factories({"name": "lif"}, {"name": "atan"}, {"name": norm, **(norm_args or {})}, T)
    ctx = {"in_shape": in_shape, "num_classes": num_classes, "T": T, "neuron": neuron, "norm": norm_f}
    return build("model", name, context=ctx, **kw)


def small(name: str) -> dict:
    """Narrow versions of the big models, to keep the tests fast."""
    return {"width": 0.125} if "width" in {p.name for p in entry("model", name).user_params()} else {}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def docstring_count(name: str) -> int:
    """The first bold number (``**12,697,994**``) in the model's docstring."""
    doc = inspect.getdoc(entry("model", name).obj) or ""
    return int(re.search(r"\*\*([\d,]+)\*\*", doc).group(1).replace(",", ""))


#: models built from arguments alone (model=nir reads its layers from a file: tests/test_nir_import.py)
BUILT = [n for n in available("model") if n != "nir"]


# ------------------------------------------------------------------ every model x norm trains
@pytest.mark.parametrize("norm", available("norm"))
@pytest.mark.parametrize("name", BUILT)
def test_one_training_step(name, norm):
    torch.manual_seed(0)
    model = make(name, norm, **small(name))
    assert neuron_layers(model), "record_states and the firing-rate monitor find no neuron"
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = (torch.rand(T, B, 3, 16, 16) < 0.5).float()
    y = torch.tensor([1, 7])
    out = model(x)
    assert out.shape == (T, B, 10) and torch.isfinite(out).all()
    nn.functional.cross_entropy(out.mean(0), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("connect", ["add", "and", "iand"])
@pytest.mark.parametrize("name", ["sew_resnet18", "sew_resnet34"])
def test_sew_connects_train(name, connect):
    torch.manual_seed(0)
    model = make(name, "tdbn", connect=connect, width=0.125)
    assert {m.connect for m in model.modules() if isinstance(m, ResidualBlock)} == {connect}
    model(torch.rand(T, B, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ------------------------------------------------------------------ parameter counts
def test_parameter_counts_match_the_docstrings():
    # hand-derived from the papers' layouts (see each docstring), not read off our own output
    cases = {
        "resnet19": ((3, 32, 32), 10, 12_697_994),
        "cifarnet": ((3, 32, 32), 10, 45_053_156),
        "vggsnn": ((2, 48, 48), 10, 9_268_746),
        "vgg11": ((3, 32, 32), 10, 9_228_362),
        "vgg16": ((3, 32, 32), 10, 14_724_042),
        "resnet18": ((3, 32, 32), 10, 11_173_962),
        "resnet34": ((3, 32, 32), 10, 21_282_122),
        "sew_resnet18": ((3, 32, 32), 10, 11_173_962),
        "sew_resnet34": ((3, 32, 32), 10, 21_282_122),
        "tdbn_dvsnet": ((2, 128, 128), 11, 1_908_235),
    }
    for name, (shape, classes, count) in cases.items():
        assert docstring_count(name) == count, name
        assert n_params(make(name, "bn", shape, classes)) == count, name


def test_vgg9_parameter_count():
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "vgg9.yaml"))
    name = cfg.pop("name")
    assert n_params(make(name, "bn", (3, 32, 32), 10, **cfg)) == 5_943_242  # stated in vgg's docstring
    assert "5,943,242" in inspect.getdoc(entry("model", "vgg").obj)


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_imagenet_stem_has_torchvisions_count(name):
    torchvision = pytest.importorskip("torchvision")
    ours = n_params(make(name, "bn", (3, 64, 64), 1000, stem="imagenet"))
    assert ours == n_params(getattr(torchvision.models, name)())  # 11,689,512 and 21,797,672


# ------------------------------------------------------------------ SEW connect functions (Fang et al. 2021, Eq. 4-6)
def test_sew_connect_functions_on_hand_tensors():
    a = torch.tensor([0.0, 0.0, 1.0, 1.0])  # residual branch spikes A
    s = torch.tensor([0.0, 1.0, 0.0, 1.0])  # shortcut spikes S
    assert CONNECT["add"](a, s).tolist() == [0, 1, 1, 2]  # A + S
    assert CONNECT["and"](a, s).tolist() == [0, 0, 0, 1]  # A AND S
    assert CONNECT["iand"](a, s).tolist() == [0, 1, 0, 0]  # (NOT A) AND S


def test_residual_block_connects_branch_and_shortcut():
    branch, shortcut = nn.Identity(), nn.Identity()
    block = ResidualBlock([branch], [], [], connect="iand")
    x = torch.tensor([0.0, 1.0])
    assert block(x).tolist() == [0.0, 0.0]  # (1 - x) * x
    with pytest.raises(ValueError, match="connect"):
        ResidualBlock([branch], [shortcut], [], connect="or")


# ------------------------------------------------------------------ norms where they sit
def residual_norm_ids(model: nn.Module) -> set[int]:
    """The norms whose outputs are summed: a branch's last norm and the shortcut's norm."""
    ids = set()
    for block in model.modules():
        if isinstance(block, ResidualBlock):
            for part in (block.branch, block.shortcut):
                norms = [m for m in part if isinstance(m, ThresholdDependentBatchNorm)]
                ids.update(id(m) for m in norms[-1:] if part is block.shortcut or m is part[-1])
    return ids


@pytest.mark.parametrize("name", ["resnet19", "resnet18", "tdbn_dvsnet"])
def test_tdbn_alpha_on_residual_norms(name):
    model = make(name, "tdbn", **small(name))
    residual = residual_norm_ids(model)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    shortcuts = sum(len(b.shortcut) > 0 for b in blocks)
    assert len(residual) == len(blocks) + shortcuts  # every branch's last norm and every shortcut norm
    for m in model.modules():
        if isinstance(m, ThresholdDependentBatchNorm):
            alpha = 1 / math.sqrt(2) if id(m) in residual else 1.0
            assert m.alpha == pytest.approx(alpha)
            assert torch.allclose(m.weight, torch.full_like(m.weight, alpha * m.v_th))


def test_alpha_override_replaces_the_configured_value_only_on_residual_norms():
    model = make("resnet19", "tdbn", norm_args={"alpha": 0.5}, width=0.125)
    residual = residual_norm_ids(model)
    alphas = {id(m): m.alpha for m in model.modules() if isinstance(m, ThresholdDependentBatchNorm)}
    assert residual and all(alphas[i] == pytest.approx(1 / math.sqrt(2)) for i in residual)
    assert {a for i, a in alphas.items() if i not in residual} == {0.5}


def test_norms_without_alpha_ignore_it_and_sew_keeps_alpha_one():
    neuron, norm_f = make_factories({"name": "lif"}, {"name": "atan"}, {"name": "bn"}, T)
    assert not hasattr(norm_f((4,), alpha=0.3), "alpha")
    sew = make("sew_resnet18", "tdbn", width=0.125)  # SEW sums spikes, not pre-activations
    assert {m.alpha for m in sew.modules() if isinstance(m, ThresholdDependentBatchNorm)} == {1.0}


@pytest.mark.parametrize("name", ["resnet19", "sew_resnet18", "tdbn_dvsnet"])
@pytest.mark.parametrize("norm", ["bn", "tdbn", "bntt"])
def test_zero_init_residual_silences_the_branch_scale(name, norm):
    model = make(name, norm, zero_init_residual=True, **small(name))
    for block in (m for m in model.modules() if isinstance(m, ResidualBlock)):
        last_norm = [m for m in block.branch if hasattr(m, "running_mean")][-1]
        assert torch.count_nonzero(last_norm.weight) == 0
    first = next(m for m in model.modules() if hasattr(m, "running_mean"))
    assert torch.count_nonzero(first.weight) > 0  # only the branches' last norms


def synapse_pairs(model: nn.Module):
    """(synapse, next layer) for every conv/linear followed by something in an nn.Sequential."""
    for seq in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        layers = list(seq)
        for a, b in zip(layers, layers[1:]):
            if isinstance(a, SeqWrap) and isinstance(a.module, (nn.Conv2d, nn.Linear)):
                yield a.module, b


@pytest.mark.parametrize("norm", ["bn", "tdbn", "layernorm", "none", "neunorm"])
@pytest.mark.parametrize("name", [n for n in BUILT if n != "mlp"])
def test_no_bias_before_a_norm(name, norm):
    model = make(name, norm, **small(name))
    norms = tuple(entry("norm", n).obj for n in available("norm") if n != "none")
    pairs = list(synapse_pairs(model))
    assert pairs
    for synapse, following in pairs:
        if isinstance(following, (NoNorm, SpikingNeuron)):
            assert synapse.bias is not None, (synapse, following)  # drives a neuron directly
        elif isinstance(following, norms):
            assert synapse.bias is None, (synapse, following)  # the norm's shift replaces it
    # NeuNorm always follows a neuron; in a SEW block it follows the connected spikes (first of block.out)
    sew_outs = {id(b.out) for b in model.modules() if isinstance(b, ResidualBlock) and isinstance(b.branch[-1], SpikingNeuron)}
    for seq in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        layers = list(seq)
        for i, layer in enumerate(layers):
            if isinstance(layer, NeuNorm):
                assert (i > 0 and isinstance(layers[i - 1], SpikingNeuron)) or (i == 0 and id(seq) in sew_outs)


# ------------------------------------------------------------------ residual models with truncated BPTT
@pytest.mark.parametrize("norm", ["tebn", "neunorm", "bntt"])
@pytest.mark.parametrize("name", ["resnet19", "sew_resnet18"])
def test_residual_models_run_chunk_by_chunk(name, norm):
    torch.manual_seed(0)
    model = make(name, norm, T=4, width=0.125).eval()
    x = (torch.rand(4, B, 3, 16, 16) < 0.5).float()
    with torch.no_grad():
        full = model(x)
        with carry_state(model) as carry:
            chunks = []
            for xc in x.split(2):
                chunks.append(model(xc))
                carry.next_chunk()
    assert torch.allclose(torch.cat(chunks), full, atol=1e-5)


def test_every_model_has_a_config_file():
    for name in available("model"):
        assert OmegaConf.load(CONFIGS / f"{name}.yaml").name == name
