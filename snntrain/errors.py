"""User-facing errors, and the exit status each one ends the command with.

Every mistake a user can make in a config, a data folder or a checkpoint ends in a
:class:`ConfigError`: one paragraph that names the key, says what is wrong and how to
fix it. A run that was accepted and then had to stop ends in a :class:`RunError`
subclass. The command line prints either without a traceback and exits with the
error's ``exit_code``:

==========  ==========================================================================
exit status  meaning
==========  ==========================================================================
0           the run finished (or had already finished)
2           :class:`ConfigError`: bad config value, data folder, checkpoint, busy run directory
3           :class:`Diverged`: a non-finite loss or gradient under ``trainer.on_nonfinite=stop``
4           :class:`StorageError`: a checkpoint or metrics file could not be written (disk full, ...);
            :class:`PathError`: the run directory cannot be created or used (a file on its path, no permission)
130 / 143   :class:`Interrupted` by SIGINT / SIGTERM: a checkpoint of the exact step was saved
==========  ==========================================================================
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A bad config value, data folder or checkpoint, explained for the user."""

    exit_code = 2


class PathError(ConfigError):
    """A path the user gave (the run directory) cannot be created or used; nothing was written."""

    exit_code = 4


#: names users bring from other libraries, and what they are called here (``{name}``: the component's name)
ALIASES: dict[str, tuple[str, str]] = {
    "neuron.beta": ("neuron.decay", "{name}'s decay is β (snnTorch's beta)"),
    "neuron.alpha": ("neuron.decay_input", "{name}'s synaptic decay is decay_input (snnTorch's alpha)"),
    "neuron.v_threshold": ("neuron.threshold", "the firing threshold is neuron.threshold (SpikingJelly's v_threshold)"),
    "neuron.reset_mechanism": ("neuron.reset", "the reset is neuron.reset (snnTorch's reset_mechanism)"),
    "neuron.spike_grad": ("surrogate", "the surrogate gradient is its own group: surrogate=<name>"),
    "neuron.surrogate_function": ("surrogate", "the surrogate gradient is its own group: surrogate=<name>"),
    "trainer.lr": ("optimizer.lr", "the learning rate belongs to the optimizer: optimizer.lr"),
    "trainer.max_epochs": ("trainer.epochs", "Lightning's max_epochs is trainer.epochs"),
    "trainer.gradient_clip": ("trainer.gradient_clip_val", "gradient clipping is trainer.gradient_clip_val"),
    "trainer.T": ("T", "the number of time steps is the top-level T"),
    "model.T": ("T", "the number of time steps is the top-level T"),
    "dataset.batch_size": ("trainer.batch_size", "the batch size belongs to the trainer: trainer.batch_size"),
    "lr": ("optimizer.lr", "the learning rate is optimizer.lr"),
    "epoch": ("trainer.epochs", "the number of epochs is trainer.epochs"),
    "epochs": ("trainer.epochs", "the number of epochs is trainer.epochs"),
    "batch_size": ("trainer.batch_size", "the batch size is trainer.batch_size"),
    "num_steps": ("T", "the number of time steps is T (snnTorch's num_steps)"),
    "timesteps": ("T", "the number of time steps is T"),
    "time_steps": ("T", "the number of time steps is T"),
    "t": ("T", "the number of time steps is T (upper case)"),
}


def did_you_mean(key: str, valid: list[str], section: dict | None = None) -> str:
    """`` Did you mean x?`` for an unknown ``key`` among ``valid`` full keys (``""`` if nothing is close).

    Looks in order for a known alias (:data:`ALIASES`), the same key in another case, the
    closest keys by edit distance (difflib), and a key that ends the same way.
    """
    import difflib

    name = (section or {}).get("name", key.split(".")[0])
    if key in ALIASES:
        target, text = ALIASES[key]
        return f" Did you mean {target}? {text.format(name=name)}."
    lower = {v.lower(): v for v in valid}
    if key.lower() in lower:
        return f" Did you mean {lower[key.lower()]}?"
    close = difflib.get_close_matches(key.lower(), list(lower), n=2, cutoff=0.75)
    if close:
        return f" Did you mean {' or '.join(lower[c] for c in close)}?"
    tail = key.rsplit(".", 1)[-1].lower()
    ends = [v for v in valid if v.rsplit(".", 1)[-1].lower().startswith(tail) or tail.startswith(v.rsplit(".", 1)[-1].lower())]
    return f" Did you mean {ends[0]}?" if len(ends) == 1 and len(tail) >= 3 else ""


class ParamError(ConfigError):
    """A component rejected one of its arguments.

    Raised by :func:`check` inside a component's constructor with the bare argument
    name (``decay``); :func:`snntrain.registry.build` re-raises it with the config
    key the user typed (``neuron.decay``).
    """

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def check(ok: bool, param: str, message: str) -> None:
    """Raise :class:`ParamError` for ``param`` unless ``ok``."""
    if not ok:
        raise ParamError(param, message)


class RunError(RuntimeError):
    """An accepted run stopped early; the message says what was kept and what to do."""

    exit_code = 1


class Diverged(RunError):
    """A non-finite loss or gradient (``trainer.on_nonfinite=stop``)."""

    exit_code = 3


class StorageError(RunError):
    """A file of the run could not be written; the previous version of it is intact."""

    exit_code = 4


class Interrupted(RunError):
    """SIGINT or SIGTERM: the run saved a checkpoint of the exact step and stopped."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum
