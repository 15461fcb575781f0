"""Benchmark evaluation: the paper's eight datasets (``datasets``),
mmsegmentation's mIoU (``metrics``, numpy only) and ImageNet-C corruptions
(``corruptions``) for ``activesam eval``. Import the module you need: the
metric needs neither OpenCV nor the engine."""
