"""The C++ kernel is never built inside a run: the first run starts a background build and runs eagerly."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from snntrain.kernels import cpu


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty extensions folder, no kernel loaded, and Popen recorded instead of run."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("SNNTRAIN_CPU_KERNEL", raising=False)
    monkeypatch.setattr(cpu, "_KERNEL", None)
    monkeypatch.setattr(cpu, "_TRIED", False)
    calls = []

    class FakeProc:
        pid = os.getpid()  # alive: a second run must see the build as running

    def popen(args, **kwargs):
        calls.append((args, kwargs))
        return FakeProc()

    monkeypatch.setattr(subprocess, "Popen", popen)
    return calls


def test_first_run_starts_one_background_build_and_runs_eagerly(fresh, monkeypatch):
    assert cpu.kernel() is None
    assert len(fresh) == 1
    args, kwargs = fresh[0]
    assert args == [sys.executable, "-m", "snntrain.kernels.cpu"] and kwargs["start_new_session"]
    folder = cpu._build_dir()
    assert (folder / "building.pid").read_text() == str(os.getpid())
    assert cpu.kernel() is None and len(fresh) == 1  # asked again in the same process: no second build
    monkeypatch.setattr(cpu, "_TRIED", False)  # another run while the build is running
    assert cpu.kernel() is None and len(fresh) == 1


def test_a_dead_build_is_started_again(fresh):
    folder = cpu._build_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "building.pid").write_text("999999999")  # no such process
    assert cpu.kernel() is None and len(fresh) == 1


def test_a_failed_build_is_not_retried_by_runs(fresh):
    folder = cpu._build_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "failed.txt").write_text("no compiler")
    assert cpu.kernel() is None and fresh == []


def test_switched_off(fresh, monkeypatch):
    monkeypatch.setenv("SNNTRAIN_CPU_KERNEL", "0")
    assert cpu.kernel() is None and cpu.kernel(wait=True) is None and fresh == []


def test_the_name_follows_the_source(monkeypatch):
    name = cpu._name()
    monkeypatch.setattr(cpu, "_SOURCE", cpu._SOURCE + "\n// changed")
    assert cpu._name() != name  # a changed kernel is a new build, never a stale .so


def test_the_name_follows_the_processor(monkeypatch):
    """``-march=native`` builds for one CPU: another processor (a shared home on unlike nodes) gets its own build."""
    name = cpu._name()
    if Path("/proc/cpuinfo").exists():  # Linux: the instruction-set flags are part of it
        assert platform.machine() != "x86_64" or " sse2 " in cpu._cpu_signature()
    monkeypatch.setattr(cpu, "_cpu_signature", lambda: "another vendor\nanother model\nsse2")
    assert cpu._name() != name
