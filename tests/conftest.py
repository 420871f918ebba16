"""Shared helpers: compose configs exactly as the command line does."""
from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_module


def pytest_configure(config):
    """Parallel workers share the cores: each worker, and every process a test starts, gets its share of
    threads (torch's default, one per core in every process, puts several busy-waiting OpenMP teams on
    the same cores and makes the suite nearly twice as slow). An OMP_NUM_THREADS already set is kept."""
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))


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
