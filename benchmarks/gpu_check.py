"""The GPU check: every CUDA path tested and our kernels set beside the peers', in one timed run.

Run on a machine with a CUDA GPU, as one command (``benchmarks/gpu_check.sh`` installs what the
machine lacks first), or on this machine with ``--cpu-dry-run``: the same sections end to end
at tiny sizes on the CPU, skipping what needs CUDA, so the script is known to work before any
GPU time is spent (``tests/test_gpu_check.py`` runs the dry run).

Sections, in order, each a subprocess with its own time limit cut to what the budget has left:

1. ``tests``: ``tests/test_cuda.py`` (nccl, fp16 with its scaler, ``torch.compile``), the
   Triton kernels compiled (``tests/test_triton.py``), and the backend and compact-storage
   parity tests with ``SNNTRAIN_TEST_DEVICE=cuda``;
2. ``lif_kernels``: multi-step LIF forward+backward at SpikingJelly's published shape
   (N=64, C=65,536, T=4 and 32, fp16 and fp32), snntrain's backends against SpikingJelly's
   and snnTorch (``benchmarks/lif_kernels.py``), time and peak memory;
3. ``open_neuromorphic``: the Open Neuromorphic framework benchmark's case at its published size
   (``benchmarks/open_neuromorphic.py``, when present);
4. ``train_step``: workloads A/B/C of ``benchmarks/train_step.py``;
5. ``cpu_bf16``: workload B on the host's CPU under bf16 autocast against the fp32 ANN limit
   (``trainer.precision=bf16-mixed`` on a CPU), where that CPU has bf16 units (AVX512-BF16 or AMX);
6. ``precision``: one short run each in fp32, ``16-mixed``, ``bf16-mixed`` and with
   ``trainer.compile=true``: test accuracy and training time;
7. ``plif_mnist``: ``experiment=plif_cnn_mnist`` on the real MNIST files for what is left of
   the budget (stopped with SIGTERM at the deadline; the finished epochs' test accuracy and
   samples/s are recorded).

Everything goes to ``<out>/gpu_check.json`` (written after every section, so a run cut short
still returns what it did) and ``<out>/gpu_check.log``; a short table is printed last.

    python benchmarks/gpu_check.py [--out DIR] [--budget 450] [--mnist DIR] [--only tests,lif_kernels]
    python benchmarks/gpu_check.py --cpu-dry-run --out /tmp/gc
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, has_bf16_units

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("tests", "lif_kernels", "open_neuromorphic", "train_step", "cpu_bf16", "precision", "plif_mnist")
# Each section's share: seconds it may take at most on the GPU (the PLIF run takes what is left).
CAPS = {"tests": 170, "lif_kernels": 75, "open_neuromorphic": 45, "train_step": 75, "cpu_bf16": 45, "precision": 110,
        "plif_mnist": 10**6}
MIN_PLIF_S = 45


class Check:
    def __init__(self, out: Path, budget: float, dry: bool, mnist: Path | None):
        self.out, self.dry, self.mnist = out, dry, mnist
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget
        self.device = "cpu" if dry else "cuda"
        self.result: dict = {"mode": "cpu-dry-run" if dry else "gpu", "budget_s": budget, "sections": {}}
        self.log = open(out / "gpu_check.log", "a", buffering=1)
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))

    # -- plumbing ---------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        self.result["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.result, indent=1, default=str))

    def env(self) -> dict:
        e = dict(os.environ)
        e["PYTHONUNBUFFERED"] = "1"
        e["SNNTRAIN_CPU_KERNEL"] = "0"  # the C++ CPU kernel's build is no part of this check
        e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH", "")) if p)
        if not self.dry:
            e["SNNTRAIN_TEST_DEVICE"] = "cuda"
        return e

    def sh(self, name: str, cmd: list[str], timeout: float, env: dict | None = None) -> dict:
        """Run one command with a time limit; its output goes to the log, the tail into the result."""
        self.log.write(f"\n===== {name}: {' '.join(cmd)} (limit {timeout:.0f} s)\n")
        t = time.monotonic()
        p = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
        try:
            text, _ = p.communicate(timeout=max(timeout, 1))
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            text, _ = p.communicate()
            timed_out = True
        self.log.write(text)
        return {"rc": p.returncode, "timed_out": timed_out, "wall_s": round(time.monotonic() - t, 1),
                "tail": text[-1500:], "text": text}

    def section(self, name: str, fn) -> None:
        if self.left() <= 5:
            self.result["sections"][name] = {"skipped": "budget spent"}
            self.save()
            return
        print(f"[{time.monotonic() - self.t0:6.1f} s] {name} ...", flush=True)
        try:
            r = fn(min(CAPS[name], self.left() - (0 if name == "plif_mnist" else self.reserve(name))))
        except Exception as e:  # one broken section must not lose the others
            r = {"error": f"{type(e).__name__}: {e}"}
        r.pop("text", None)
        self.result["sections"][name] = r
        self.save()

    def reserve(self, name: str) -> float:
        """Seconds kept back for the sections after ``name`` (the PLIF run's minimum)."""
        return MIN_PLIF_S if "plif_mnist" in self.todo[self.todo.index(name) + 1:] else 0

    # -- sections ---------------------------------------------------------------------------
    def tests(self, limit: float) -> dict:
        files = ["tests/test_cuda.py", "tests/test_triton.py"]
        # the parity tests that take their device from SNNTRAIN_TEST_DEVICE run on the GPU too
        files += [f"tests/{f}" for f in ("test_backends.py", "test_grad_storage.py")
                  if "SNNTRAIN_TEST_DEVICE" in (ROOT / "tests" / f).read_text()]
        if self.dry:
            files = ["tests/test_cuda.py"]
        # addopts replaced: the project's asks for two pytest-xdist workers, which a machine may lack
        cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "-o", "addopts=--strict-markers",
               *files]
        if not self.dry and _has("xdist"):
            cmd += ["-n", "6"]
        r = self.sh("tests", cmd, limit)
        summary = _pytest_summary(r["text"])
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", r["text"], re.M)
        return {**r, **summary, "failed_tests": failed[:60], "files": files}

    def lif_kernels(self, limit: float) -> dict:
        js = self.tmp / "lif_kernels.json"
        args = ["--json", str(js)]
        if self.dry:
            args += ["--device", "cpu", "--N", "2", "--C", "256", "--T", "2,4", "--reps", "2",
                     "--cases", "snntrain-torch,snntrain-fused,sj-torch,snntorch"]
        else:
            args += ["--device", "cuda", "--reps", "20"]
        r = self.sh("lif_kernels", [sys.executable, "benchmarks/lif_kernels.py", *args], limit)
        return {**r, **_load(js, self.out / "lif_kernels.json")}

    def open_neuromorphic(self, limit: float) -> dict:
        script = ROOT / "benchmarks" / "open_neuromorphic.py"
        if not script.exists():
            return {"skipped": "benchmarks/open_neuromorphic.py is not there"}
        args = ["--device", "cpu", "--small", "--steps", "20", "--rounds", "1"] if self.dry else ["--device", "cuda"]
        name = f"open_neuromorphic_{self.device}{'_small' if self.dry else ''}.json"
        return self.benchmark("open_neuromorphic", [sys.executable, str(script), *args], name, limit)

    def train_step(self, limit: float) -> dict:
        args = ["--device", self.device, "--rounds", "1" if self.dry else "4"]
        if self.dry:
            args += ["--workloads", "A", "--cases", "snntrain-fused", "--no-peak"]
        name = f"train_step_{self.device}{'_partial' if self.dry else ''}.json"
        return self.benchmark("train_step", [sys.executable, "benchmarks/train_step.py", *args], name, limit)

    def cpu_bf16(self, limit: float) -> dict:
        if not has_bf16_units():
            return {"skipped": f"this CPU has no bf16 units ({describe()})"}
        args = ["--device", "cpu", "--threads", "2", "--workloads", "B", "--rounds", "3", "--no-peak",
                "--cases", "snntrain-fused,ann@bf16,snntrain-fused@bf16"]
        return {**self.benchmark("cpu_bf16", [sys.executable, "benchmarks/train_step.py", *args],
                                 "train_step_cpu_partial.json", limit), "cpu": describe()}

    def benchmark(self, name: str, cmd: list[str], results_name: str, limit: float) -> dict:
        """A benchmark script that writes ``benchmarks/results/<results_name>``: run it, copy its results out.

        The dry run leaves the repository's results file as it found it."""
        results = ROOT / "benchmarks" / "results" / results_name
        before = results.read_bytes() if results.exists() else None
        r = self.sh(name, cmd, limit)
        got = _load(results, self.out / f"{name}.json")
        if self.dry:
            if before is None:
                results.unlink(missing_ok=True)
            else:
                results.write_bytes(before)
        return {**r, **got}

    def run_cli(self, name: str, overrides: list[str], limit: float, stop_at: float | None = None) -> dict:
        """One ``snntrain`` run in its own directory; with ``stop_at``, SIGTERM then (the run saves and stops)."""
        rundir = self.tmp / name
        cmd = [sys.executable, "-m", "snntrain", *overrides, f"device={self.device}", "trainer.progress=false",
               f"hydra.run.dir={rundir}"]
        self.log.write(f"\n===== {name}: {' '.join(cmd)}\n")
        t = time.monotonic()
        p = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        signalled = False
        try:
            if stop_at is not None and stop_at - time.monotonic() < limit:
                try:
                    text, _ = p.communicate(timeout=max(stop_at - time.monotonic(), 1))
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGTERM)
                    signalled = True
                    text, _ = p.communicate(timeout=60)
            else:
                text, _ = p.communicate(timeout=max(limit, 1))
        except subprocess.TimeoutExpired:
            p.kill()
            text, _ = p.communicate()
        self.log.write(text)
        m = {}
        if (rundir / "metrics.json").exists():
            m = json.loads((rundir / "metrics.json").read_text())
        keep = ("status", "epoch", "test_acc", "best_test_acc", "train_time_s", "samples_per_s", "test_loss")
        hist = [{k: h.get(k) for k in ("epoch", "test_acc", "samples_per_s", "train_acc")} for h in m.get("history", [])]
        return {"rc": p.returncode, "sigterm": signalled, "wall_s": round(time.monotonic() - t, 1),
                **{k: m.get(k) for k in keep}, "history": hist, "tail": text[-800:]}

    def precision(self, limit: float) -> dict:
        base = ["trainer.epochs=1", "trainer.limit_batches=3", "trainer.log_images_every=null"] if self.dry \
            else ["trainer.epochs=3", "trainer.log_images_every=null"]
        runs = {"fp32": [], "bf16-mixed": ["trainer.precision=bf16-mixed"]}
        if not self.dry:
            runs["16-mixed"] = ["trainer.precision=16-mixed"]
            runs["compile"] = ["trainer.compile=true"]
        out, end = {}, time.monotonic() + limit
        for name, extra in runs.items():
            if end - time.monotonic() < 5:
                out[name] = {"skipped": "section time spent"}
                continue
            out[name] = self.run_cli(f"precision_{name}", [*base, *extra], end - time.monotonic())
        return out

    def plif_mnist(self, limit: float) -> dict:
        if self.mnist is None or not (self.mnist / "MNIST" / "raw").is_dir():
            return {"skipped": f"no MNIST/raw under {self.mnist}"}
        args = ["experiment=plif_cnn_mnist", f"dataset.root={self.mnist}", "trainer.log_images_every=null"]
        if self.dry:
            args += ["trainer.epochs=1", "trainer.limit_batches=2", "T=2", "trainer.eval_batch_size=2000",
                     "model.plan=[8,M,8,M]", "model.classifier=[32,10]"]
            return self.run_cli("plif_mnist", args, limit)
        args += ["trainer.epochs=40", "trainer.num_workers=4", "trainer.eval_batch_size=1000"]
        return self.run_cli("plif_mnist", args, limit + 60, stop_at=time.monotonic() + limit)


def mnist_root(given: Path | None, tmp: Path) -> Path | None:
    """A folder holding ``MNIST/raw`` with the uncompressed files torchvision reads.

    ``given`` (or, by default, ``.gpudata/mnist`` in the repository, then ``../shared/data/mnist``) may
    already be such a root, or hold the four official ``*-ubyte.gz`` files, which are unpacked into ``tmp``.
    """
    import gzip

    for cand in [given] if given else [ROOT / ".gpudata" / "mnist", ROOT.parent / "shared" / "data" / "mnist"]:
        if cand is None:
            continue
        if (cand / "MNIST" / "raw").is_dir():
            return cand
        gz = sorted(cand.glob("*-ubyte.gz"))
        if len(gz) == 4:
            raw = tmp / "mnist" / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for f in gz:
                with gzip.open(f) as src, open(raw / f.name[:-3], "wb") as dst:
                    shutil.copyfileobj(src, dst)
            return raw.parents[1]
    return None


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _load(path: Path, copy_to: Path) -> dict:
    if not path.exists():
        return {}
    shutil.copyfile(path, copy_to)
    return {"json": copy_to.name, "data": json.loads(path.read_text())}


def _pytest_summary(text: str) -> dict:
    line = next((ln for ln in reversed(text.splitlines()) if re.search(r"\b(passed|failed|skipped|error)", ln)), "")
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", line)}
    return {"summary": line.strip("= "), "counts": counts}


def environment(dry: bool) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "host_cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_mem_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                   capability=f"{p.major}.{p.minor}")
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit",
                            "--format=csv,noheader"], capture_output=True, text=True)
        env["nvidia_smi"] = q.stdout.strip()
    for mod in ("spikingjelly", "snntorch", "hydra", "omegaconf", "norse"):
        try:
            m = __import__(mod)
            env[mod] = getattr(m, "__version__", "present")
        except Exception as e:
            env[mod] = f"missing ({type(e).__name__})"
    return env


def table(result: dict) -> str:
    s = result["sections"]
    lines = [f"gpu_check ({result['mode']}) on {result['env'].get('gpu', 'cpu')}, torch {result['env']['torch']},"
             f" {result.get('elapsed_s')} s"]
    t = s.get("tests", {})
    if t:
        lines.append(f"tests: {t.get('summary') or t.get('skipped') or t.get('error')}")
        lines += [f"  FAILED {n}" for n in t.get("failed_tests", [])[:15]]
    rows = s.get("lif_kernels", {}).get("data", {}).get("rows", [])
    if rows:
        lines.append("LIF fwd+bwd (ms, MB):")
        for r in rows:
            mem = r.get("peak_mb", r.get("saved_mb"))
            v = f"{r['ms']:8.3f} ms {mem:8.1f} MB" if "ms" in r else f"-- {r['error'][:70]}"
            lines.append(f"  {r['case']:<16}{r['dtype']:<5}T={r['T']:<3} {v}")
    for name in ("open_neuromorphic", "train_step", "cpu_bf16"):
        sec = s.get(name, {})
        if sec:
            lines.append(f"{name}: " + (sec.get("skipped") or sec.get("error") or
                                        f"rc {sec.get('rc')} in {sec.get('wall_s')} s, see {sec.get('json')}"))
    for w in s.get("cpu_bf16", {}).get("data", {}).get("results", []):
        lines += [f"  cpu {w['workload']} {case:<22}{c['ms']:9.1f} ms {c['x_limit']:.2f}x the fp32 ANN limit"
                  for case, c in w["cases"].items()]
    for name, r in s.get("precision", {}).items():
        if isinstance(r, dict):
            lines.append(f"precision {name:<11} acc {r.get('test_acc')}  train {r.get('train_time_s')} s  rc {r.get('rc')}"
                         if "rc" in r else f"precision {name}: {r}")
    p = s.get("plif_mnist", {})
    if p:
        lines.append("plif_mnist: " + (p.get("skipped") or
                     f"epochs {p.get('epoch')} test_acc {p.get('test_acc')} best {p.get('best_test_acc')} "
                     f"samples/s {p.get('samples_per_s')} status {p.get('status')}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU; skips what needs CUDA")
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "benchmarks" / "results" / "gpu_check"))
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for the whole check")
    ap.add_argument("--mnist", default=None, help="folder holding MNIST/raw or the four official .gz files "
                    "(default: .gpudata/mnist, else ../shared/data/mnist)")
    ap.add_argument("--only", default=None, help="comma-separated sections to run")
    a = ap.parse_args(argv)
    import torch

    if not a.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible; run with --cpu-dry-run to check the script on the CPU.", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    c = Check(out, a.budget, a.cpu_dry_run, None)
    c.mnist = mnist_root(Path(a.mnist) if a.mnist else None, c.tmp)
    c.result["env"] = environment(a.cpu_dry_run)
    c.todo = [s for s in SECTIONS if a.only is None or s in a.only.split(",")]
    c.save()
    for name in c.todo:
        c.section(name, getattr(c, name))
    shutil.rmtree(c.tmp, ignore_errors=True)
    print(table(c.result), flush=True)
    c.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
