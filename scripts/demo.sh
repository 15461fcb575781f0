#!/usr/bin/env bash
# The main job on a machine without SAM 3 weights: segment real photographs
# (from the scikit-image wheel) with the tiny random-weight SAM 3, writing
# labels, overlays and JSON to out/demo. With weights, pass --checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
photos=$("$PY" - <<'PY'
import importlib.util, pathlib
root = pathlib.Path(list(importlib.util.find_spec("skimage").submodule_search_locations)[0]) / "data"
print(" ".join(str(root / n) for n in ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png")))
PY
)
# shellcheck disable=SC2086
.venv/bin/activesam segment $photos \
  --vocab "background; person; cat; cup, mug; motorcycle; plant; table; wall; floor; sky" \
  --background-threshold 0.4 --out out/demo "${@:---model=tiny}"
echo "demo: wrote $(ls out/demo | wc -l) files to out/demo (tiny model: random weights, labels mean nothing)"
