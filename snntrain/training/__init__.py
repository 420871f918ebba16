"""Training: the loop, losses, optimizers, schedulers, checkpoints."""
from . import losses, optim
from .loop import evaluate, setup, train

__all__ = ["evaluate", "losses", "optim", "setup", "train"]
