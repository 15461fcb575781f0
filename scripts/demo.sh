#!/usr/bin/env bash
# Segment four real photographs (they ship inside the scikit-image wheel) into
# out/demo: <stem>_labels.png, <stem>_overlay.png and <stem>.json for each,
# then say what was found. Run it again to replace its own outputs.
#
# Without a model flag the tiny random-weight SAM 3 runs: its labels mean
# nothing. The vocabulary has no `background` class and no calibration, so
# every pixel gets the class whose score is highest and the overlay shows the
# pipeline's real output, coloured regions; with calibration a random model's
# flat scores would make every pixel unlabeled and the overlay empty.
#
# Flags go to `activesam segment`: --checkpoint ~/models/sam3.pt (or --hub-id,
# --model) replaces the tiny model, --out DIR the folder, --device cuda ...
# VENV names the virtual environment (default .venv, as setup.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
VOCAB="person; cat; cup, mug; motorcycle; plant; table; wall; floor; sky; road"

out=out/demo
model=(--model tiny)
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --checkpoint | --checkpoint=* | --hub-id | --hub-id=* | --model | --model=*) model=() ;;
    --out) out="${args[i + 1]:-$out}" ;;
    --out=*) out="${args[i]#--out=}" ;;
  esac
done

mapfile -t photos < <("$PY" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("skimage")
if spec is None:
    raise SystemExit("demo: scikit-image is not installed (its wheel ships the photographs): run scripts/setup.sh")
root = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data"
for name in ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png"):
    print(root / name)
PY
)

# --overwrite: the demo replaces its own outputs; `activesam segment` still
# refuses to write over an input or through a link.
"$PY" -m activesam_ros.cli segment "${photos[@]}" --vocab "$VOCAB" --out "$out" --overwrite "${model[@]}" "$@"
"$PY" - "$out" "${photos[@]}" <<'PY'
import json, pathlib, sys

out, photos = pathlib.Path(sys.argv[1]), [pathlib.Path(p) for p in sys.argv[2:]]
random = False
for photo in photos:
    summary = json.loads((out / f"{photo.stem}.json").read_text())
    random = random or summary["model"].startswith("tiny")
    total = sum(c["pixels"] for c in summary["active_classes"]) or 1
    found = sorted(summary["active_classes"], key=lambda c: -c["pixels"])
    shares = ", ".join(f"{c['name']} {max(1, round(100 * c['pixels'] / total))} %" for c in found if c["pixels"])
    print(f"demo: {photo.name}: {shares}")
print(f"demo: labels, overlays and JSON in {out}/ (<stem>_overlay.png shows the classes in colour)")
if random:
    print("demo: these labels come from the tiny random-weight SAM 3 and mean nothing: the colours are "
          "speckled regions where random scores happen to be highest, unrelated to what is in the photographs. "
          "They show that the whole pipeline runs; with the released weights, pass --checkpoint sam3.pt.")
PY
