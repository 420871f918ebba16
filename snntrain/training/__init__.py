"""Training: the run engine, the trainers (``bptt``, ``stdp``), losses, optimizers, checkpoints."""
from . import losses, optim
from .engine import TrainerBase, build_trainer, train
from . import bptt, stdp  # noqa: E402  (register the trainers)
from .bptt import evaluate, setup  # noqa: E402

__all__ = ["TrainerBase", "build_trainer", "bptt", "evaluate", "losses", "optim", "setup", "stdp", "train"]
