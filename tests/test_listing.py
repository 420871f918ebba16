"""What a researcher reads at the terminal: β and its effective default in snntrain-list, SOPs and energy in snntrain-eval."""
from __future__ import annotations

import subprocess
import sys

import pytest

import snntrain
from snntrain.registry import Effective


def test_decay_is_listed_as_beta_with_its_effective_default():
    rows = {r["name"]: r["args"] for r in snntrain.describe("neuron")}
    for name in ("lif", "alif"):
        assert rows[name]["decay"] == Effective(0.5, "β, unless tau is set: β = 1 - 1/tau")
    out = subprocess.run([sys.executable, "-c", "from snntrain.cli import list_main; list_main(['neuron'])"],
                         capture_output=True, text=True, timeout=120).stdout
    assert "decay=0.5 (β, unless tau is set" in out and "decay=None, tau" not in out
    from snntrain.neurons.lif import decay_from

    assert decay_from(None, None) == rows["lif"]["decay"].value  # the listing says what the neuron does


@pytest.mark.slow
def test_eval_prints_sops_and_energy(tmp_path):
    import json

    from snntrain.training import train

    from .conftest import compose_cfg

    metrics = train(compose_cfg("model.hidden=[16]", "trainer.epochs=1", "trainer.limit_batches=2",
                                "trainer.progress=false"), tmp_path)
    out = subprocess.run([sys.executable, "-m", "snntrain.evaluation", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    s, e = metrics["sops"], metrics["energy_uJ"]
    assert f"synaptic operations per sample: {s['ac']:,.0f} AC + {s['mac']:,.0f} MAC" in out.stdout
    assert f"energy per sample: {e['snn']:.4g} uJ (the ANN: {e['ann']:.4g} uJ" in out.stdout
    assert json.loads((tmp_path / "metrics.json").read_text())["sops"]["ac"] == s["ac"]
