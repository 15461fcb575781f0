"""``activesam bench``: ActiveSAM's speed, overhead, label agreement and
scaling with the vocabulary, measured in one run (see ``run``)."""

from .run import FULL, QUICK, BenchPlan, run_benchmark

__all__ = ["FULL", "QUICK", "BenchPlan", "run_benchmark"]
