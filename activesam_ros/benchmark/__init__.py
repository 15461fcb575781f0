"""``activesam bench``: ActiveSAM's speed, overhead, label agreement and
scaling with the vocabulary, measured in one run (``run.run_benchmark``).
"""
