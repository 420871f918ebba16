"""snntrain: config-driven training of spiking neural networks in PyTorch.

Python API::

    import snntrain
    snntrain.available("norm")                  # ['bn', 'bntt', 'layernorm', 'neunorm', 'none', 'tdbn', 'tebn']
    lif = snntrain.build("neuron", "lif", decay=0.9)
    snntrain.train(cfg, run_dir="outputs/mine")  # what the `snntrain` command runs
"""
__version__ = "0.1.0"

from . import data, layers, models, neurons, norm, surrogates, training  # noqa: E402  (registers components)
from .errors import ConfigError  # noqa: E402
from .registry import available, build, describe  # noqa: E402
from .training import train  # noqa: E402

__all__ = ["ConfigError", "available", "build", "describe", "train", "__version__"]
