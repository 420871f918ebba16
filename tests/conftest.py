"""Shared helpers: compose configs exactly as the command line does."""
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module


def pytest_sessionstart(session):
    """Build the C++ CPU kernel once, in the foreground: runs started by the tests then load it instead of
    starting a background build (see :mod:`snntrain.kernels.cpu`), and the kernel's tests test it."""
    from snntrain.kernels.cpu import kernel

    kernel(wait=True)


def compose_cfg(*overrides: str):
    """The config ``snntrain <overrides>`` would run with (Hydra's compose API)."""
    with initialize_config_module(config_module="snntrain.configs", version_base=None):
        return compose(config_name="train", overrides=list(overrides))


@pytest.fixture
def cfg_factory():
    return compose_cfg


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A folder holding small fixture files of every file-backed dataset, in their real formats."""
    from .fixtures import write_all

    return write_all(tmp_path_factory.mktemp("data"))
