"""From measured samples to the report's numbers, the key figures and a table.

A mode's time per frame is a stratified median: the median of each kind of
frame (``refresh`` or ``reuse`` for temporal reuse, ``frame`` otherwise),
weighted by how often that kind occurs. Medians keep a busy machine's
stalls out of the numbers; the weights keep a stream's rare refreshes in
them (a plain median would show only its reuse frames). Forward time,
stage times and message time are taken the same way, so every ratio in the
report is a quotient of two numbers printed beside it.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from .measure import ModeRecord, Sample

MIB = 1024.0 * 1024.0

# Stage timings the engine reports, in pipeline order; "other" is the
# engine's time outside them (text assembly, presence bookkeeping) and
# "outside_engine" the caller's (a stream's planning and state update).
STAGES = ("screen", "preview_encode", "preview_decode", "encode", "decode", "fusion",
          "calibration", "instances", "other", "outside_engine")


def _stages(sample: Sample) -> Dict[str, float]:
    named = {k: v for k, v in sample.stages.items() if k != "total"}
    total = sample.stages["total"]
    return {**named, "other": total - sum(named.values()), "outside_engine": sample.wall - total}


def stratified_median(samples: Sequence[Sample], value: Callable[[Sample], float],
                      weights: Mapping[str, float]) -> float:
    """The weighted mean over frame kinds of each kind's median ``value``."""
    by_kind: Dict[str, List[float]] = defaultdict(list)
    for sample in samples:
        by_kind[sample.kind].append(value(sample))
    total = sum(weights[kind] for kind in by_kind)
    return sum(weights[kind] * statistics.median(values) for kind, values in by_kind.items()) / total


def summarize(record: ModeRecord, weights: Optional[Mapping[str, float]] = None,
              baseline_bytes: Optional[int] = None) -> Dict[str, Any]:
    """One mode's numbers. ``weights`` per frame kind default to how often
    each kind occurred; ``baseline_bytes`` turns peaks into growth."""
    samples = record.samples
    counts = Counter(sample.kind for sample in samples)
    weights = dict(weights) if weights is not None else {k: n / len(samples) for k, n in counts.items()}

    def take(value: Callable[[Sample], float]) -> float:
        return stratified_median(samples, value, weights)

    per_frame = take(lambda s: s.wall)
    forward = take(lambda s: s.forward)
    built = take(lambda s: s.messages)
    out: Dict[str, Any] = {
        "frames": len(samples),
        "kinds": dict(counts),
        "kind_weights": {k: weights[k] for k in counts},
        "time_per_frame_s": per_frame,
        "fps": 1.0 / per_frame,
        "forward_per_frame_s": forward,
        "overhead_ratio": per_frame / forward,
        "messages_per_frame_s": built,
        "overhead_ratio_with_messages": (per_frame + built) / forward,
        "stages_s": {name: take(lambda s, n=name: _stages(s).get(n, 0.0)) for name in STAGES},
        "decoded_queries": statistics.median(s.decoded for s in samples),
        "wall_mean_s": statistics.fmean(s.wall for s in samples),
        "agreement_with_exact": statistics.fmean(record.agreement) if record.agreement else None,
    }
    peaks = [s.peak_bytes for s in samples if s.peak_bytes is not None]
    if peaks:
        out["peak_memory_bytes"] = max(peaks)
        if baseline_bytes is not None:
            out["peak_memory_growth_bytes"] = max(peaks) - baseline_bytes
    return out


def speedups(modes: Mapping[str, Mapping[str, Any]], bases: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """frames/s of every mode over that of each base mode."""
    return {base: {name: m["fps"] / modes[base]["fps"] for name, m in modes.items() if name != base}
            for base in bases if base in modes}


def figure(name: str, value: Optional[float]) -> Dict[str, Any]:
    """One ratio a report is read by; None when the run did not measure it."""
    return {"name": name, "value": value}


def _scaling_row(report: Mapping[str, Any], size: int) -> Optional[Mapping[str, Any]]:
    return next((row for row in report["scaling"]["rows"] if row["vocabulary_size"] == size), None)


def figures(report: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The ratios that say how the modes compare, gathered from the report."""
    photos, video = report["photos"]["modes"], report["video"]["modes"]
    out = []
    for where, modes in (("photographs", photos), ("video", video)):
        out.append(figure(f"overhead ratio, fast ({where})", modes["fast"]["overhead_ratio"]))
        out.append(figure(f"pixel agreement fast vs exact ({where})", modes["fast"]["agreement_with_exact"]))
    out.append(figure("frames/s temporal reuse / per-frame fast (video)",
                      video["temporal"]["fps"] / video["fast"]["fps"]))
    out.append(figure("pixel agreement temporal reuse vs per-frame exact (video)",
                      video["temporal"]["agreement_with_exact"]))
    small, large = _scaling_row(report, 50), _scaling_row(report, max(report["scaling"]["vocabulary_sizes"]))
    ratio = growth = None
    if small is not None and large is not None and large is not small:
        ratio = large["modes"]["temporal"]["time_per_frame_s"] / small["modes"]["temporal"]["time_per_frame_s"]
        peak = max(m["peak_memory_growth_bytes"] for m in large["modes"].values())
        peak -= max(m["peak_memory_growth_bytes"] for m in small["modes"].values())
        growth = (peak - (large["text_bytes"] - small["text_bytes"])) / MIB
    size = large["vocabulary_size"] if large else "max"
    out.append(figure(f"temporal reuse time per frame |V|={size} / |V|=50", ratio))
    out.append(figure(f"peak memory growth |V|=50->{size} beyond the text encodings (MiB)", growth))
    return out


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f}"


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _mode_table(modes: Mapping[str, Mapping[str, Any]]) -> List[str]:
    shown = ("screen", "preview_encode", "preview_decode", "encode", "decode", "fusion", "calibration", "instances",
             "other")
    head = ["mode", "ms/frame", "fps", "overhead", "agree"] + list(shown) + ["messages"]
    rows = [head]
    for name, m in modes.items():
        rows.append([name, _ms(m["time_per_frame_s"]), f"{m['fps']:.3g}", f"{m['overhead_ratio']:.2f}",
                     _percent(m["agreement_with_exact"])]
                    + [_ms(m["stages_s"][s]) for s in shown] + [_ms(m["messages_per_frame_s"])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in rows]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def table(report: Mapping[str, Any]) -> str:
    """A short human-readable account of the report (milliseconds per frame)."""
    env, model = report["environment"], report["model"]
    lines = [f"activesam bench: {model['description']}",
             f"on {env['device_name']} ({env['device']}), torch {env['torch']}, sam3 {env['sam3']}, "
             f"{_count(env['torch_threads'], 'thread')}, load {env['load_average_start']} -> {env['load_average_end']}"]
    photos, video = report["photos"], report["video"]
    lines += ["", f"photographs: {_count(len(photos['images']), 'photograph')}, each {_count(photos['repeats'], 'time')}, "
                  f"longer side at most {photos['max_side']} px, "
                  f"|V| = {photos['vocabulary_size']}; text stage (once per vocabulary): "
                  f"{photos['text']['prepare_s']:.2f} s, forwards {photos['text']['text_forward_s']:.2f} s, "
                  f"{photos['text']['text_strings']} strings"]
    lines += _mode_table(photos["modes"])
    lines += ["", f"video: {video['frames']} frames of {video['width']}x{video['height']}, |V| = "
                  f"{video['vocabulary_size']}, per-frame modes on "
                  + ("every frame" if video["reference_every"] == 1 else f"1 frame in {video['reference_every']}")]
    lines += _mode_table(video["modes"])
    lines += ["speed-up over " + base + ": " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
              for base, ratios in video["speedups"].items()]
    rows = report["scaling"]["rows"]
    lines += ["", "scaling: ms/frame (peak growth MiB) per |V|; text MiB: "
              + ", ".join(f"{r['vocabulary_size']}: {r['text_bytes'] / MIB:.1f}" for r in rows)]
    lines.append("mode".ljust(10) + "".join(f"{r['vocabulary_size']:>18}" for r in rows))
    for name in rows[0]["modes"]:
        cells = [f"{_ms(r['modes'][name]['time_per_frame_s'])} ({r['modes'][name]['peak_memory_growth_bytes'] / MIB:.0f})"
                 for r in rows]
        lines.append(name.ljust(10) + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines + figure_lines(report["figures"]))


def figure_lines(figures: Sequence[Mapping[str, Any]]) -> List[str]:
    """The key figures as lines of the stderr table."""
    lines = ["", "key figures:"]
    for f in figures:
        value = "not measured" if f["value"] is None else f"{f['value']:.4g}"
        lines.append(f"  {f['name']}: {value}")
    return lines
