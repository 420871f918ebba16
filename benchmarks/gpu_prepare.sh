#!/usr/bin/env bash
# Run here, before the device command: fetch, as wheels for the GPU machine's Python (3.12, x86-64),
# what snntrain and the peers need there beyond its image (PyTorch, Triton, CuPy, numpy are there),
# and copy the real MNIST files. Both folders are git-ignored and travel with the device tool's `carry`.
#   bash benchmarks/gpu_prepare.sh            ->  .whl/  .gpudata/mnist/
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
grep -qx '/.gpudata/' .git/info/exclude 2>/dev/null || echo /.gpudata/ >> .git/info/exclude
mkdir -p .whl .gpudata/mnist
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" -d .whl \
  hydra-core==1.3.8 omegaconf==2.3.1 spikingjelly==2.0.0 snntorch==1.0.0 tonic==1.7.0 loguru==0.7.3 SciencePlots==2.2.2 \
  ${GPU_EXTRA_WHEELS:-}
# hydra's parser runtime is published as a source archive only: build its (pure Python) wheel here
ls .whl/antlr4_python3_runtime-4.9.3-*.whl >/dev/null 2>&1 || python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
src=${MNIST_GZ:-../shared/data/mnist}
if ls "$src"/*-ubyte.gz >/dev/null 2>&1; then cp "$src"/*-ubyte.gz .gpudata/mnist/; fi
du -sh .whl .gpudata
