"""CUDA paths: nccl data parallelism, fp16 with the gradient scaler, torch.compile. Skipped without a GPU.

Each compares against the plain single-process fp32 run on the same GPU, not only that it ran.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
import torch

from snntrain.training import build_trainer, train
from snntrain.training.distributed import Dist

from .conftest import compose_cfg

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SGD = ["optimizer=sgd", "optimizer.lr=0.1", "optimizer.momentum=0", "optimizer.weight_decay=0", "scheduler=none",
       "trainer.progress=false", "device=cuda"]


@dataclass(frozen=True)
class OneRankDDP(Dist):
    """One process that still takes the data-parallel path (DDP wrapper, nccl all-reduces, synced norms)."""

    @property
    def enabled(self) -> bool:  # type: ignore[override]
        return True


def _steps(trainer, n: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    trainer.train_mode()
    for _ in range(n):
        x, y = torch.rand(32, 64, device="cuda"), torch.randint(0, 10, (32,), device="cuda")
        trainer.train_step(x, y)
    return {k: v.detach().cpu().double() for k, v in trainer.model.state_dict().items() if v.is_floating_point()}


@pytest.mark.parametrize("norm", ["none", "bn", "bntt", "tebn"])
def test_nccl_ddp_with_synced_norms_equals_the_plain_run(tmp_path, norm):
    import torch.distributed as td

    overrides = [*SGD, f"norm={norm}", "trainer.sync_norm=true", "model.hidden=[64]"]
    torch.manual_seed(0)
    plain = _steps(build_trainer(compose_cfg(*overrides), "cuda"))
    td.init_process_group("nccl", store=td.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        ddp_trainer = build_trainer(compose_cfg(*overrides), "cuda", dist=OneRankDDP(0, 1, 0))
        assert isinstance(ddp_trainer.net, torch.nn.parallel.DistributedDataParallel)
        ddp = _steps(ddp_trainer)
    finally:
        td.destroy_process_group()
    assert max(float((plain[k] - ddp[k]).abs().max()) for k in plain) <= 1e-5


def test_fp16_mixed_on_cuda_trains_within_a_point_of_fp32(tmp_path):
    args = ["device=cuda", "trainer.epochs=3", "trainer.progress=false"]
    fp32 = train(compose_cfg(*args), tmp_path / "fp32")
    fp16 = train(compose_cfg(*args, "trainer.precision=16-mixed"), tmp_path / "fp16")
    assert fp16["test_loss"] != fp32["test_loss"]  # autocast was on
    assert abs(fp16["test_acc"] - fp32["test_acc"]) <= 0.01
    scaler = torch.load(tmp_path / "fp16" / "checkpoints" / "last.pt", weights_only=True)["scaler"]
    assert scaler and scaler["scale"] > 0  # the gradient scaler ran and is saved for resume


def test_compile_on_cuda_compiles_and_matches_eager(tmp_path, caplog):
    args = ["device=cuda", "trainer.epochs=2", "trainer.progress=false"]
    eager = train(compose_cfg(*args), tmp_path / "eager")
    with caplog.at_level(logging.WARNING):
        fast = train(compose_cfg(*args, "trainer.compile=true"), tmp_path / "compiled")
    assert "trainer.compile" not in caplog.text  # no fallback to eager
    assert abs(fast["test_acc"] - eager["test_acc"]) <= 0.01
