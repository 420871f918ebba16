"""``benchmarks/gpu_check.py --cpu-dry-run``: the device check runs end to end on the CPU, every section.

The GPU run is one prepared command on a lent machine; this dry run is what makes sure that command
works before device time is spent on it. Each section must have produced its numbers (not only exit 0).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402

pytestmark = pytest.mark.slow


def test_pytest_summary_is_read_from_the_last_counts_line():
    text = "....F\nFAILED tests/test_x.py::test_a - boom\n===== 1 failed, 12 passed, 3 skipped in 4.0s =====\n"
    assert gpu_check._pytest_summary(text)["counts"] == {"failed": 1, "passed": 12, "skipped": 3}


def test_mnist_root_unpacks_the_official_gz_files(tmp_path):
    import gzip

    src = tmp_path / "gz"
    src.mkdir()
    for n in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        with gzip.open(src / f"{n}-ubyte.gz", "wb") as f:
            f.write(n.encode())
    root = gpu_check.mnist_root(src, tmp_path / "tmp")
    assert (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").read_bytes() == b"t10k-labels-idx1"
    assert gpu_check.mnist_root(root, tmp_path / "other") == root  # already a root: used as it is
    assert gpu_check.mnist_root(tmp_path / "nowhere", tmp_path / "x") is None


def test_cpu_dry_run_runs_every_section(tmp_path):
    results = ROOT / "benchmarks" / "results"
    before = {p.name: p.read_bytes() for p in results.glob("*.json")}
    assert gpu_check.main(["--cpu-dry-run", "--out", str(tmp_path), "--budget", "400"]) == 0
    r = json.loads((tmp_path / "gpu_check.json").read_text())
    s = r["sections"]
    assert r["mode"] == "cpu-dry-run" and set(s) == set(gpu_check.SECTIONS)
    assert "skipped" in s["tests"]["counts"] and s["tests"]["rc"] == 0  # test_cuda.py collected, skipped on the CPU
    rows = s["lif_kernels"]["data"]["rows"]
    timed = {(x["case"], x["dtype"], x["T"]) for x in rows if "ms" in x}
    assert {("snntrain-fused", "fp32", 4), ("sj-torch", "fp32", 4), ("snntrain-torch", "fp16", 2)} <= timed
    assert all(x["spikes_match"] for x in rows if "spikes_match" in x)  # the same neuron fires the same spikes
    assert s["train_step"]["rc"] == 0 and s["train_step"]["data"]["results"]
    assert s["open_neuromorphic"]["rc"] == 0 and s["open_neuromorphic"]["data"]["steps"] == 20
    bf16 = s["cpu_bf16"]
    if gpu_check.has_bf16_units():  # workload B under bf16 autocast, with the fp32 ANN limit beside it
        assert bf16["rc"] == 0 and {"ann", "ann@bf16", "snntrain-fused@bf16"} <= set(bf16["data"]["results"][0]["cases"])
    else:
        assert "no bf16 units" in bf16["skipped"]
    for name in ("fp32", "bf16-mixed"):
        assert s["precision"][name]["rc"] == 0 and 0 <= s["precision"][name]["test_acc"] <= 1
    if s["plif_mnist"].get("skipped") is None:  # the real MNIST files are beside the checkout
        assert s["plif_mnist"]["status"] == "finished" and s["plif_mnist"]["history"][0]["test_acc"] is not None
    assert "gpu_check (cpu-dry-run)" in gpu_check.table(r)
    assert {p.name: p.read_bytes() for p in results.glob("*.json")} == before  # the repository's results untouched


def test_the_table_shows_the_cpu_bf16_ratios():
    cases = {"ann": {"ms": 400.0, "x_limit": 1.0}, "snntrain-fused@bf16": {"ms": 260.0, "x_limit": 0.65}}
    r = {"mode": "gpu", "env": {"torch": "x"}, "sections": {"cpu_bf16": {"data": {"results": [{"workload": "B", "cases": cases}]}}}}
    text = gpu_check.table(r)
    assert "cpu B snntrain-fused@bf16" in text and "260.0 ms 0.65x the fp32 ANN limit" in text
