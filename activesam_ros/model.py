"""``activesam_ros.model``: the model loaders under their first public name.

They live in :mod:`activesam_ros.engine.model`; this module keeps
``from activesam_ros.model import load_sam3, build_tiny_sam3`` working.
"""

from .engine.model import ModelLoadError, build_tiny_sam3, load_model, load_sam3, resolve_device

__all__ = ["ModelLoadError", "build_tiny_sam3", "load_model", "load_sam3", "resolve_device"]
