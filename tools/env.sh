# Shared settings for tools/*: sourced, not run.
# Everything installed lives outside the checkout, so every clone reuses it.
DEFORMSCOPE_CACHE="${DEFORMSCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/deformscope}"
# Pinned: torch 2.11.0 (new C++ ABI, CUDA 13.0 wheel) and its matching torchvision.
DEFORMSCOPE_TORCH_VERSION="2.11.0"
DEFORMSCOPE_TORCHVISION_VERSION="0.26.0"
# For the ONNX tests' exports and their second reference (onnxruntime).
DEFORMSCOPE_ONNX_VERSION="1.23.2"
DEFORMSCOPE_ONNXSCRIPT_VERSION="0.7.2"
DEFORMSCOPE_ONNXRUNTIME_VERSION="1.31.1"
DEFORMSCOPE_VENV="${DEFORMSCOPE_VENV:-$DEFORMSCOPE_CACHE/venv-torch$DEFORMSCOPE_TORCH_VERSION}"
# A Python that already has torch + torchvision (e.g. on a GPU machine without
# internet) can be named instead of the venv: DEFORMSCOPE_PYTHON=python3.
DEFORMSCOPE_PYTHON_GIVEN="${DEFORMSCOPE_PYTHON:+1}"
DEFORMSCOPE_PYTHON="${DEFORMSCOPE_PYTHON:-$DEFORMSCOPE_VENV/bin/python}"
DEFORMSCOPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFORMSCOPE_BUILD="${DEFORMSCOPE_BUILD:-$DEFORMSCOPE_ROOT/build}"
export CCACHE_DIR="${CCACHE_DIR:-$DEFORMSCOPE_CACHE/ccache}"
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
# Paths inside the checkout are hashed relative to it, so every clone and worktree shares one cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$DEFORMSCOPE_ROOT}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
