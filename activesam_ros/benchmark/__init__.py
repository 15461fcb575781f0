"""``activesam bench``: ActiveSAM's speed, overhead, label agreement and
scaling with the vocabulary, measured in one run (``run.run_benchmark``).

Importing this package is light (no torch): the command's parser reads the
default below before anything heavy loads.
"""

STREAM_PREVIEW_INTERVAL = 10
"""The benchmark's temporal mode previews every this many frames."""
