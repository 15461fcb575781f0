"""``activesam bench --work``: the counted-work report, its tables and key figures.

Counts (``work``) at every resolution, the stream mix per vocabulary
(measured by ``stream_mix`` or read from a file), the frame rates they imply
on named GPUs (estimates, calibrated on the paper's one measurement), where
the work goes, and what the exact-mode heads cut saved.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..engine import wordnet
from ..engine.config import ActiveSAMConfig
from ..engine.vocabulary import Vocabulary, canonicalize, load_vocabulary_file
from .inputs import class_names
from .summary import figure, figure_lines
from .work import (
    ELEMENTWISE,
    GPUS,
    IMAGE_SIZE,
    KEPT_INSTANCES,
    MODES,
    MODULE_NAMES,
    PAPER,
    PAPER_OTHERS,
    StageCheck,
    Stages,
    StreamMix,
    bandwidth_bound,
    estimates,
    frame_work,
    gpu_named,
    implied_efficiency,
    stage_table,
)

RESOLUTIONS = (1008, 644)
"""Full resolutions counted: the released model's, and 46 x 14 px."""

VOCABULARIES = (("voc21", 21), ("indoor", 40), ("ade20k", 150), ("generated", 1000))
"""Vocabularies of the table, by class count: shipped lists, and 1000 names
of the benchmark's list (``inputs.class_names``)."""

def table_vocabularies() -> Dict[str, Vocabulary]:
    out = {}
    for name, _ in VOCABULARIES:
        out[name] = Vocabulary.coerce(class_names(1000)[0] if name == "generated" else load_vocabulary_file(name))
    return out


def text_strings(vocabulary: Vocabulary, config: ActiveSAMConfig) -> int:
    """Strings the text encoder encodes once for this vocabulary: every
    canonical query and every distinct hypernym (cached per string)."""
    strings = {canonicalize(q) for q in vocabulary.queries}
    if config.hypernym_tokens > 0:
        for query in list(strings):
            strings.update(canonicalize(h) for h in wordnet.hypernyms(query, config.hypernym_tokens))
    return len(strings)


def _frames(stages: Mapping[int, Stages], vocabularies: Mapping[str, Vocabulary],
            mixes: Mapping[str, StreamMix], config: ActiveSAMConfig, kept: int,
            image_size: Tuple[int, int]) -> List[Dict[str, Any]]:
    frames = []
    for resolution, counted in stages.items():
        cfg = config.replace(resolution=resolution)
        for name, vocabulary in vocabularies.items():
            row = frame_work(counted, len(vocabulary.queries), len(vocabulary), cfg, mixes.get(name), kept, image_size)
            frames.append({"resolution": resolution, "vocabulary": name, **row})
    return frames


def _find(frames: Sequence[Dict[str, Any]], resolution: int, vocabulary: str) -> Dict[str, Any]:
    return next(f for f in frames if f["resolution"] == resolution and f["vocabulary"] == vocabulary)


def calibration(stages: Stages, config: ActiveSAMConfig, kept: int,
                image_size: Tuple[int, int]) -> Dict[str, Any]:
    """The efficiency the paper's measurement implies, and what its other
    speeds imply (same GPU, counted the same way)."""
    gpu = gpu_named(PAPER["gpu"])
    cfg = config.replace(resolution=stages.sizes.full)

    def counted(dataset: str, mode: str) -> Tuple[int, float]:
        vocabulary = load_vocabulary_file(dataset)
        row = frame_work(stages, len(vocabulary.queries), len(vocabulary), cfg, None, kept, image_size)
        return len(vocabulary.queries), row["modes"][mode]["gflop"]

    queries, gflop = counted(PAPER["dataset"], PAPER["mode"])
    efficiency = implied_efficiency(gflop, PAPER["fps"], gpu)
    others = []
    for point in PAPER_OTHERS:
        n, work = counted(point["dataset"], point["mode"])
        others.append({**point, "queries": n, "gflop_per_frame": work,
                       "implied_efficiency": implied_efficiency(work, point["fps"], gpu)})
    return {"paper": {**PAPER, "queries": queries}, "gpu": asdict(gpu), "counted_at": stages.sizes.full,
            "gflop_per_frame": gflop,
            "implied_efficiency": efficiency, "other_paper_speeds": others}


def cut_summary(stages: Stages, frames: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """What dominates one full-resolution prompt of sam3's own forward, and
    what the engine's two exact cuts of it save."""
    prompt = stages.breakdown["prompt_full"]
    sam3 = {k: v for k, v in prompt.items() if "(the engine's)" not in k}
    largest = max(sam3, key=sam3.get)
    f = stages.forward
    fusion = MODULE_NAMES["TransformerEncoderFusion"]
    ade = _find(frames, stages.sizes.full, "ade20k")["modes"]
    return {
        "resolution": stages.sizes.full,
        "prompt_gflop_by_stage": prompt,
        "largest_per_prompt_stage": largest,
        "largest_share_of_prompt": sam3[largest] / sum(sam3.values()),
        "cuts": [
            {"stage": fusion,
             "what": "the first encoder layer's self-attention over the image tokens (no prompt enters it) "
                     "computed once per forward instead of once per prompt (engine/shared_encoding.py)",
             "per_prompt_gflop_before": prompt[fusion],
             "per_prompt_gflop_after": prompt[f"{fusion} (the engine's)"],
             "per_forward_gflop_added": (f["decoder_shared"].fixed - f["decoder_full"].fixed).gflop},
            {"stage": "segmentation heads",
             "what": "sam3's pixel decoder, instance convolution and mask product replaced by the same sums "
                     "(image convolutions once per forward, one transposed convolution per prompt and stage, "
                     "the 1x1 convolution folded into the queries; engine/fused_heads.py)",
             "per_prompt_gflop_before": prompt["segmentation heads (sam3's)"],
             "per_prompt_gflop_after": prompt["segmentation heads (the engine's)"],
             "per_forward_gflop_added": ((f["exact_full"].fixed - f["decoder_shared"].fixed)
                                         - (f["sam3_full"].fixed - f["decoder_full"].fixed)).gflop},
        ],
        "ade20k_exact_gflop_before": ade["exact_sam3_forward"]["gflop"],
        "ade20k_exact_gflop_after": ade["exact"]["gflop"],
        "ade20k_decode_all_gflop_before": ade["decode_all_sam3_forward"]["gflop"],
        "ade20k_decode_all_gflop_after": ade["decode_all"]["gflop"],
    }


def figures(report: Mapping[str, Any]) -> List[Dict[str, Any]]:
    full = max(int(r) for r in report["stages"])
    ade = _find(report["frames"], full, "ade20k")["modes"]
    out = []
    if "stream_reuse" in ade:
        for base in ("exact", "exact_sam3_forward"):
            label = "exact" if base == "exact" else "exact as published (sam3's own forwards)"
            out.append(figure(f"stream with reuse / {label}, ADE20K 150 classes at {full} px (counted GFLOP)",
                              ade["stream_reuse"]["gflop"] / ade[base]["gflop"]))
    for resolution, stage in report["stages"].items():
        check = stage["checks"]["bucket"]
        out.append(figure(f"bucket of {check['prompts']} extrapolated from 1 and 2 prompts vs counted, "
                          f"{resolution} px (relative difference)", check["relative_difference"]))
    if report.get("real_check"):
        for name, row in report["real_check"]["stages"].items():
            out.append(figure(f"shape-only count vs real execution, {name} (relative difference)",
                              row["relative_difference"]))
    return out


def work_report(stages: Mapping[int, Stages], vocabularies: Mapping[str, Vocabulary],
                mixes: Mapping[str, StreamMix], config: ActiveSAMConfig, parameters: int,
                kept: int = KEPT_INSTANCES, image_size: Tuple[int, int] = IMAGE_SIZE,
                real_check: Optional[Mapping[str, StageCheck]] = None) -> Dict[str, Any]:
    """The JSON report (see the module doc); ``stages`` by full resolution."""
    full = max(stages)
    frames = _frames(stages, vocabularies, mixes, config, kept, image_size)
    stage_rows = {str(r): stage_table(s) for r, s in stages.items()}
    calibrated = calibration(stages[full], config, kept, image_size)
    text = {}
    for name, vocabulary in vocabularies.items():
        strings = text_strings(vocabulary, config)
        text[name] = {"classes": len(vocabulary), "queries": len(vocabulary.queries), "strings": strings,
                      "gflop_once": strings * stages[full].text_per_string.gflop}
    report: Dict[str, Any] = {
        "schema": "activesam-bench-work/1",
        "note": "Counted floating-point work of SAM 3's released architecture (random weights, nothing "
                "downloaded) per frame; frame rates are ESTIMATES from published peaks and an efficiency "
                "calibrated on the paper's one measurement, not measurements.",
        "model": {"architecture": "sam3.model_builder.build_sam3_image_model (released configuration)",
                  "parameters": parameters,
                  "weights": "shapes only (meta device), but 512 random ones (see counting.py)"},
        "config": config.as_dict(),
        "assumptions": {
            "kept_instances_per_decoded_prompt": kept,
            "fast_presence_floor": "every decoded prompt reaches it (its heads run: pessimistic)",
            "fast_screen": "keeps the prompts the preview would activate (the active set is exact mode's)",
            "image_size": list(image_size),
            "elementwise_flop_per_element": ELEMENTWISE,
            "activation_bytes": "every operation's new output once in bfloat16, none fused but attention "
                                "(flash attention writes only its output)",
            "stream_propagation": "optical flow on the CPU is not counted",
            "wordnet": "available" if wordnet.available() else "missing: no hypernym strings counted",
        },
        "stages": stage_rows,
        "text_once_per_vocabulary": text,
        "stream_mix": {name: asdict(mix) for name, mix in mixes.items()},
        "frames": frames,
        "where_the_work_goes": cut_summary(stages[full], frames),
        "calibration": calibrated,
        "estimates": estimates(frames, calibrated["implied_efficiency"]),
        "bandwidth_bound_stages": bandwidth_bound(stage_rows[str(full)]),
        "gpus": [asdict(g) for g in GPUS],
    }
    if real_check is not None:
        report["real_check"] = {"stages": {name: asdict(check) for name, check in real_check.items()}}
    report["figures"] = figures(report)
    return report


def _cell(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def work_tables(report: Mapping[str, Any]) -> str:
    """The report's key numbers as Markdown tables (docs/performance.md's)."""
    lines = ["Counted GFLOP per frame (SAM 3 released architecture; counted, not timed):", "",
             "| px | vocabulary | classes / queries | active | " + " | ".join(MODES) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in MODES) + " |"]
    for frame in report["frames"]:
        cells = [_cell(frame["modes"][m]["gflop"]) if m in frame["modes"] else "-" for m in MODES]
        lines.append(f"| {frame['resolution']} | {frame['vocabulary']} | {frame['classes']} / {frame['queries']} "
                     f"| {frame['active']} | " + " | ".join(cells) + " |")
    where = report["where_the_work_goes"]
    lines += ["", f"One prompt at {where['resolution']} px, GFLOP by stage: "
              + ", ".join(f"{k} {v:.1f}" for k, v in where["prompt_gflop_by_stage"].items()),
              f"largest per-prompt stage: {where['largest_per_prompt_stage']} "
              f"({100 * where['largest_share_of_prompt']:.0f} % of a prompt of sam3's own forward)"]
    lines += [f"cut, {c['stage']}: {c['per_prompt_gflop_before']:.1f} -> {c['per_prompt_gflop_after']:.1f} GFLOP "
              f"per prompt (+{c['per_forward_gflop_added']:.1f} per forward)" for c in where["cuts"]]
    lines += [f"ADE20K exact {where['ade20k_exact_gflop_before']:,.0f} -> {where['ade20k_exact_gflop_after']:,.0f}, "
              f"decode-all {where['ade20k_decode_all_gflop_before']:,.0f} -> "
              f"{where['ade20k_decode_all_gflop_after']:,.0f} GFLOP per frame"]
    cal = report["calibration"]
    lines += ["", f"ESTIMATES. Efficiency implied by the paper ({cal['paper']['dataset']}, "
              f"{cal['paper']['queries']} queries, {cal['paper']['fps']} frames/s on one {cal['gpu']['name']}, "
              f"{cal['gflop_per_frame']:,.0f} GFLOP/frame counted): {100 * cal['implied_efficiency']:.1f} % of "
              f"{cal['gpu']['bf16_dense_tflops']} TFLOP/s"]
    lines += [f"  {o['dataset']} ({o.get('method', 'ActiveSAM')}, {o['queries']} queries, {o['fps']} frames/s): "
              f"implies {100 * o['implied_efficiency']:.1f} %" for o in cal["other_paper_speeds"]]
    lines += ["", "| GPU (estimate) | px | vocabulary | " + " | ".join(MODES) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in MODES) + " |"]
    for row in report["estimates"]:
        if row["vocabulary"] in ("ade20k", "indoor"):
            cells = [f"{row['fps'][m]:.2f}" if m in row["fps"] else "-" for m in MODES]
            lines.append(f"| {row['gpu']} | {row['resolution']} | {row['vocabulary']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + figure_lines(report["figures"]))


def stream_mixes_from_json(data: Any, names: Sequence[str]) -> Dict[str, StreamMix]:
    """Stream mixes read from a file: one object for every vocabulary, or an
    object keyed by the table's vocabulary names (voc21, indoor, ade20k, generated)."""
    if not isinstance(data, dict):
        raise ValueError("the stream mix file must hold a JSON object")
    if set(data) <= set(names) and data and all(isinstance(v, dict) for v in data.values()):
        return {name: StreamMix.from_dict({"source": f"file ({name})", **value}) for name, value in data.items()}
    mix = StreamMix.from_dict({"source": "file", **data})
    return {name: mix for name in names}

