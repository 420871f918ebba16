"""Training: the run engine, the trainers (``bptt``, ``stdp``), losses, optimizers, checkpoints."""
from . import losses, optim
from .engine import TrainerBase, build_trainer, train
from . import bptt, stdp  # noqa: E402  (register the trainers)

__all__ = ["TrainerBase", "build_trainer", "bptt", "losses", "optim", "stdp", "train"]
