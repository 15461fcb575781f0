#!/usr/bin/env bash
# Set up activesam_ros on a fresh Debian/Ubuntu machine, CPU only:
#   - WordNet 3.0 from the system packages (hypernym context tokens),
#   - a virtual environment .venv with the package and its test tools, torch,
#     torchvision and sam3 pinned together (constraints-cpu.txt).
# TORCH_INDEX=https://download.pytorch.org/whl/cpu takes torch and torchvision
# from that index first: PyPI's Linux torch is the CUDA build, several GB a CPU
# cannot use. PYTHON and VENV choose the interpreter and the environment.
# Safe to run again. On a GPU machine follow docs/install.md, "GPU".
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

apt_install() {
  local packages=(wordnet-base wordnet-sense-index)
  if dpkg -s "${packages[@]}" >/dev/null 2>&1; then return; fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "setup: not root and no sudo: skipping ${packages[*]} (hypernym tokens will be off)" >&2
      return
    fi
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
}

apt_install
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# Debian 12's pip 23.0 runs setuptools' legacy develop, which rejects setup.cfg's [develop].
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX:-}" ]; then
  "$VENV/bin/python" -m pip install -q -c constraints-cpu.txt torch torchvision --index-url "$TORCH_INDEX"
fi
"$VENV/bin/python" -m pip install -q -c constraints-cpu.txt -e ".[test]"
"$VENV/bin/python" -c "import torch, activesam_ros.engine.model as m; m._import_sam3(); import sam3; print(\"setup: done (torch\", torch.__version__, \"sam3\", sam3.__version__, \")\")"
