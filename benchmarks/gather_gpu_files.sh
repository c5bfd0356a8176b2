#!/usr/bin/env bash
# Gathers into DIR (default .gpu, ignored by git) what benchmarks/gpu_acceptance.py needs on a bare
# GPU machine without network: the wheels of jsonargparse and its signatures dependencies (the
# versions installed here, for Python 3.12) and the four Fashion-MNIST files of Debian's
# dataset-fashion-mnist. Needs the package registry and `apt-get install dataset-fashion-mnist`.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.gpu}"
fashion_mnist=/usr/share/datasets/fashion-mnist
if [ ! -f "$fashion_mnist/train-images-idx3-ubyte.gz" ]; then
    echo "gather_gpu_files.sh: no Fashion-MNIST in $fashion_mnist: apt-get install dataset-fashion-mnist" >&2
    exit 2
fi
rm -rf "$out"
mkdir -p "$out/wheels" "$out/fashion-mnist"
pinned=()
for name in jsonargparse docstring-parser typeshed-client; do
    pinned+=("$name==$(python -c "import importlib.metadata as m; print(m.version('$name'))")")
done
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    -d "$out/wheels" "${pinned[@]}"
cp "$fashion_mnist"/*-ubyte.gz "$out/fashion-mnist/"
du -sh "$out"
