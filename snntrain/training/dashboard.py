r"""What TensorBoard shows beyond scalars: hyperparameters, spike rasters, membrane traces, histograms.

* **HParams.** :func:`log_hparams` writes the flattened config (``model.name``,
  ``optimizer.lr``, ...) with the run's final metrics into the run's own event file, so
  the runs of a sweep form one table in TensorBoard's HParams dashboard. The keys the
  sweep varies (read from the sweep's ``multirun.yaml``; for a single run, the keys its
  overrides set) and ``seed`` are marked as differing, with the sweep's values as their
  domain, so TensorBoard lists and shows them first; each run is named by its overrides
  (``norm=tebn,seed=1``). The metrics are the scalars the run already logs (``test/acc``,
  ``test/loss``, ``train/acc``, ``train/loss``) and ``best/test_acc``.
* **Figures** (every ``trainer.log_images_every`` epochs and after the last one), drawn
  with matplotlib from a few fixed test samples (:func:`activity_images`): per spiking
  stage a spike raster (``spikes/<stage>``: time step on x, neuron on y, one panel per
  sample, as snnTorch's ``spikeplot.raster`` draws it), the membrane potential of a few
  neurons as curves over time with the threshold drawn (``membrane/<stage>``), and the
  firing rate of every stage at each time step (``firing_rate_per_step``).
* **Histograms** named by stage: ``weights/<stage>`` (the synapse weights that drive the
  stage: ``stage1``, ..., ``readout``) and ``weights/<stage>/<part>`` for its other
  parameters (``bias``, ``norm``, ``neuron``), and the same under ``grads/`` (the gradient of
  the epoch's last step), so a tag means the same place in every model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..neurons import SpikingNeuron, neuron_layers, record_states

#: neurons drawn per raster panel, samples (panels) per raster, membrane curves per stage
ROWS, SAMPLES, CURVES = 64, 4, 4
#: figure size in inches at DPI dots per inch: 640 x 480 pixels
SIZE, DPI = (6.4, 4.8), 100
#: final metric -> the scalar tag that holds it (the HParams table reads their last values)
METRIC_TAGS = {"test_acc": "test/acc", "test_loss": "test/loss", "train_acc": "train/acc", "train_loss": "train/loss",
               "best_test_acc": "best/test_acc"}


def flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden": [256]}}`` -> ``{"model.hidden": "[256]"}``: values TensorBoard's HParams accepts."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = str(v)  # lists, None
    return out


# ---------------------------------------------------------------- HParams
def _value(text: str) -> Any:
    """An override's value as YAML reads it (``0`` -> 0, ``bn`` -> "bn")."""
    import yaml

    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return v if isinstance(v, (bool, int, float, str)) else str(text)


def override_key(key: str, cfg: dict[str, Any]) -> str | None:
    """The flattened config key an override sets: ``norm`` -> ``norm.name``, ``+model.x`` -> ``model.x``."""
    key = key.lstrip("+~")
    if key.startswith("hydra") or "/" in key:
        return None
    if isinstance(cfg.get(key), dict) and "name" in cfg[key]:
        return f"{key}.name"
    return key


def swept(run_dir: Path, cfg: dict[str, Any]) -> tuple[str, dict[str, list[Any]]]:
    """``(this run's overrides as one string, {key: the values the sweep gives it})``.

    A sweep's job reads the sweep's ``multirun.yaml`` (one folder up); a single run reads its
    own ``.hydra/overrides.yaml`` (every key it sets).
    """
    import yaml

    def overrides(path: Path) -> list[str]:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            return []
        if isinstance(data, dict):  # multirun.yaml: the whole hydra config
            data = ((data.get("hydra") or {}).get("overrides") or {}).get("task")
        return [str(o) for o in data] if isinstance(data, list) else []

    own = [o for o in overrides(run_dir / ".hydra" / "overrides.yaml") if not o.startswith(("hydra", "trainer.progress"))]
    sweep = overrides(run_dir.parent / "multirun.yaml")
    domains: dict[str, list[Any]] = {}
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(sweep or own)
    except Exception:  # not Hydra's grammar (a hand-written file): no domains
        parsed = []
    for o in parsed:
        key = override_key(o.key_or_group, cfg)
        if key is None or (sweep and not o.is_sweep_override()):  # in a sweep, only the keys it varies
            continue
        try:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        except Exception:  # a range or interval Hydra cannot enumerate (Optuna's): no domain
            values = []
        domains[key] = [_value(v) for v in values]
    return ",".join(own), domains


def log_hparams(writer: Any, cfg: dict[str, Any], metrics: dict[str, Any], step: int) -> None:
    """The config and the final metrics as one HParams session of this run (in its own event file).

    The experiment config lists the keys the sweep varies and ``seed`` first (marked as
    differing, with their values as the domain), then the rest of the config.
    """
    from google.protobuf import struct_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata

    flat = flatten(cfg)
    run_dir = Path(getattr(writer, "log_dir", ".")).parent
    name, domains = swept(run_dir, cfg)
    domains.setdefault("seed", [flat.get("seed", 0)])
    first = [k for k in domains if k in flat]
    order = first + [k for k in flat if k not in domains]

    def value(v: Any) -> struct_pb2.Value:
        if isinstance(v, bool):
            return struct_pb2.Value(bool_value=v)
        if isinstance(v, (int, float)):
            return struct_pb2.Value(number_value=float(v))
        return struct_pb2.Value(string_value=str(v))

    kinds = {bool: api_pb2.DATA_TYPE_BOOL, int: api_pb2.DATA_TYPE_FLOAT64, float: api_pb2.DATA_TYPE_FLOAT64,
             str: api_pb2.DATA_TYPE_STRING}
    infos = []
    for k in order:
        info = api_pb2.HParamInfo(name=k, type=kinds[type(flat[k])], differs=k in domains)
        values = [v for v in domains.get(k, []) if type(v) is type(flat[k]) or (
            isinstance(v, (int, float)) and isinstance(flat[k], (int, float)) and not isinstance(v, bool))]
        if values:
            info.domain_discrete.extend([float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                                        for v in dict.fromkeys(values)])
        infos.append(info)
    metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in METRIC_TAGS.values()]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos)
    start = plugin_data_pb2.SessionStartInfo(group_name=name)
    for k in order:
        start.hparams[k].CopyFrom(value(flat[k]))
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS)

    def summary(tag: str, **data: Any) -> Summary:
        content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data)
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()))
        return Summary(value=[Summary.Value(tag=tag, metadata=meta)])

    fw = writer._get_file_writer()
    fw.add_summary(summary(metadata.EXPERIMENT_TAG, experiment=experiment))
    fw.add_summary(summary(metadata.SESSION_START_INFO_TAG, session_start_info=start))
    fw.add_summary(summary(metadata.SESSION_END_INFO_TAG, session_end_info=end))
    best = metrics.get("best_test_acc")
    if isinstance(best, (int, float)):
        writer.add_scalar(METRIC_TAGS["best_test_acc"], float(best), step)


# ---------------------------------------------------------------- figures
def _figure(rows: int = 1) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, axes


def _image(fig: Any) -> Tensor:
    """The figure as a ``[3, H, W]`` float image in [0, 1] (what ``writer.add_image`` takes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = torch.frombuffer(bytearray(canvas.buffer_rgba()), dtype=torch.uint8)
    w, h = canvas.get_width_height()
    return rgba.view(h, w, 4)[..., :3].permute(2, 0, 1).float() / 255.0


def raster(spikes: Tensor, stage: str) -> Tensor:
    """``spikes`` ``[T, B, N]`` -> a raster image: one panel per sample, a mark per spike (time on x, neuron on y).

    The neurons drawn (at most ``ROWS``) are spread evenly over the stage (all its channels).
    """
    T, B, N = spikes.shape
    fig, axes = _figure(B)
    for b, ax in enumerate(axes):
        t, n = torch.nonzero(spikes[:, b] > 0, as_tuple=True)
        ax.scatter(t.numpy(), n.numpy(), marker="|", s=max(4.0, 900.0 / max(N, 1)), c="black", linewidths=1.0)
        ax.set_xlim(-0.5, T - 0.5)
        ax.set_ylim(-0.5, N - 0.5)
        ax.set_ylabel(f"sample {b + 1}\nneuron", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("time step")
    axes[-1].set_xticks(range(T) if T <= 20 else list(range(0, T, max(1, T // 10))))
    fig.suptitle(f"{stage}: spikes of {N} neurons ({float(spikes.mean()):.3f} of entries spike)", fontsize=9)
    fig.tight_layout()
    return _image(fig)


def membrane(mem: Tensor, spikes: Tensor, threshold: Tensor | float, stage: str, label: str = "membrane potential") -> Tensor:
    """``mem`` and ``spikes`` ``[T, K]`` of K neurons (one sample) -> their membrane curves, threshold dashed."""
    T, K = mem.shape
    fig, (ax,) = _figure(1)
    th = torch.as_tensor(threshold, dtype=torch.float32).flatten()
    for k in range(K):
        line, = ax.plot(range(T), mem[:, k].numpy(), marker="o", markersize=3, label=f"neuron {k + 1}")
        fired = torch.nonzero(spikes[:, k] > 0).flatten().numpy()
        ax.plot(fired, mem[fired, k].numpy(), linestyle="none", marker="*", markersize=9, color=line.get_color())
    for v in sorted(set(float(x) for x in th[:K].tolist()))[:3]:
        ax.axhline(v, color="red", linestyle="--", linewidth=1.2, label=f"threshold {v:g}")
    ax.set_xlabel("time step")
    ax.set_ylabel(label)
    ax.set_xticks(range(T) if T <= 20 else list(range(0, T, max(1, T // 10))))
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"{stage}: membrane of {K} neurons (sample 1; * = spike)", fontsize=9)
    fig.tight_layout()
    return _image(fig)


def rates_per_step(spikes: dict[str, Tensor]) -> Tensor:
    """Per stage, the fraction of neurons that spike at each time step (averaged over the samples)."""
    fig, (ax,) = _figure(1)
    for stage, s in spikes.items():
        rate = (s > 0).float().flatten(2).mean((1, 2))
        ax.plot(range(len(rate)), rate.numpy(), marker="o", label=stage)
    ax.set_xlabel("time step")
    ax.set_ylabel("firing rate (spikes per neuron per step)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("firing rate per stage over time", fontsize=9)
    fig.tight_layout()
    return _image(fig)


def _chosen(s: Tensor, k: int) -> Tensor:
    """Indices of ``k`` neurons of ``s`` ``[T, N]`` to draw: those that spike first, then the others, in order."""
    active = (s > 0).any(0)
    order = torch.cat([torch.nonzero(active).flatten(), torch.nonzero(~active).flatten()])
    return order[:k]


@torch.no_grad()
def activity_images(model: nn.Module, x_seq: Tensor) -> dict[str, Tensor]:
    """Figures of ``x_seq`` ``[T, B, ...]`` going through ``model``: per stage ``spikes/<stage>`` and
    ``membrane/<stage>``, and ``firing_rate_per_step``; each a ``[3, H, W]`` image (see the module docstring)."""
    was_training = model.training
    model.eval()
    layers = neuron_layers(model)
    spikes: dict[str, Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: spikes.__setitem__(name, out))
             for name, m in layers.items()]
    try:
        with record_states(model) as traces:
            model(x_seq)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    images = {}
    for name, layer in layers.items():
        s = spikes[name][:, :SAMPLES].flatten(2).float().cpu()  # [T, B, N]
        shown = torch.linspace(0, s.shape[-1] - 1, min(ROWS, s.shape[-1])).round().long()  # spread over channels
        images[f"spikes/{name}"] = raster(s[..., shown], name)
        mem = traces[name].get("mem")
        if mem is not None:
            m = mem[:, 0].flatten(1).float().cpu()
            idx = _chosen(s[:, 0], CURVES)
            th = getattr(layer, "threshold", 1.0)
            th = torch.as_tensor(th).detach().float().cpu()
            th = th.flatten()[idx] if th.numel() == m.shape[1] else th.flatten()[:1]
            m, fired = m[:, idx], s[:, 0, idx]
            if getattr(layer, "reset", None) == "subtract":  # the potential that crossed the threshold: H = V + V_th S
                m, label = m + th * fired, "membrane potential (before reset)"
            else:
                label = "membrane potential (after reset)"
            images[f"membrane/{name}"] = membrane(m, fired, th, name, label)
    if spikes:
        images["firing_rate_per_step"] = rates_per_step({k: v.float().cpu() for k, v in spikes.items()})
    return images


# ---------------------------------------------------------------- histograms
def parameter_stages(model: nn.Module) -> dict[str, str]:
    """Parameter name -> its histogram tag under ``weights/``: ``stage<n>`` for the weights of the synapse that drives
    stage n, ``stage<n>/bias``, ``stage<n>/norm``, ``stage<n>/neuron``; ``readout`` after the last neuron."""
    from ..norm.fold import SYNAPSES, is_norm

    tags: dict[str, str] = {}
    pending: list[tuple[str, str]] = []
    n = 0
    for mod_name, m in model.named_modules():
        own = [(f"{mod_name}.{p}" if mod_name else p, p) for p, _ in m.named_parameters(recurse=False)]
        if isinstance(m, SpikingNeuron):
            n += 1
            tags.update({full: f"stage{n}{'' if part == '' else '/' + part}" for full, part in pending})
            tags.update({full: f"stage{n}/neuron" for full, _ in own})
            pending = []
            continue
        for full, p in own:
            part = "norm" if is_norm(m) else "" if (type(m) in SYNAPSES and p == "weight") else p
            pending.append((full, part))
    tags.update({full: f"readout{'' if part == '' else '/' + part}" for full, part in pending})
    return tags


def log_histograms(writer: Any, model: nn.Module, step: int) -> None:
    """``weights/<stage>`` and ``grads/<stage>`` histograms (several parameters of one tag are pooled)."""
    tags = parameter_stages(model)
    weights: dict[str, list[Tensor]] = {}
    grads: dict[str, list[Tensor]] = {}
    for name, p in model.named_parameters():
        tag = tags.get(name, "other")
        weights.setdefault(tag, []).append(p.detach().float().flatten().cpu())
        if p.grad is not None:
            grads.setdefault(tag, []).append(p.grad.detach().float().flatten().cpu())
    for kind, values in (("weights", weights), ("grads", grads)):
        for tag, parts in values.items():
            writer.add_histogram(f"{kind}/{tag}", torch.cat(parts), step)


__all__ = ["activity_images", "flatten", "log_histograms", "log_hparams", "parameter_stages"]
