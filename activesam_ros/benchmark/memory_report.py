"""``bench --memory``'s report: the measured peaks, the fitted memory model
with its check on held-out points, and the peak per frame of every mode at
bucket sizes 8, 16 and 32 for the vocabularies of the work table."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, List, Mapping, Sequence

from ..engine.config import ActiveSAMConfig
from ..engine.memory_model import PATCH, STAGES, FrameShape, from_fit
from ..engine.pipeline import input_sizes
from .memory import FRAME_SIZE, fit
from .work import active_count
from .work_report import table_vocabularies

BUCKETS = (8, 16, 32)
"""Bucket sizes of the per-frame table."""

FRAME_MODES = (("exact", "exact", False), ("fast", "fast", False), ("stream reuse", "fast", True))
"""(row name, engine mode, reuse) of the per-frame table: a stream's reuse frames decode the
previous active set with the fast engine and run no preview."""

GIB = 2 ** 30


def frame_rows(fitted: Mapping[str, Any], config: ActiveSAMConfig, resolution: int) -> List[Dict[str, Any]]:
    """Peak memory per frame (model included) for every dtype, vocabulary, mode and bucket."""
    sizes = input_sizes(config.replace(resolution=resolution), SimpleNamespace(native=resolution, patch=PATCH))
    height, width = FRAME_SIZE
    rows = []
    for dtype, entry in fitted.items():
        if not {"encode", *STAGES} <= set(entry["stages"]):
            continue  # a dtype whose plan did not cover every stage
        model = from_fit(dtype, entry)
        for name, vocabulary in table_vocabularies().items():
            n = len(vocabulary.queries)
            for label, mode, reuse in FRAME_MODES:
                peaks = {}
                for bucket in BUCKETS:
                    shape = FrameShape(sizes.full, sizes.preview, sizes.screen, n, active_count(n, config),
                                       bucket, height * width)
                    peaks[str(bucket)] = round(model.frame_bytes(mode, shape, reuse))
                rows.append({"dtype": dtype, "resolution": sizes.full, "vocabulary": name, "queries": n,
                             "mode": label, "peak_bytes": peaks})
    return rows


def memory_report(rows: Sequence[Dict[str, Any]], model: str, config: ActiveSAMConfig) -> Dict[str, Any]:
    fitted = fit(rows)
    full = max(r["resolution"] for r in rows if r["stage"] == "encode")
    return {
        "schema": "activesam-bench-memory/1",
        "model": model,
        "measured": ("peak resident memory each stage adds (the kernel's VmHWM, reset before the stage, "
                     "minus the resident memory at its start), in worker processes; grounding forwards "
                     "run as on an accelerator (autocast, fast heads over the whole bucket)"),
        "frame_size": list(FRAME_SIZE),
        "points": list(rows),
        "fit": fitted,
        "frames": frame_rows(fitted, config, full),
    }


def memory_tables(report: Mapping[str, Any]) -> str:
    """The fit's check and the per-frame table, as Markdown."""
    lines = ["| dtype | stage | px | K | measured MiB | model MiB | error | |", "|---|---|---|---|---|---|---|---|"]
    for dtype, entry in report["fit"].items():
        for c in entry["checks"]:
            lines.append(f"| {dtype} | {c['stage']} | {c['resolution']} | {c['prompts']} | "
                         f"{c['measured_bytes'] / 2**20:.0f} | {c['predicted_bytes'] / 2**20:.0f} | "
                         f"{100 * c['error']:+.1f} % | {'held out' if c['held_out'] else ''} |")
    lines += ["", "| dtype | px | vocabulary (queries) | mode | " + " | ".join(f"bucket {b}" for b in BUCKETS) + " |",
              "|---|---|---|---|" + "---|" * len(BUCKETS)]
    for row in report["frames"]:
        cells = " | ".join(f"{row['peak_bytes'][str(b)] / GIB:.2f} GiB" for b in BUCKETS)
        lines.append(f"| {row['dtype']} | {row['resolution']} | {row['vocabulary']} ({row['queries']}) | "
                     f"{row['mode']} | {cells} |")
    return "\n".join(lines)
