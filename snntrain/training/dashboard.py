r"""What TensorBoard shows beyond scalars: hyperparameters, spike rasters, membrane traces, histograms.

* **HParams.** :func:`log_hparams` writes the flattened config (``model.name``,
  ``optimizer.lr``, ...) with the run's final metrics (``hparams/test_acc``, ...) into the
  run's own event file, so the runs of a sweep form one table in TensorBoard's HParams
  dashboard (and its parallel-coordinates view).
* **Images** (every ``trainer.log_images_every`` epochs and after the last one):
  :func:`activity_images` runs a few fixed test samples through the network and, per
  spiking stage, draws a spike raster (rows: the first neurons of the stage, columns: time
  steps; white = spike) and the membrane traces of the same neurons (grey levels from the
  lowest to the highest value shown). Tags ``spikes/<stage>`` and ``membrane/<stage>``.
* **Histograms**: ``weights/<name>`` and ``grads/<name>`` (the gradient of the epoch's
  last step) for every parameter.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..neurons import neuron_layers, record_states

#: neurons shown per stage, and pixels per time step / neuron
ROWS, PX = 64, 4


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


def log_hparams(writer: Any, cfg: dict[str, Any], metrics: dict[str, Any], step: int) -> None:
    """The config and the final metrics as one HParams entry of this run (in its own event file)."""
    from torch.utils.tensorboard.summary import hparams

    final = {f"hparams/{k}": float(metrics[k]) for k in ("test_acc", "best_test_acc", "test_loss", "train_acc",
                                                          "train_loss") if isinstance(metrics.get(k), (int, float))}
    exp, ssi, sei = hparams(flatten(cfg), final)
    fw = writer._get_file_writer()
    for summary in (exp, ssi, sei):
        fw.add_summary(summary)
    for tag, value in final.items():
        writer.add_scalar(tag, value, step)


def _grey(rows: Tensor, lo: float, hi: float) -> Tensor:
    """``[N, T]`` values -> a ``[1, N*PX, T*PX]`` image in [0, 1], each entry a PX x PX block."""
    img = ((rows.float() - lo) / max(hi - lo, 1e-12)).clamp(0, 1)
    return img.repeat_interleave(PX, 0).repeat_interleave(PX, 1).unsqueeze(0)


@torch.no_grad()
def activity_images(model: nn.Module, x_seq: Tensor) -> dict[str, Tensor]:
    """Per stage: ``spikes/<stage>`` and ``membrane/<stage>`` images of the first sample of ``x_seq`` ([T, B, ...])."""
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
    for name in layers:
        s = spikes[name][:, 0].flatten(1)[:, :ROWS].T  # [N, T]
        images[f"spikes/{name}"] = _grey(s, 0.0, float(s.max()) if s.numel() and s.max() > 0 else 1.0)
        mem = traces[name].get("mem")
        if mem is not None:
            m = mem[:, 0].flatten(1)[:, :ROWS].T
            images[f"membrane/{name}"] = _grey(m, float(m.min()), float(m.max()))
    return images


def log_histograms(writer: Any, model: nn.Module, step: int) -> None:
    for name, p in model.named_parameters():
        writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), step)
        if p.grad is not None:
            writer.add_histogram(f"grads/{name}", p.grad.detach().float().cpu(), step)


__all__ = ["activity_images", "flatten", "log_histograms", "log_hparams"]
