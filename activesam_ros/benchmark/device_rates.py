"""The stream on a slow device, measured on a real video.

``activesam bench --video FILE --device-rate HZ ...`` replays the video
through the stream policy (fast mode, the given temporal parameters) as a
device that runs the model at HZ model frames per second would
(``stream.device_rate``: the model's cost simulated on the stamp clock, so
the figures do not depend on the load of the machine that measures them).
Per vocabulary and rate:

- model frames, and the share of them that **reuse** (the rest refresh;
  why, by reason);
- the share of camera frames that get **labels** (model or propagated; the
  rest are dropped), and the age of the labels (stamp seconds);
- the **agreement** of those labels with per-frame exact ActiveSAM, on every
  ``reference_every``-th frame (exact runs there only);
- beside it, per-frame exact's own agreement between consecutive frames (on
  those frames and the ones after them), and over the labels' ages: the
  agreement the same frames would have if each carried per-frame exact's
  labels of its model frame (exact's agreement with itself between frames
  as far apart, interpolated between the sampled distances). The tiny
  random-weight model flickers and drifts, so no temporal method agrees
  with it better than it agrees with itself over the same time, and older
  labels (a slower device) are bounded lower.

The replay is the ordinary ``StreamProcessor``; only the time is simulated.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..engine.config import ActiveSAMConfig
from ..engine.pipeline import ActiveSAM
from ..engine.vocabulary import Vocabulary
from ..stream.device_rate import replay
from ..stream.runtime import MODEL, Frame, StreamProcessor
from ..stream.temporal import TemporalConfig
from .video import agreement, markdown_table, read_video

REUSE = "reuse"


def bounced(frames: Sequence[np.ndarray], count: int) -> List[np.ndarray]:
    """``count`` frames of ``frames`` played forward, then backward, and so
    on: a short clip made long enough for a slow rate, with no cut at the turns."""
    if len(frames) < 2:
        return list(frames)[:count]
    cycle = list(frames) + list(frames[-2:0:-1])
    return [cycle[i % len(cycle)] for i in range(count)]


@dataclass(frozen=True)
class Reference:
    """Per-frame exact labels on the sampled frames (and the frame after each)."""

    every: int
    labels: Dict[int, np.ndarray]

    @property
    def sampled(self) -> List[int]:
        return sorted(i for i in self.labels if i % self.every == 0)

    def consecutive(self) -> List[float]:
        """Exact's agreement between each sampled frame and the next."""
        return self._apart(1)

    def _apart(self, lag: int) -> List[float]:
        return [agreement(self.labels[i], self.labels[i + lag]) for i in self.sampled if i + lag in self.labels]

    @cached_property
    def over_time(self) -> Tuple[List[int], List[float]]:
        """Exact's mean agreement with itself ``lag`` frames later, for lags
        of 0 (itself), 1 and multiples of ``every``."""
        lags, values = [0], [1.0]
        for lag in [1] + list(range(self.every, max(self.labels) + 1, self.every)):
            pairs = self._apart(lag)
            if pairs:
                lags.append(lag)
                values.append(float(np.mean(pairs)))
        return lags, values


def exact_reference(engine: ActiveSAM, frames: Sequence[np.ndarray], every: int, base: ActiveSAMConfig) -> Reference:
    """Per-frame exact ActiveSAM on every ``every``-th frame and the one after it."""
    engine.reconfigure(base.replace(mode="exact"))
    wanted = sorted({j for i in range(0, len(frames), every) for j in (i, i + 1) if j < len(frames)})
    return Reference(every, {i: engine.segment(frames[i]).labels for i in wanted})


def rate_row(engine: ActiveSAM, frames: Sequence[np.ndarray], fps: float, temporal: TemporalConfig,
             rate: float, reference: Reference, base: ActiveSAMConfig) -> Dict[str, Any]:
    """The stream under ``temporal`` at ``rate`` model frames per second (see the module doc)."""
    engine.reconfigure(base.replace(mode="fast"))
    processor = StreamProcessor(engine, temporal)
    stream = (Frame(rgb, stamp=i / fps, frame_id=str(i), camera="video") for i, rgb in enumerate(frames))
    reasons: Counter = Counter()
    ages: List[float] = []
    scores: Dict[str, List[float]] = {"model": [], "propagated": []}
    sampled_ages: List[float] = []
    labelled = 0
    for frame, out in replay(processor, stream, 1.0 / rate):
        if out is None:
            continue
        labelled += 1
        if out.source == MODEL:
            reasons[out.plan.reason] += 1
        else:
            ages.append(out.age)
        index = int(frame.frame_id)
        if index % reference.every == 0:
            scores[out.source].append(agreement(out.result.labels, reference.labels[index]))
            sampled_ages.append(out.age)
    model_frames = sum(reasons.values())
    every_score = scores["model"] + scores["propagated"]
    lags, over_time = reference.over_time
    own = np.interp(np.asarray(sampled_ages) * fps, lags, over_time) if sampled_ages else None
    return {
        "rate": rate,
        "frames": len(frames),
        "model_frames": model_frames,
        "reuse_share": reasons[REUSE] / model_frames if model_frames else 0.0,
        "refresh_reasons": dict(sorted(reasons.items())),
        "labelled_share": labelled / len(frames),
        "propagated_frames": len(ages),
        "label_age_mean": float(np.mean(ages)) if ages else 0.0,
        "label_age_max": float(np.max(ages)) if ages else 0.0,
        "agreement_mean": float(np.mean(every_score)) if every_score else None,
        "agreement_worst": float(np.min(every_score)) if every_score else None,
        "agreement_model_frames": float(np.mean(scores["model"])) if scores["model"] else None,
        "agreement_propagated": float(np.mean(scores["propagated"])) if scores["propagated"] else None,
        "agreement_frames": len(every_score),
        "exact_agreement_over_label_age": float(np.mean(own)) if own is not None else None,
    }


def measure_rates(model: Any, path: Path, vocabularies: Dict[str, Vocabulary], base: ActiveSAMConfig,
                  temporal: TemporalConfig, rates: Sequence[float], frames: int = 400, max_side: int = 384,
                  bounce: bool = False, reference_every: int = 8, progress: Optional[Any] = None) -> Dict[str, Any]:
    """The device-rate section of the benchmark report (see the module doc)."""
    if not rates or not all(isinstance(r, (int, float)) and math.isfinite(r) and r > 0 for r in rates):
        raise ValueError(f"device rates must be numbers of model frames per second > 0, got {list(rates)!r}")
    video, fps = read_video(path, frames, max_side)
    read = len(video)
    if bounce:
        video = bounced(video, frames)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine = ActiveSAM(model, next(iter(vocabularies.values())), base)
        out: Dict[str, Any] = {"file": str(path), "frames": len(video), "frames_read": read, "bounced": bounce,
                               "fps": fps, "seconds": len(video) / fps,
                               "size": [int(video[0].shape[1]), int(video[0].shape[0])],
                               "reference_every": reference_every, "temporal": asdict(temporal),
                               "vocabularies": {}}
        for name, vocabulary in vocabularies.items():
            engine.set_vocabulary(vocabulary)
            reference = exact_reference(engine, video, reference_every, base)
            consecutive = reference.consecutive()
            lags, over_time = reference.over_time
            rows = []
            for rate in rates:
                rows.append(rate_row(engine, video, fps, temporal, rate, reference, base))
                if progress is not None:
                    progress(f"{name}: {rate:g} model frames/s")
            out["vocabularies"][name] = {
                "classes": len(vocabulary),
                "exact_consecutive_agreement_mean": float(np.mean(consecutive)) if consecutive else None,
                "exact_consecutive_agreement_worst": float(np.min(consecutive)) if consecutive else None,
                "exact_agreement_over_time": {f"{lag / fps:.2f}": value for lag, value in zip(lags, over_time)},
                "rates": rows,
            }
        out.update(engine.buckets.report())
        return out
    finally:
        torch.set_num_threads(threads)


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def rates_table(report: Dict[str, Any]) -> str:
    """The device-rate section as a Markdown table."""
    rows = []
    for name, vocab in report["vocabularies"].items():
        own = (f"{_percent(vocab['exact_consecutive_agreement_mean'])} "
               f"(worst {_percent(vocab['exact_consecutive_agreement_worst'])})")
        for row in vocab["rates"]:
            rows.append([f"{name} ({vocab['classes']})", f"{row['rate']:g}", str(row["model_frames"]),
                         _percent(row["reuse_share"]), _percent(row["labelled_share"]),
                         f"{row['label_age_mean']:.2f} / {row['label_age_max']:.2f} s",
                         _percent(row["agreement_mean"]), _percent(row["agreement_worst"]),
                         _percent(row["exact_agreement_over_label_age"]), own])
    return markdown_table(
        f"{report['file']}: {report['frames']} frames ({report['seconds']:.1f} s"
        f"{', bounced' if report.get('bounced') else ''}) at {report['size'][0]}x{report['size'][1]}, "
        f"{report['fps']:g} fps; model: {report.get('model', '?')}; agreement with per-frame exact on every "
        f"{report['reference_every']}th frame",
        ["vocabulary", "model frames/s", "model frames", "reuse", "labelled", "label age mean / max",
         "agreement mean", "worst", "exact's own agreement over the labels' ages",
         "exact's own consecutive agreement"], rows)
