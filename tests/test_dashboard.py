"""TensorBoard content a run writes: hparams with the final metrics, per-stage images, histograms."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from snntrain.training import train
from snntrain.training.dashboard import flatten, parameter_stages, raster

from .conftest import compose_cfg


def _events(run_dir):
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def _png(image) -> np.ndarray:
    """An event file's image as an ``[H, W, 3]`` array."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))


def test_run_logs_hparams_figures_and_histograms(tmp_path):
    metrics = train(compose_cfg("model=vgg", "norm=bn", "trainer.epochs=2",
                                "trainer.limit_batches=3", "trainer.log_images_every=1", "trainer.progress=false"), tmp_path)
    ev = _events(tmp_path)
    tags = ev.Tags()
    # hparams: the session-start entry holds the flattened config; the metrics are the run's own scalars
    content = ev.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.name"].string_value == "vgg" and start.hparams["norm.name"].string_value == "bn"
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(1e-3)
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in exp.metric_infos} == {"test/acc", "test/loss", "train/acc", "train/loss", "best/test_acc"}
    assert {m.name.tag for m in exp.metric_infos} <= set(tags["scalars"])
    assert not [t for t in tags["scalars"] if t.startswith("hparams/")]  # no second copy of the metrics
    assert ev.Scalars("test/acc")[-1].value == pytest.approx(metrics["test_acc"])
    # figures: a raster, membrane curves per spiking stage at both epochs, and the rates over time
    stages = set(metrics["firing_rates"])
    assert stages == {"stage1", "stage2"}
    for stage in stages:
        for kind in ("spikes", "membrane"):
            imgs = ev.Images(f"{kind}/{stage}")
            assert [i.step for i in imgs] == [1, 2] and imgs[0].width >= 400 and imgs[0].height >= 400
            pixels = _png(imgs[-1])
            assert pixels.std() > 0  # not one flat colour
        red = _png(ev.Images(f"membrane/{stage}")[-1])
        assert ((red[..., 0] > 200) & (red[..., 1] < 80) & (red[..., 2] < 80)).sum() > 100  # the threshold line
    assert ev.Images("firing_rate_per_step")[-1].width >= 400
    # histograms by stage: the synapse weights driving each stage, and their gradients
    hist = set(tags["histograms"])
    assert {"weights/stage1", "weights/stage2", "weights/readout", "grads/stage1", "grads/readout",
            "weights/stage1/norm"} <= hist
    assert not [t for t in hist if ".module." in t]


def test_raster_draws_each_spike_where_it_happened():
    """A single spike at (t=2, neuron 5) of sample 1: the dark pixels sit in that place of the first panel only."""
    spikes = torch.zeros(4, 2, 8)
    spikes[2, 0, 5] = 1
    img = (raster(spikes, "stage1").permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert img.shape[0] >= 400 and img.shape[1] >= 400
    empty = (raster(torch.zeros(4, 2, 8), "stage1").permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    diff = np.abs(img.astype(int) - empty.astype(int)).sum(-1) > 100
    rows, cols = np.nonzero(diff)
    title_rows = rows > img.shape[0] * 0.08  # the title's count changes too; look below it
    rows, cols = rows[title_rows], cols[title_rows]
    assert rows.size > 0 and rows.max() < img.shape[0] / 2  # in the first sample's panel (the upper half)
    x_frac = (cols.mean() - 0) / img.shape[1]
    assert 0.55 < x_frac < 0.85  # t=2 of 0..3 sits right of the middle of the axes


def test_histogram_tags_name_the_stage():
    from snntrain.models.net import make_factories
    from snntrain.registry import build

    neuron, norm = make_factories({"name": "lif"}, {"name": "atan"}, {"name": "bn"}, 2)
    model = build("model", "mlp", context={"in_shape": (4,), "num_classes": 3, "neuron": neuron, "norm": norm, "T": 2},
                  hidden=[5, 6])
    tags = parameter_stages(model)
    assert tags["1.module.weight"] == "stage1" and tags["1.module.bias"] == "stage1/bias"
    assert tags["2.weight"] == "stage1/norm" and tags["4.module.weight"] == "stage2"
    assert tags["7.module.weight"] == "readout"


def test_flatten_gives_hparams_values():
    flat = flatten({"model": {"name": "mlp", "hidden": [256, 128]}, "resume": None, "T": 4,
                    "trainer": {"sync_norm": False}})
    assert flat == {"model.name": "mlp", "model.hidden": "[256, 128]", "resume": "None", "T": 4,
                    "trainer.sync_norm": False}


def test_images_can_be_turned_off(tmp_path):
    train(compose_cfg("trainer.epochs=1", "trainer.limit_batches=2", "trainer.log_images_every=null",
                      "trainer.progress=false"), tmp_path)
    tags = _events(tmp_path).Tags()
    assert not tags["images"] and not tags["histograms"]
