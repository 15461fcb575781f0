"""The layout of the published SAM 3 checkpoint, derived from sam3's code.

sam3 loads ``sam3.pt`` with ``strict=True`` into the model
``build_sam3_video_model`` makes (``build_sam3_video_predictor`` wraps it):
the file holds exactly that model's state dict. Building that model with
its weights on the meta device (no memory, nothing downloaded) gives the
names, shapes and dtypes of the file, and follows sam3 when sam3 changes.

Two writers make files of that layout: ``write_cheap`` (every tensor a view
of one small random storage, a few MB on disk) and ``write_full_size``
(every tensor its own random values, 3.4 GB).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Tuple

import torch

from activesam_ros.engine import cpu_shims
from activesam_ros.engine.model import _import_sam3, bpe_vocabulary_path, parameters_on_meta

Layout = Dict[str, Tuple[Tuple[int, ...], torch.dtype]]


def _layout(model: torch.nn.Module) -> Layout:
    return {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}


@functools.lru_cache(maxsize=None)
def published_layout() -> Layout:
    """Names, shapes and dtypes of ``sam3.pt``: sam3's video model's state dict."""
    builder = _import_sam3()
    with parameters_on_meta(), cpu_shims.cpu_construction():
        model = builder.build_sam3_video_model(checkpoint_path=None, load_from_HF=False,
                                               bpe_path=bpe_vocabulary_path(), device="meta")
    return _layout(model)


@functools.lru_cache(maxsize=None)
def image_model_layout() -> Layout:
    """The same for sam3's image model, as sam3's image builder makes it."""
    builder = _import_sam3()
    with parameters_on_meta(), cpu_shims.cpu_construction():
        model = builder.build_sam3_image_model(bpe_path=bpe_vocabulary_path(), device="cpu",
                                               checkpoint_path=None, load_from_HF=False)
    return _layout(model)


def _strides(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """Small odd strides: neighbouring rows are shifted windows of the base."""
    steps = (1, 3, 5, 7, 11, 13)
    return tuple(steps[len(shape) - 1 - i] for i in range(len(shape)))


def cheap_state(layout: Layout, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A state dict of ``layout`` whose tensors are all views of one random
    storage per dtype (scaled like an initialised network's weights)."""
    generator = torch.Generator().manual_seed(seed)
    need = {}
    for shape, dtype in layout.values():
        span = 1 + sum((n - 1) * s for n, s in zip(shape, _strides(shape)))
        need[dtype] = max(need.get(dtype, 0), span)
    bases = {dtype: (torch.randn(n, generator=generator, dtype=torch.float32) * 0.02).to(dtype)
             if not dtype.is_complex else torch.polar(torch.ones(n), torch.randn(n, generator=generator))
             for dtype, n in need.items()}
    return {name: bases[dtype].as_strided(shape, _strides(shape)) for name, (shape, dtype) in layout.items()}


def write_cheap(path: Path, layout: Layout, seed: int = 0) -> Path:
    """``{"model": state}`` as sam3.pt stores it, with ``cheap_state``'s views."""
    torch.save({"model": cheap_state(layout, seed)}, path)
    return path


def write_full_size(path: Path, layout: Layout, seed: int = 0) -> Path:
    """``{"model": state}`` with every tensor its own random values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, (shape, dtype) in layout.items():
        if dtype.is_complex:
            state[name] = torch.polar(torch.ones(shape), torch.randn(shape, generator=generator))
        else:
            state[name] = (torch.randn(shape, generator=generator) * 0.02).to(dtype)
    torch.save({"model": state}, path)
    return path
