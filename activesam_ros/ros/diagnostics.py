"""What the node reports on /diagnostics, decided without rclpy.

One status per camera from the runtime's :class:`StreamStats`, compared with
the previous report so that a level says what happened *since* then: a
robot's operator wants to see a camera that stopped, or frames that started
failing, not a total that was non-zero an hour ago. Rates are over the last
``stream.stats.RATE_WINDOW`` seconds (they fall to zero when a camera
stops); a camera whose frames arrive but that has published no labels for
:data:`SILENCE_WARN` seconds is a WARN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Tuple

from ..stream.stats import StreamStats

if TYPE_CHECKING:  # torch-free at import
    from ..engine.model import LoadReport

OK, WARN, ERROR = 0, 1, 2
"""diagnostic_msgs/DiagnosticStatus levels."""

SILENCE_WARN = 10.0
"""Seconds without published labels, while frames arrive, that make a camera's status WARN."""


def _ago(seconds: Optional[float]) -> str:
    return "never" if seconds is None else f"{seconds:.1f}"


@dataclass(frozen=True)
class Report:
    """One DiagnosticStatus: level, one-line message, key/value pairs."""

    level: int
    message: str
    values: List[Tuple[str, str]]


def camera_report(topic: str, now: StreamStats, before: StreamStats,
                  undecodable: int, undecodable_before: int, running: bool) -> Report:
    """The status of one camera; ``before`` is the snapshot of the previous report."""
    rate = (f"{now.input_rate:.1f} Hz in, {now.output_rate:.1f} Hz out ({now.model_rate:.1f} Hz model), "
            f"latency {1000 * now.latency_mean:.0f} ms")
    if not running:
        level, message = ERROR, "the segmentation worker is not running"
    elif now.failed > before.failed:
        level, message = WARN, f"{now.failed - before.failed} frame(s) failed in the engine; {rate}"
    elif now.out_of_memory > before.out_of_memory:
        level, message = WARN, (f"{now.out_of_memory - before.out_of_memory} frame(s) dropped: out of device memory "
                                f"even at one prompt per forward; {rate}")
    elif now.bucket_halvings > before.bucket_halvings:
        halved = now.bucket_halvings - before.bucket_halvings
        level, message = WARN, (f"out of device memory: the bucket was halved {halved} time(s), now "
                                f"{now.bucket_size_last} prompt(s) per forward; {rate}")
    elif undecodable > undecodable_before:
        level, message = WARN, f"{undecodable - undecodable_before} undecodable frame(s) dropped; {rate}"
    elif now.without_depth > before.without_depth:
        level, message = WARN, (f"{now.without_depth - before.without_depth} frame(s) without a matching depth "
                                f"image, labelled in 2D only; {rate}")
    elif now.received == before.received:
        since = "" if now.since_input is None else f" for {now.since_input:.0f} s"
        level, message = WARN, f"no images on {topic}{since} (none since the last report)"
    elif now.since_output is None or now.since_output > SILENCE_WARN:
        silent = "yet" if now.since_output is None else f"for {now.since_output:.0f} s"
        level, message = WARN, f"no labels published {silent} while images arrive; {rate}"
    else:
        level, message = OK, rate
    values = [
        ("input topic", topic),
        ("input rate (Hz)", f"{now.input_rate:.2f}"),
        ("output rate (Hz)", f"{now.output_rate:.2f}"),
        ("model rate (Hz)", f"{now.model_rate:.2f}"),
        ("latency mean (ms)", f"{1000 * now.latency_mean:.1f}"),
        ("latency last (ms)", f"{1000 * now.latency_last:.1f}"),
        ("label age mean (ms)", f"{1000 * now.label_age_mean:.1f}"),
        ("label age max (ms)", f"{1000 * now.label_age_max:.1f}"),
        ("frames received", str(now.received)),
        ("frames segmented by the model", str(now.processed)),
        ("frames labelled by propagation", str(now.propagated)),
        ("frames dropped (a newer frame came first, labels not carried)", str(now.dropped)),
        ("frames failed", str(now.failed)),
        ("frames dropped for memory", str(now.out_of_memory)),
        ("bucket halvings (out of memory)", str(now.bucket_halvings)),
        ("bucket size (last model frame)", str(now.bucket_size_last)),
        ("frames withheld (a later frame's labels were out first)", str(now.withheld)),
        ("seconds since the last image", _ago(now.since_input)),
        ("seconds since the last labels", _ago(now.since_output)),
        ("frames undecodable", str(undecodable)),
        ("frames without a matching depth image (2D only)", str(now.without_depth)),
        ("refresh rate", f"{now.refresh_rate:.2f}"),
        ("preview rate", f"{now.preview_rate:.2f}"),
        ("active classes (last)", str(now.active_classes_last)),
        ("active classes (mean)", f"{now.active_classes_mean:.1f}"),
    ]
    return Report(level, message, values)


def memory_value(device: str) -> Tuple[str, str]:
    """The engine's memory use: CUDA memory allocated by torch on a GPU,
    the process's resident set otherwise (the model lives in it)."""
    if device.startswith("cuda"):
        import torch

        return "CUDA memory allocated (MB)", f"{torch.cuda.memory_allocated(device) / 2**20:.0f}"
    import psutil

    return "process RSS (MB)", f"{psutil.Process().memory_info().rss / 2**20:.0f}"


def load_values(load: "LoadReport", first_label: Optional[float]) -> List[Tuple[str, str]]:
    """How long the model took to be ready, and the first labels after start
    ("" until they are published)."""
    return [
        ("model build (s)", f"{load.build_seconds:.1f}"),
        ("model weights load (s)", f"{load.weights_seconds:.1f}"),
        ("model ready (s)", f"{load.total_seconds:.1f}"),
        ("time to first label (s)", "" if first_label is None else f"{first_label:.1f}"),
    ]
