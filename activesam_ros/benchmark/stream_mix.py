"""What a stream policy does per frame, measured: the inputs of the work model.

``measure_stream_mix`` runs frames through ``StreamProcessor`` twice, using
only its public results:

- every frame to the model (reuse): how many model frames refresh (their
  plan's reason is not ``reuse``), how many queries a reuse frame decodes,
  how many refreshes ran fast mode's screen;
- the model on every ``model_every``-th frame, the others propagated when
  the runtime trusts the flow (propagation): the fraction of camera frames
  the model still runs on.

Any policy behind ``StreamProcessor`` can be measured so; the numbers go to
``work.frame_work`` as a :class:`~.work.StreamMix`.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Sequence

import numpy as np

from ..engine.pipeline import ActiveSAM
from ..stream.runtime import MODEL, Frame, StreamProcessor
from ..stream.temporal import TemporalConfig
from .work import StreamMix

REUSE = "reuse"


def measure_stream_mix(engine: ActiveSAM, frames: Sequence[np.ndarray], fps: float,
                       temporal: TemporalConfig = TemporalConfig(), model_every: int = 4,
                       source: str = "") -> StreamMix:
    """The stream mix of ``temporal`` on ``frames`` (stamped at ``fps``) with
    ``engine``'s current vocabulary and config."""
    reuse = StreamProcessor(engine, replace(temporal, propagate=False))
    refreshes, decoded, screened = 0, [], 0
    for index, rgb in enumerate(frames):
        out = reuse.process(Frame(rgb, stamp=index / fps, frame_id=str(index), camera="mix"))
        if out.plan.reason == REUSE:
            decoded.append(len(out.result.active_queries))
        else:
            refreshes += 1
            screened += "screen" in out.result.timings
    propagation = StreamProcessor(engine, replace(temporal, propagate=True))
    model_frames = 0
    for index, rgb in enumerate(frames):
        out = propagation.label(Frame(rgb, stamp=index / fps, frame_id=str(index), camera="mix"), model_every)
        model_frames += out.source == MODEL
    return StreamMix(
        refresh_fraction=refreshes / len(frames),
        reuse_decoded_queries=statistics.fmean(decoded) if decoded else 0.0,
        model_fraction=model_frames / len(frames),
        refresh_screened_fraction=screened / refreshes if refreshes else 0.0,
        source=source,
    )
