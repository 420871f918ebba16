"""What a benchmark ran on: the processor's name and the vector units that decide CPU speed.

The same code runs at different ratios on CPUs with and without AVX-512 or bf16 units (a
bf16 matmul without them is emulated, several times slower than float32), so every result
file records them. The fields come from :func:`snntrain.kernels.cpu.cpu_info`.
"""
from __future__ import annotations

import platform

from snntrain.kernels.cpu import cpu_info

#: the instruction sets that change which kernels run (``/proc/cpuinfo`` flag names)
ISA = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    return set(cpu_info().get("flags", "").split())


def has_bf16_units() -> bool:
    """Whether the CPU computes bf16 in hardware (AVX512-BF16 or AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def describe() -> dict[str, object]:
    """``{"cpu": name, "isa": [the ISA entries present]}``."""
    flags = cpu_flags()
    return {"cpu": cpu_info().get("model name") or platform.processor() or platform.machine(),
            "isa": [f for f in ISA if f in flags]}
