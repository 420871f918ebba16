"""Mixed precision, gradient accumulation and clipping, compilation: against equations and the plain run."""
from __future__ import annotations

import logging

import pytest
import torch

import snntrain
from snntrain import ConfigError
from snntrain.training import bptt, train

from .conftest import compose_cfg

FAST = ["trainer.epochs=1", "trainer.limit_batches=4", "trainer.progress=false", "trainer.log_images_every=null"]


def _model(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def _max_diff(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path):
    sgd = ["optimizer=sgd", "optimizer.lr=0.1", "optimizer.weight_decay=0"]
    train(compose_cfg(*FAST, *sgd, "trainer.batch_size=64"), tmp_path / "full")
    m = train(compose_cfg(*FAST, *sgd, "trainer.limit_batches=8", "trainer.batch_size=32",
                          "trainer.accumulate_grad_batches=2"), tmp_path / "acc")
    assert torch.load(tmp_path / "acc" / "checkpoints" / "last.pt", weights_only=True)["position"]["step"] == 4
    assert _max_diff(_model(tmp_path / "full"), _model(tmp_path / "acc")) <= 1e-5
    assert m["epoch"] == 1


def test_an_epochs_last_short_window_still_steps(tmp_path):
    train(compose_cfg(*FAST, "trainer.limit_batches=5", "trainer.accumulate_grad_batches=2"), tmp_path)
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["position"]["step"] == 3  # 2 + 2 + 1


def test_clipping_bounds_the_update_by_the_equation(tmp_path):
    """One plain SGD step: ||delta theta|| = lr * min(clip, ||g||)."""
    sgd = ["optimizer=sgd", "optimizer.lr=0.5", "optimizer.momentum=0", "optimizer.weight_decay=0",
           "trainer.limit_batches=1", "scheduler=none"]
    torch.manual_seed(0)  # as train() seeds before building: the same initial weights
    parts = bptt.setup(compose_cfg(*FAST, *sgd))
    before = {k: v.clone() for k, v in parts["model"].state_dict().items()}
    train(compose_cfg(*FAST, *sgd, "trainer.gradient_clip_val=0.001"), tmp_path)
    after = _model(tmp_path)
    step = torch.sqrt(sum(((after[k] - before[k]).double() ** 2).sum() for k in before if before[k].is_floating_point()
                          and "running" not in k))
    assert float(step) == pytest.approx(0.5 * 0.001, rel=1e-4)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_trains_close_to_fp32(tmp_path, precision):
    args = ["trainer.epochs=2", "trainer.progress=false"]
    fp32 = train(compose_cfg(*args), tmp_path / "fp32")
    half = train(compose_cfg(*args, f"trainer.precision={precision}"), tmp_path / precision)
    assert half["test_loss"] != fp32["test_loss"]  # autocast was on
    assert abs(half["test_acc"] - fp32["test_acc"]) <= 0.02
    ckpt = torch.load(tmp_path / precision / "checkpoints" / "last.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())  # fp32 master weights


@pytest.mark.parametrize("norm", ["bn", "bntt", "tdbn", "tebn", "neunorm", "layernorm"])
def test_surrogates_and_norms_stay_finite_under_autocast(norm):
    from snntrain.models import make_factories

    T, x = 4, torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.bfloat16, torch.float16):
        for surrogate in snntrain.available("surrogate"):
            neuron, norm_f = make_factories({"name": "lif"}, {"name": surrogate}, {"name": norm}, T)
            model = snntrain.build("model", "mlp", context={"in_shape": (1, 8, 8), "num_classes": 10, "T": T,
                                                            "neuron": neuron, "norm": norm_f}, hidden=[32, 32])
            with torch.autocast("cpu", dtype=dtype):
                out = model(x.unsqueeze(0).expand(T, *x.shape))
                loss = torch.nn.functional.cross_entropy(out.mean(0).float(), torch.arange(8) % 10)
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads), (norm, surrogate, dtype)
            assert torch.isfinite(loss) and out.dtype == dtype  # autocast was on


def test_gradient_keys_are_refused_by_a_gradient_free_trainer(tmp_path):
    with pytest.raises(ConfigError, match="trainer.precision: trainer=stdp follows no gradients"):
        train(compose_cfg("trainer=stdp", "trainer.precision=bf16-mixed"), tmp_path)


def test_compile_falls_back_to_eager_with_a_message(tmp_path, monkeypatch, caplog):
    def broken(module, *a, **k):
        def fail(*args):
            raise RuntimeError("no C++ compiler found")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="snntrain"):
        compiled = train(compose_cfg(*FAST, "trainer.compile=true"), tmp_path / "c")
    assert "trainer.compile: compiling failed (RuntimeError: no C++ compiler found)" in caplog.text
    eager = train(compose_cfg(*FAST), tmp_path / "e")
    assert compiled["test_loss"] == eager["test_loss"]
    assert _max_diff(_model(tmp_path / "c"), _model(tmp_path / "e")) == 0
