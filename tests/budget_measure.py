"""Peak RSS one real training step adds, and the memory budget's estimate of it (run by tests/test_budget.py).

``python tests/budget_measure.py <overrides>`` prints one JSON line: the measured bytes, the
estimate of the step (gradients + optimizer + activations + inputs + working memory; the
parameters and data are already in memory when the step starts) and their ratio.
"""
import gc
import json
import resource
import sys
import threading
import time

import torch
from omegaconf import OmegaConf

from snntrain.cli import compose
from snntrain.training import budget
from snntrain.training.engine import build_trainer

torch.set_num_threads(1)
cfg = OmegaConf.to_container(compose(*sys.argv[1:]), resolve=True)
trainer = build_trainer(cfg, "cpu")
est = budget.estimate(cfg, trainer.data)
B = cfg["trainer"]["batch_size"]
x = torch.rand(B, *trainer.data.in_shape)
y = torch.randint(0, trainer.data.num_classes, (B,))
trainer.train_mode()
gc.collect()
page = resource.getpagesize()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page


base, before = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
peak, done = [base], [False]


def sample() -> None:  # the step's own peak, where the process had a higher one before it
    while not done[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.0005)


thread = threading.Thread(target=sample)
thread.start()
trainer.train_step(x, y)
done[0] = True
thread.join()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
measured = (after if after > before else peak[0]) - base
step = est.gradients + est.optimizer + est.activations + est.inputs + est.working
print(json.dumps({"args": sys.argv[1:], "measured": measured, "estimate": step, "ratio": step / measured,
                  "parts": est.parts()}))
