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
4           :class:`StorageError`: a checkpoint or metrics file could not be written (disk full, ...)
130 / 143   :class:`Interrupted` by SIGINT / SIGTERM: a checkpoint of the exact step was saved
==========  ==========================================================================
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A bad config value, data folder or checkpoint, explained for the user."""

    exit_code = 2


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
