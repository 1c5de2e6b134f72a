# Shared settings for tools/*: sourced, not run.
# Everything installed lives outside the checkout, so every clone reuses it.
DEFORMSCOPE_CACHE="${DEFORMSCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/deformscope}"
# Pinned: torch 2.11.0 (new C++ ABI, CUDA 13.0 wheel) and its matching torchvision.
DEFORMSCOPE_TORCH_VERSION="2.11.0"
DEFORMSCOPE_TORCHVISION_VERSION="0.26.0"
DEFORMSCOPE_VENV="${DEFORMSCOPE_VENV:-$DEFORMSCOPE_CACHE/venv-torch$DEFORMSCOPE_TORCH_VERSION}"
DEFORMSCOPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFORMSCOPE_BUILD="${DEFORMSCOPE_BUILD:-$DEFORMSCOPE_ROOT/build}"
export CCACHE_DIR="${CCACHE_DIR:-$DEFORMSCOPE_CACHE/ccache}"
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
