"""Frames over time: the temporal policy, parameter swaps between frames,
and a worker thread that serves several cameras with one engine.

``StreamProcessor.process(frame)`` is the synchronous core (the rosbag
processor and the benchmark call it directly); ``StreamRuntime`` feeds it
from one worker thread. Per camera only the newest frame waits: an older
waiting frame is dropped, so nothing ever queues behind a slow frame, and
cameras with a waiting frame are served in turn. No ROS here: the node only
converts messages and wires callbacks.

New parameters (vocabulary, engine config, temporal config) are validated
and prepared on the caller's thread, staged, and swapped in by the worker
between two frames; every frame is made with one vocabulary, which its
result carries (``result.vocabulary``), and a camera's temporal state starts
over (its next frame previews).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..engine.config import ActiveSAMConfig, ConfigError, require_background_class
from ..engine.result import SegmentationResult
from ..engine.vocabulary import Vocabulary, VocabularyError
from .stats import StreamStatistics, StreamStats
from .temporal import ActiveSetTracker, FramePlan, TemporalConfig

if TYPE_CHECKING:  # the engine imports torch; the runtime only calls it
    from ..engine.pipeline import ActiveSAM, PreparedVocabulary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One camera image and what the caller wants back with its result."""

    rgb: np.ndarray             # H x W x 3 uint8 RGB
    stamp: float = 0.0          # capture time in seconds, carried through
    frame_id: str = ""
    camera: str = "camera"      # frames of one camera replace each other
    context: Any = None         # opaque (e.g. the ROS header), returned untouched


@dataclass(frozen=True)
class FrameResult:
    """A frame, its segmentation and how it was planned."""

    frame: Frame
    result: SegmentationResult  # .preview_ran, .vocabulary it was made with
    plan: FramePlan
    latency: float              # seconds from arrival to result


ErrorCallback = Callable[[Optional[Frame], BaseException], None]


REFUSALS = (ConfigError, VocabularyError)
"""What a refused parameter raises; anything else is a failure of the machine."""


class StreamProcessor:
    """Frames one at a time, on the caller's thread, with the temporal
    policy per camera and staged parameters applied between frames.

    ``on_error(None, error)`` hears of a staged parameter the engine refused
    when it was applied (the engine then keeps its old one); by default
    this is logged. Any other failure while applying one (out of memory, a
    device error) is not a refusal: it fails the frame like an engine error.
    """

    def __init__(
        self,
        engine: "ActiveSAM",
        temporal: TemporalConfig = TemporalConfig(),
        on_error: Optional[ErrorCallback] = None,
    ):
        self.engine = engine
        self._temporal = temporal.validate()
        self.on_error = on_error
        self.stats = StreamStatistics()
        self._trackers: Dict[str, ActiveSetTracker] = {}
        self._pending_lock = threading.Lock()
        # Held by callers while they validate and prepare; the worker applies
        # an engine config only when it can take it at once, because
        # preparing a vocabulary reads the engine's config.
        self._params_lock = threading.Lock()
        self._pending_vocabulary: Optional["PreparedVocabulary"] = None
        self._pending_config: Optional[ActiveSAMConfig] = None
        self._pending_temporal: Optional[TemporalConfig] = None

    @property
    def temporal(self) -> TemporalConfig:
        """The temporal config in force."""
        return self._temporal

    # -- parameters (any thread) -------------------------------------------

    def set_vocabulary(self, vocabulary: Union[Vocabulary, Sequence[str], str]) -> Vocabulary:
        """Validate and prepare a vocabulary here (text encodings, context
        tokens), then stage it for the next frame. Raises VocabularyError."""
        with self._params_lock:
            with self._pending_lock:
                config = self._pending_config or self.engine.config
            prepared = self.engine.prepare(vocabulary, config)  # checks the background class too
            with self._pending_lock:
                self._pending_vocabulary = prepared
        return prepared.vocabulary

    def set_config(self, config: ActiveSAMConfig) -> ActiveSAMConfig:
        """Validate engine hyper-parameters and stage them for the next
        frame. Raises ConfigError."""
        with self._params_lock:
            config = self.engine.check_config(config)
            with self._pending_lock:
                pending = self._pending_vocabulary
            vocabulary = pending.vocabulary if pending else self.engine.vocabulary
            require_background_class(config, vocabulary)
            # Context tokens that depend on the change are prepared here,
            # off the worker, and swapped in with the config.
            prepared = self.engine.prepare(vocabulary, config) if self.engine.needs_prepare(config) else None
            with self._pending_lock:
                self._pending_config = config
                if prepared is not None:
                    self._pending_vocabulary = prepared
        return config

    def set_temporal(self, temporal: TemporalConfig) -> TemporalConfig:
        """Validate a temporal config and stage it for the next frame."""
        temporal = temporal.validate()
        with self._pending_lock:
            self._pending_temporal = temporal
        return temporal

    def _apply_pending(self) -> None:
        """Swap staged parameters in; called between two frames. While a
        caller is still validating or preparing, everything waits for the
        next frame, so a vocabulary never runs under a config it was not
        prepared for."""
        if not self._params_lock.acquire(blocking=False):
            return
        try:
            with self._pending_lock:
                vocabulary, self._pending_vocabulary = self._pending_vocabulary, None
                config, self._pending_config = self._pending_config, None
                temporal, self._pending_temporal = self._pending_temporal, None
        finally:
            self._params_lock.release()
        if temporal is not None:
            self._temporal = temporal
        if vocabulary is not None or config is not None or temporal is not None:
            self._trackers.clear()
        try:
            if config is not None:
                self.engine.reconfigure(config, prepared=vocabulary)
            elif vocabulary is not None:
                self.engine.set_vocabulary(vocabulary)
        except REFUSALS as exc:  # refused: the engine keeps what it had
            self.report_error(None, exc)
        # Anything else (out of memory, a device error) is not a refusal: it
        # propagates and fails the frame, which is counted and reported as such.

    def report_error(self, frame: Optional[Frame], error: BaseException) -> None:
        """Log an error that has no caller to raise to, and pass it on:
        a failed frame (``frame`` given) or a refused parameter (``None``)."""
        if frame is None:
            logger.error("parameter update refused: %s", error)
        else:
            logger.error("frame %r of camera %r failed: %s", frame.frame_id, frame.camera, error, exc_info=error)
        if self.on_error is not None:
            try:
                self.on_error(frame, error)
            except Exception:
                logger.exception("the error callback raised")

    # -- frames ------------------------------------------------------------

    def process(self, frame: Frame, received_at: Optional[float] = None) -> FrameResult:
        """Segment one frame. ``received_at`` (``stats.clock`` seconds) is
        when it arrived, already counted; by default it arrives now."""
        if received_at is None:
            received_at = self.stats.clock()
            self.stats.received(frame.camera, received_at)
        try:
            self._apply_pending()
            tracker = self._trackers.get(frame.camera)
            if tracker is None:
                num_queries = len(self.engine.vocabulary.queries)
                tracker = self._trackers[frame.camera] = ActiveSetTracker(self._temporal, self.engine.config,
                                                                          num_queries)
            plan = tracker.plan()
            result = self.engine.segment(frame.rgb, active_queries=plan.active_queries, scan_queries=plan.scan_queries)
        except Exception:
            self.stats.count(frame.camera, "failed")
            raise
        tracker.update(plan, result)
        latency = self.stats.clock() - received_at
        self.stats.processed(frame.camera, latency, result.preview_ran, len(result.active_classes))
        return FrameResult(frame, result, plan, latency)


class StreamRuntime:
    """Frames in from any thread, results out on one worker thread.

    ``submit`` never blocks: it leaves the frame in its camera's slot,
    replacing (and counting as dropped) a frame still waiting there.
    ``on_result(FrameResult)`` and ``on_error(frame, error)`` run on the
    worker; a frame the engine fails on is dropped, counted and reported,
    and the worker goes on.
    """

    def __init__(
        self,
        engine: "ActiveSAM",
        on_result: Callable[[FrameResult], None],
        on_error: Optional[ErrorCallback] = None,
        temporal: TemporalConfig = TemporalConfig(),
    ):
        self.on_result = on_result
        self.processor = StreamProcessor(engine, temporal, on_error=on_error)
        self._cond = threading.Condition()
        self._waiting: Dict[str, Tuple[Frame, float]] = {}
        self._cameras: List[str] = []  # round-robin order, by first frame
        self._served = -1               # index of the camera served last
        self._running = False
        self._thread: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> "StreamRuntime":
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("the stream runtime is already started")
            self._running = True
            self._thread = threading.Thread(target=self._work, name="activesam-runtime", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop taking frames, drop those waiting, and join the worker
        (after its current frame). True when the worker has ended."""
        with self._cond:
            self._running = False
            for camera in self._waiting:
                self.processor.stats.count(camera, "dropped")
            self._waiting.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        with self._cond:
            self._thread = None
        return True

    def __enter__(self) -> "StreamRuntime":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def submit(self, frame: Frame) -> bool:
        """Offer a frame; False (and counted as rejected) when not running."""
        stats = self.processor.stats
        now = stats.clock()
        with self._cond:
            if not self._running:
                stats.count(frame.camera, "rejected")
                return False
            stats.received(frame.camera, now)
            if frame.camera in self._waiting:
                stats.count(frame.camera, "dropped")
            elif frame.camera not in self._cameras:
                self._cameras.append(frame.camera)
            self._waiting[frame.camera] = (frame, now)
            self._cond.notify()
        return True

    # -- parameters: validated here, swapped in between two frames ------------

    def set_vocabulary(self, vocabulary: Union[Vocabulary, Sequence[str], str]) -> Vocabulary:
        return self.processor.set_vocabulary(vocabulary)

    def set_config(self, config: ActiveSAMConfig) -> ActiveSAMConfig:
        return self.processor.set_config(config)

    def set_temporal(self, temporal: TemporalConfig) -> TemporalConfig:
        return self.processor.set_temporal(temporal)

    def stats(self, camera: Optional[str] = None) -> StreamStats:
        return self.processor.stats.snapshot(camera)

    # -- the worker ----------------------------------------------------------

    def _take(self) -> Tuple[Frame, float]:
        """The waiting frame of the next camera in turn (lock held)."""
        count = len(self._cameras)
        turns = ((self._served + step) % count for step in range(1, count + 1))
        self._served = next(i for i in turns if self._cameras[i] in self._waiting)
        return self._waiting.pop(self._cameras[self._served])

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._waiting:
                    self._cond.wait()
                if not self._running:
                    return
                frame, received_at = self._take()
            try:
                out = self.processor.process(frame, received_at)
            except Exception as exc:
                self.processor.report_error(frame, exc)
                continue
            try:
                self.on_result(out)
            except Exception as exc:
                self.processor.report_error(frame, exc)
