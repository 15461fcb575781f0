"""The benchmark's plots, drawn with OpenCV (already a dependency): time
per frame against vocabulary size, one line per mode, log-scaled x axis
(``plot_scaling``); counted work per frame as bars (``plot_work``)."""

from __future__ import annotations

import math
from typing import Any, List, Mapping, Sequence, Tuple

import cv2
import numpy as np

WIDTH, HEIGHT = 900, 600
LEFT, RIGHT, TOP, BOTTOM = 90, 200, 60, 70
COLOURS = {"fast": (31, 119, 180), "exact": (214, 39, 40), "temporal": (44, 160, 44)}  # RGB
OTHER = (100, 100, 100)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _nice_step(span: float, ticks: int = 5) -> float:
    """A 1-2-5 step that cuts ``span`` into about ``ticks`` parts."""
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(f * power for f in (1, 2, 5, 10) if f * power >= raw)


def _text(canvas: np.ndarray, text: str, org: Tuple[int, int], scale: float = 0.5,
          colour: Tuple[int, int, int] = (0, 0, 0), align: str = "left") -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    x = {"left": org[0], "center": org[0] - w // 2, "right": org[0] - w}[align]
    cv2.putText(canvas, text, (x, org[1] + h // 2), FONT, scale, colour, 1, cv2.LINE_AA)


def plot_scaling(rows: Sequence[Mapping[str, Any]], title: str) -> bytes:
    """Write a PNG of ``time_per_frame_s`` per mode against ``vocabulary_size``."""
    sizes = [row["vocabulary_size"] for row in rows]
    modes = list(rows[0]["modes"])
    times = {m: [row["modes"][m]["time_per_frame_s"] for row in rows] for m in modes}
    top = max(max(v) for v in times.values())
    step = _nice_step(top)
    y_max = step * math.ceil(top / step)
    lo, hi = math.log10(min(sizes)), math.log10(max(sizes))
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP

    def point(size: float, seconds: float) -> Tuple[int, int]:
        x = x0 + (math.log10(size) - lo) / (hi - lo) * (x1 - x0)
        return int(round(x)), int(round(y0 - seconds / y_max * (y0 - y1)))

    canvas = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    ticks = np.arange(0.0, y_max + step / 2, step)
    for value in ticks:
        y = point(sizes[0], value)[1]
        cv2.line(canvas, (x0, y), (x1, y), (225, 225, 225), 1)
        _text(canvas, f"{value:g}", (x0 - 8, y), align="right")
    for size in sizes:
        x = point(size, 0)[0]
        cv2.line(canvas, (x, y0), (x, y1), (225, 225, 225), 1)
        _text(canvas, str(size), (x, y0 + 16), align="center")
    cv2.rectangle(canvas, (x0, y1), (x1, y0), (0, 0, 0), 1)
    _text(canvas, "vocabulary size |V| (log scale)", ((x0 + x1) // 2, HEIGHT - 25), 0.55, align="center")
    _text(canvas, "s / frame", (10, y1 - 25), 0.55)
    _text(canvas, title, (x0, 25), 0.5)
    for i, mode in enumerate(modes):
        colour = COLOURS.get(mode, OTHER)
        points: List[Tuple[int, int]] = [point(s, t) for s, t in zip(sizes, times[mode])]
        cv2.polylines(canvas, [np.array(points, dtype=np.int32)], False, colour, 2, cv2.LINE_AA)
        for p in points:
            cv2.circle(canvas, p, 4, colour, -1, cv2.LINE_AA)
        y = y1 + 20 + 24 * i
        cv2.line(canvas, (x1 + 15, y), (x1 + 45, y), colour, 2, cv2.LINE_AA)
        _text(canvas, mode, (x1 + 52, y))
    ok, png = cv2.imencode(".png", np.ascontiguousarray(canvas[:, :, ::-1]))
    if not ok:
        raise OSError("OpenCV could not encode the plot as PNG")
    return png.tobytes()


WORK_COLOURS = {"decode_all": (127, 127, 127), "exact": (214, 39, 40), "fast": (31, 119, 180),
                "stream_reuse": (44, 160, 44), "stream_propagation": (148, 103, 189)}  # RGB


def plot_work(frames: Sequence[Mapping[str, Any]], modes: Sequence[str], title: str) -> bytes:
    """Write a PNG of counted TFLOP per frame: one group of bars per
    vocabulary, one bar per mode, log-scaled y axis, values on the bars."""
    shown = [m for m in modes if all(m in frame["modes"] for frame in frames)]
    values = [[frame["modes"][m]["gflop"] / 1000 for m in shown] for frame in frames]
    lo = 10 ** math.floor(math.log10(min(v for row in values for v in row)))
    hi = 10 ** math.ceil(math.log10(max(v for row in values for v in row)))
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP

    def y_of(tflop: float) -> int:
        return int(round(y0 - (math.log10(tflop) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (y0 - y1)))

    canvas = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    decade = lo
    while decade <= hi * 1.001:
        y = y_of(decade)
        cv2.line(canvas, (x0, y), (x1, y), (225, 225, 225), 1)
        _text(canvas, f"{decade:g}", (x0 - 8, y), align="right")
        decade *= 10
    group = (x1 - x0) / len(frames)
    bar = group * 0.8 / len(shown)
    for g, frame in enumerate(frames):
        left = x0 + g * group + group * 0.1
        for b, mode in enumerate(shown):
            tflop = frame["modes"][mode]["gflop"] / 1000
            a, c = int(left + b * bar), int(left + (b + 1) * bar) - 2
            cv2.rectangle(canvas, (a, y_of(tflop)), (c, y0), WORK_COLOURS.get(mode, OTHER), -1)
            _text(canvas, f"{tflop:.3g}", ((a + c) // 2, y_of(tflop) - 9), 0.35, align="center")
        _text(canvas, f"{frame['vocabulary']} ({frame['classes']})", (int(x0 + (g + 0.5) * group), y0 + 16),
              align="center")
    cv2.rectangle(canvas, (x0, y1), (x1, y0), (0, 0, 0), 1)
    _text(canvas, "vocabulary (classes)", ((x0 + x1) // 2, HEIGHT - 25), 0.55, align="center")
    _text(canvas, "TFLOP / frame (log scale, counted)", (10, y1 - 14), 0.55)
    _text(canvas, title, (10, 16), 0.5)
    for i, mode in enumerate(shown):
        y = y1 + 20 + 24 * i
        cv2.rectangle(canvas, (x1 + 15, y - 6), (x1 + 45, y + 6), WORK_COLOURS.get(mode, OTHER), -1)
        _text(canvas, mode.replace("_", " "), (x1 + 52, y))
    ok, png = cv2.imencode(".png", np.ascontiguousarray(canvas[:, :, ::-1]))
    if not ok:
        raise OSError("OpenCV could not encode the plot as PNG")
    return png.tobytes()
