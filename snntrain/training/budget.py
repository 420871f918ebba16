r"""The memory budget: what a run will need, estimated before the network exists, and refused if too much.

:func:`check` runs once the data is built and before the network is: it builds the
network on PyTorch's ``meta`` device (shapes, no storage) and runs it there over short
sequences, then extrapolates to the run's ``T`` and batch size:

.. math::

   M_\text{train} = P\,(2 + k + k') + S(T', B) + X(T, B) + 3\,A(T', B) + L, \qquad
   M_\text{eval} = P + X(T, B_e) + 2\,A(T, B_e) + L_e

* :math:`P`: parameters and buffers; gradients take :math:`P` again and the optimizer
  :math:`kP` (``k`` = 2 moments for Adam/AdamW, 1 momentum buffer for SGD with momentum),
  plus :math:`k'P` of temporaries while its (``foreach``) step runs (``k'`` = 2 for Adam, 1 for SGD);
* :math:`S(T', B)`: the tensors autograd saves for the backward pass (counted with
  ``torch.autograd.graph.saved_tensors_hooks``, each storage once, parameters left out),
  over :math:`T' = \min(T, \text{tbptt\_steps})` steps. A spike map saved as a synapse's
  input is counted as one bit per spike, as :mod:`snntrain.layers.bits` keeps it;
* :math:`X`: the input batch and its ``[T, B, ...]`` encoding; :math:`A`: the largest
  input + output of one layer: a layer's working memory (the backward holds the gradients of its
  output and input and its unpacked input, 3 A; an evaluation its input and output, 2 A);
* :math:`L`: the batches the data loader holds (``(num_workers * prefetch_factor + 1)`` batches).

``S``, ``A`` and ``P`` are measured at ``T`` = 2, 4, 8 and batch 1, 2 and extrapolated
quadratically in T (a layer that builds a ``T x T`` kernel grows so) and linearly in the
batch. The budget is the memory available (``MemAvailable`` of ``/proc/meminfo`` within the
cgroup's limit on CPU; the device's free memory on a GPU) unless ``trainer.memory_budget``
sets it (bytes, or a size such as ``"8GB"``, ``"512MiB"``). A run over the budget is
refused (exit 2) with the estimate, the budget and the keys that drive it. The factor
between the estimate and measured peaks is stated in ``docs/memory_budget.md`` and tested
in ``tests/test_budget.py``. The command line checks (:func:`enforcing`): ``snntrain`` the
larger of both, ``snntrain-eval`` :math:`M_\text{eval}` alone.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..errors import ConfigError
from .schema import parse_size

_MODE: contextvars.ContextVar[str | None] = contextvars.ContextVar("snntrain_budget_mode", default=None)
_TS, _BS = (2, 4, 8), (1, 2)


@contextlib.contextmanager
def enforcing(mode: str = "train") -> Iterator[None]:
    """Within this block :func:`check` refuses a ``mode`` (``"train"`` or ``"eval"``) over the budget.

    ``snntrain`` trains and ``snntrain-eval`` evaluates within it; outside it (building parts in a
    test or a notebook) nothing is checked.
    """
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


def size(n: float) -> str:
    """``n`` bytes for people: ``1.5 GB`` (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def available(device: torch.device) -> tuple[int, str]:
    """``(bytes, where)``: the memory this process may still take on ``device``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free memory of {device}"
    avail, where = None, "available RAM"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 2 ** 62
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                used = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2 ** 60 and int(limit) - used < avail:
            avail, where = max(int(limit) - used, 0), "memory left in this container's limit"
        break
    return avail, where


@dataclass
class Estimate:
    """Bytes a run needs, by part (see the module doc); ``total`` is the larger of training and evaluation."""

    params: int
    gradients: int
    optimizer: int
    activations: int
    inputs: int
    working: int
    loader: int
    evaluation: int
    total: int

    def parts(self) -> str:
        names = ("params", "gradients", "optimizer", "activations", "inputs", "working", "loader")
        return ", ".join(f"{n} {size(getattr(self, n))}" for n in names if getattr(self, n))


def _prod(shape: tuple[int, ...]) -> int:
    return math.prod(int(s) for s in shape)


def _meta_model(cfg: dict[str, Any], data: Any, T: int) -> torch.nn.Module:
    from ..models import make_factories
    from ..registry import build
    from .config import section_args

    neuron, norm = make_factories(cfg["neuron"], cfg["surrogate"], cfg["norm"], T)
    ctx = {"in_shape": data.in_shape, "num_classes": data.num_classes, "T": T, "neuron": neuron, "norm": norm}
    with torch.device("meta"):
        model = build("model", cfg["model"]["name"], context=ctx, **section_args(cfg["model"]))
    for m in model.modules():  # the saved spikes are credited as bits below; the meta path cannot test 0/1
        if getattr(m, "pack_spikes", False):
            m.pack_spikes = False
    return model


@contextlib.contextmanager
def _without_dynamo_import() -> Iterator[None]:
    """Run torch's Python meta kernels without importing ``torch._dynamo``.

    Most ``meta`` kernels are Python functions wrapped in ``torch._disable_dynamo``, whose
    first call imports ``torch._dynamo`` (over a second of a run's start) only to mark the
    function as one that dynamo must not trace. Nothing traces the meta pass, so inside this
    block, if ``torch._dynamo`` is not imported yet, a stand-in answers that first call and
    leaves each function as it is; on leaving, the stand-in is removed and the marks it left
    are deleted, so a later real import wraps every function as torch intends.
    """
    import sys
    import types

    if "torch._dynamo" in sys.modules:
        yield
        return
    marked: list = []

    def disable(fn, recursive=True, wrapping=True):  # torch._dynamo.disable's signature
        marked.append(fn)
        return fn

    stand_in = types.ModuleType("torch._dynamo")
    stand_in.disable = disable  # type: ignore[attr-defined]
    sys.modules["torch._dynamo"] = stand_in
    torch._dynamo = stand_in  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if sys.modules.get("torch._dynamo") is stand_in:
            del sys.modules["torch._dynamo"]
        if torch.__dict__.get("_dynamo") is stand_in:
            del torch._dynamo  # type: ignore[attr-defined]
        for fn in marked:
            with contextlib.suppress(AttributeError):
                delattr(fn, "__dynamo_disable")


def _measure(model: torch.nn.Module, x_shape: tuple[int, ...], train: bool) -> tuple[int, int]:
    """``(saved, working)`` bytes of one forward on ``meta`` (saved: for the backward, if ``train``)."""
    from ..neurons import neuron_layers

    own = {t.untyped_storage()._cdata for t in [*model.parameters(), *model.buffers()]}
    spikes: set[int] = set()
    packable_inputs: set[int] = set()
    working = [0]
    hooks = []

    def io(module, args, out):
        tensors = [a for a in args if isinstance(a, torch.Tensor)] + ([out] if isinstance(out, torch.Tensor) else [])
        working[0] = max(working[0], sum(t.untyped_storage().nbytes() for t in tensors))

    pool = [False]  # inside a max pool of a spike map: kept as bits, its argmax recomputed in the backward

    def before(mod, args):
        key = args[0].untyped_storage()._cdata
        packable_inputs.add(key)
        pool[0] = "MaxPool" in type(getattr(mod, "module", mod)).__name__ and key in spikes

    def after(mod, args, out):
        if pool[0] and isinstance(out, torch.Tensor):  # the max of spikes is a spike map
            spikes.add(out.untyped_storage()._cdata)
        pool[0] = False

    for m in model.modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(io))
        if hasattr(m, "pack_spikes"):
            hooks.append(m.register_forward_pre_hook(before))
            hooks.append(m.register_forward_hook(after))
    for n in neuron_layers(model).values():
        hooks.append(n.register_forward_hook(
            lambda mod, args, out: spikes.add(out.untyped_storage()._cdata) if isinstance(out, torch.Tensor) else None))
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key not in own and not (pool[0] and t.dtype == torch.int64):
            saved[key] = t.untyped_storage().nbytes()
        return t

    model.train(train)
    try:
        with torch.set_grad_enabled(train), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.zeros(x_shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    bits = spikes & packable_inputs  # spike maps a synapse keeps as one bit each
    total = sum(n // 32 if k in bits else n for k, n in saved.items())
    return total, working[0]


def _extrapolate(values: dict[tuple[int, int], float], T: int, B: int) -> float:
    """Quadratic in T through ``_TS``, linear in the batch through ``_BS``; never below 0."""

    def in_t(b: int) -> float:
        out = 0.0
        for i, ti in enumerate(_TS):
            w = 1.0
            for j, tj in enumerate(_TS):
                if i != j:
                    w *= (T - tj) / (ti - tj)
            out += w * values[(ti, b)]
        return out

    lo, hi = in_t(_BS[0]), in_t(_BS[1])
    return max(lo + (hi - lo) * (B - _BS[0]) / (_BS[1] - _BS[0]), 0.0)


def _optimizer_states(cfg: dict[str, Any]) -> tuple[int, int]:
    """``(states, temporaries)`` in units of the parameters' size: the buffers the optimizer keeps, and what its
    (``foreach``) step allocates on top while it runs."""
    opt = cfg["optimizer"]
    if opt["name"] == "sgd":
        return (1 if opt.get("momentum", 0) else 0), 1
    return 2, 2  # adam, adamw and unknown ones: two moments; the step's bias-corrected temporaries


def estimate(cfg: dict[str, Any], data: Any, mode: str = "train") -> Estimate:
    """The memory a run of ``cfg`` over ``data`` (a built :class:`~snntrain.data.bundle.DataBundle`) needs."""
    loop = cfg["trainer"]
    T = int(cfg["T"])
    world = max(int(os.environ.get("WORLD_SIZE", "1") or 1), 1)
    B = max(int(loop["batch_size"]) // world, 1)
    Be = int(loop.get("eval_batch_size", B))
    Tt = min(T, int(loop["tbptt_steps"])) if loop.get("tbptt_steps") else T
    sample = _prod(tuple(data.in_shape)) * 4  # one time step of one sample, fp32
    saved, work_train, work_eval, params = {}, {}, {}, {}
    with _without_dynamo_import():  # every meta pass of the estimate inside one block
        for t in _TS:
            model = _meta_model(cfg, data, t)
            params[(t, 1)] = params[(t, 2)] = sum(p.untyped_storage().nbytes()
                                                  for p in [*model.parameters(), *model.buffers()])
            for b in _BS:
                saved[(t, b)], work_train[(t, b)] = _measure(model, (t, b, *data.in_shape), train=True)
                _, work_eval[(t, b)] = _measure(model, (t, b, *data.in_shape), train=False)
    P = int(_extrapolate(params, T, 1))
    k, temporaries = _optimizer_states(cfg)

    def batch_bytes(b: int) -> int:  # the loader's batch (static data: one frame; temporal: T frames)
        return b * sample * (T if data.temporal else 1)

    workers = int(loop.get("num_workers") or 0)
    loader = lambda b: batch_bytes(b) * (workers * int(loop.get("prefetch_factor") or 2) + 1)  # noqa: E731
    inputs = batch_bytes(B) + T * B * sample
    activations = int(_extrapolate(saved, Tt, B))
    # the backward of the largest layer holds its output's gradient, its input's gradient and its unpacked input
    working = 3 * int(_extrapolate(work_train, Tt, B))
    evaluation = P + batch_bytes(Be) + T * Be * sample + 2 * int(_extrapolate(work_eval, T, Be)) + loader(Be)
    if mode == "eval":
        return Estimate(P, 0, 0, 0, batch_bytes(Be) + T * Be * sample, 2 * int(_extrapolate(work_eval, T, Be)),
                        loader(Be), evaluation, evaluation)
    train = P * (2 + k + temporaries) + activations + inputs + working + loader(B)
    return Estimate(P, P, (k + temporaries) * P, activations, inputs, working, loader(B), evaluation,
                    max(train, evaluation))


def _drivers(cfg: dict[str, Any], mode: str) -> str:
    loop, model = cfg["trainer"], cfg["model"]
    keys = [f"T={cfg['T']}"]
    keys.append(f"trainer.eval_batch_size={loop.get('eval_batch_size')}" if mode == "eval"
                else f"trainer.batch_size={loop['batch_size']}")
    widths = [f"model.{k}={v}" for k, v in model.items() if k != "name" and isinstance(v, (list, int, float))
              and not isinstance(v, bool) and k not in ("dropout", "conv_dropout")]
    return ", ".join(keys + widths[:3])


def check(cfg: dict[str, Any], data: Any, device: torch.device | str) -> Estimate | None:
    """Refuse (:class:`~snntrain.errors.ConfigError`) a run whose :func:`estimate` exceeds the budget."""
    mode = _MODE.get()
    if mode is None:
        return None
    device = torch.device(device)
    budget = parse_size(cfg["trainer"].get("memory_budget"))
    try:
        est = estimate(cfg, data, mode)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - a network the meta device cannot run: the run goes on unbudgeted
        import logging

        logging.getLogger("snntrain").warning(f"trainer.memory_budget: the memory this run needs could not be estimated "
                                              f"({type(err).__name__}: {str(err)[:200]}); it starts without a budget")
        return None
    where = "trainer.memory_budget"
    if budget is None:
        budget, where = available(device)
    if est.total > budget:
        if mode == "eval":
            need = f"evaluating this checkpoint needs about {size(est.total)} ({est.parts()})"
        else:
            train = est.params + est.gradients + est.optimizer + est.activations + est.inputs + est.working + est.loader
            need = (f"this run needs about {size(est.total)}: {size(train)} to train ({est.parts()}) and "
                    f"{size(est.evaluation)} to evaluate a batch of trainer.eval_batch_size="
                    f"{cfg['trainer'].get('eval_batch_size')}")
        raise ConfigError(
            f"trainer.memory_budget: {need}, more than the {size(budget)} budget ({where}); nothing was allocated. "
            f"The estimate grows with {_drivers(cfg, mode)}: lower them (or set trainer.tbptt_steps for long "
            f"sequences), or set trainer.memory_budget (e.g. 64GB) if you know better."
        )
    return est
