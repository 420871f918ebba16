"""Training: the loop, losses, optimizers, schedulers, checkpoints."""
from . import losses, optim
from .loop import evaluate, setup, train
from . import stdp  # noqa: E402  (registers trainer.mode=stdp in loop.TRAINERS)

__all__ = ["evaluate", "losses", "optim", "setup", "train"]
