"""TensorBoard content a run writes: hparams with the final metrics, per-stage images, histograms."""
from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from snntrain.training import train
from snntrain.training.dashboard import flatten

from .conftest import compose_cfg


def _events(run_dir):
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_run_logs_hparams_images_and_histograms(tmp_path):
    metrics = train(compose_cfg("model=vgg", "norm=bn", "trainer.epochs=2",
                                "trainer.limit_batches=3", "trainer.log_images_every=1", "trainer.progress=false"), tmp_path)
    ev = _events(tmp_path)
    tags = ev.Tags()
    # hparams: the plugin's session-start entry holds the flattened config
    content = ev.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.name"].string_value == "vgg" and start.hparams["norm.name"].string_value == "bn"
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(1e-3)
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in exp.metric_infos} >= {"hparams/test_acc", "hparams/best_test_acc"}
    assert ev.Scalars("hparams/test_acc")[-1].value == pytest.approx(metrics["test_acc"])
    # images: a raster and a membrane trace for every spiking stage, at both epochs
    stages = set(metrics["firing_rates"])
    assert stages == {"stage1", "stage2"}
    for stage in stages:
        for kind in ("spikes", "membrane"):
            imgs = ev.Images(f"{kind}/{stage}")
            assert [i.step for i in imgs] == [1, 2] and imgs[0].width == 4 * 4 and imgs[0].height > 0  # T=4 steps x 4 px
    # histograms of every parameter, and of its gradient
    hist = set(tags["histograms"])
    weights = {t for t in hist if t.startswith("weights/")}
    assert "weights/0.module.weight" in weights and {t.replace("weights/", "grads/") for t in weights} <= hist


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
