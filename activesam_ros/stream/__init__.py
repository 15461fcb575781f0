"""The stream room: frames over time, without ROS and without torch.

``runtime`` (newest-frame slots, the worker thread, parameter swaps between
frames), ``temporal`` (when to refresh the active set, when to reuse it),
``stats`` (counters and rates for diagnostics) and ``parameters`` (the
parameter table shared by the node, the bag processor and the CLI). The
engine is only called here, never imported at run time.
"""
