"""Benchmark evaluation: the paper's eight datasets, mmsegmentation's mIoU,
and ImageNet-C corruptions for the robustness study (``activesam eval``)."""

from .corruptions import CORRUPTIONS, corrupt
from .datasets import BENCHMARKS, Benchmark, DatasetError, Sample, get_benchmark, load_image
from .metrics import IGNORE_INDEX, ConfusionMatrix, reduce_zero_label

__all__ = [
    "BENCHMARKS", "Benchmark", "CORRUPTIONS", "ConfusionMatrix", "DatasetError", "IGNORE_INDEX",
    "Sample", "corrupt", "get_benchmark", "load_image", "reduce_zero_label",
]
