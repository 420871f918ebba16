"""User-facing errors.

Every mistake a user can make in a config, a data folder or a checkpoint ends in a
:class:`ConfigError`: one paragraph that names the key, says what is wrong and how to
fix it. The command line prints it without a traceback and exits with status 2.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A bad config value, data folder or checkpoint, explained for the user."""


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
