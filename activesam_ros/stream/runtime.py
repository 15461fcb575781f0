"""Frames over time: the temporal policy, label propagation, parameter
swaps between frames, and a worker thread that serves several cameras with
one engine.

``StreamProcessor.process(frame)`` (a model frame) and ``.propagate(frame)``
(a frame the model skips) are the synchronous core (the rosbag processor and
the benchmark call them directly); ``StreamRuntime`` feeds them from one
worker thread. Per camera only the newest frame waits for the model: a
waiting frame that a newer one replaces gets the last model labels carried
forward by optical flow (``propagation``) at once, or is dropped and
counted when they cannot be trusted, so nothing ever queues behind a slow
frame and every frame the camera sends can get a label image. Cameras with a
waiting frame are served in turn. No ROS here: the node only converts
messages and wires callbacks.

New parameters (vocabulary, engine config, temporal config) are validated
and prepared on the caller's thread, staged, and swapped in by the worker
between two frames; every frame is made with one vocabulary, which its
result carries (``result.vocabulary``), and a camera's temporal state starts
over (its next frame refreshes, and nothing is carried forward from a frame
made with the old parameters).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..engine.bucket import FrameOutOfMemory
from ..engine.config import ActiveSAMConfig, ConfigError, require_background_class
from ..engine.result import SegmentationResult
from ..engine.stopping import Interrupted
from ..engine.vocabulary import Vocabulary, VocabularyError
from .identities import IdentityTracker, TrackedObject
from .logline import shorten, summary
from .ordering import StampOrder
from .propagation import LabelPropagator, small_grey
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


MODEL, PROPAGATED = "model", "propagated"
"""Where a frame's labels come from."""


@dataclass(frozen=True)
class FrameResult:
    """A frame, its labels, and where they come from.

    ``source`` is MODEL (segmented; ``plan`` says how) or PROPAGATED (the
    labels of the camera's model frame stamped ``model_stamp``, carried along
    the optical flow; ``plan`` is None; ``model_context`` is that frame's
    context). ``age`` is how much older, in stamp seconds, the model frame is
    than this one (0 for a model frame).
    """

    frame: Frame
    result: SegmentationResult  # .preview_ran, .vocabulary it was made with
    plan: Optional[FramePlan]
    latency: float              # seconds from arrival to result
    source: str = MODEL
    model_stamp: float = 0.0
    model_context: Any = None   # the model frame's Frame.context (e.g. its ROS header)
    objects: Tuple[TrackedObject, ...] = ()   # the frame's objects under persistent ids (``identities``)
    instance_ids: Optional[np.ndarray] = None  # (H, W) uint16 object id per pixel, 0 = none; None: instances off

    @property
    def age(self) -> float:
        return self.frame.stamp - self.model_stamp


class _Camera:
    """One camera's temporal state: the tracker, the label propagator, and
    its last refresh frame as the flow sees it (for scene changes)."""

    def __init__(self, temporal: TemporalConfig, query_class: Sequence[int], last_id: int = 0):
        self.tracker = ActiveSetTracker(temporal, query_class)
        self.propagator = LabelPropagator(temporal)
        self.identities = IdentityTracker(temporal.object_match_iou, temporal.object_max_unseen, last_id)
        self.refresh_grey: Optional[np.ndarray] = None
        self.since_model = 0  # frames labelled since its last model frame (``StreamProcessor.label``)

    def scene_residual(self, grey: np.ndarray) -> float:
        """How far a frame is from the last refresh frame, in grey levels
        after aligning them by optical flow (0 before the first refresh)."""
        if self.refresh_grey is None:
            return 0.0
        return self.propagator.flow(grey, self.refresh_grey).residual


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
        self._cameras: Dict[str, _Camera] = {}
        # Each camera's last object id, kept when its state starts over: ids count on, never back.
        self._last_ids: Dict[str, int] = {}
        self._order = StampOrder()  # what ``deliver`` publishes never goes back in stamps (``ordering``)
        # Held while a propagated result is made and delivered, and while
        # staged parameters are swapped in: nothing made with the old
        # parameters is delivered after the swap.
        self._state_lock = threading.RLock()
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
        if vocabulary is None and config is None and temporal is None:
            return
        with self._state_lock:
            if temporal is not None:
                self._temporal = temporal
            self._last_ids.update({name: camera.identities.last_id for name, camera in self._cameras.items()})
            self._cameras.clear()
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
            logger.error("parameter update refused: %s", shorten(str(error), 300))
        elif isinstance(error, FrameOutOfMemory):  # the device's state, not a fault: no traceback
            logger.warning("frame %s of camera %s dropped: %s", summary(frame.frame_id), summary(frame.camera),
                           shorten(str(error), 300))
        else:
            logger.error("frame %s of camera %s failed: %s", summary(frame.frame_id), summary(frame.camera),
                         shorten(str(error), 300), exc_info=error)
        if self.on_error is not None:
            try:
                self.on_error(frame, error)
            except Exception:
                logger.exception("the error callback raised")

    # -- frames ------------------------------------------------------------

    def process(self, frame: Frame, received_at: Optional[float] = None,
                deliver: Optional[Callable[[FrameResult], None]] = None) -> FrameResult:
        """Segment one frame with the model. ``received_at`` (``stats.clock``
        seconds) is when it arrived, already counted; by default it arrives
        now. Its labels become what later skipped frames are carried from.
        ``deliver`` publishes the result unless a later-stamped frame of the
        camera was published first (then it is withheld: ``ordering``)."""
        if received_at is None:
            received_at = self.stats.clock()
            self.stats.received(frame.camera, received_at)
        try:
            self._apply_pending()
            camera = self._camera(frame.camera)
            watches = self._temporal.reuses or self._temporal.propagate
            grey = small_grey(frame.rgb) if watches else None
            residual = camera.scene_residual(grey) if self._temporal.reuses else 0.0
            plan = camera.tracker.plan(frame.stamp, residual)
            # A reusing stream refreshes rarely: its preview runs unscreened,
            # choosing what exact mode's would (temporal module doc).
            result = self.engine.segment(frame.rgb, active_queries=plan.active_queries,
                                         screen=not self._temporal.reuses)
        except Interrupted:  # a stop request: the frame is dropped, nothing failed
            self.stats.count(frame.camera, "dropped")
            raise
        except FrameOutOfMemory as exc:  # dropped for memory: counted, the stream goes on with the next frame
            self.stats.count(frame.camera, "out_of_memory")
            self.stats.count(frame.camera, "bucket_halvings", exc.halvings)
            raise
        except Exception:
            self.stats.count(frame.camera, "failed")
            raise
        if result.bucket_halvings:
            self.stats.count(frame.camera, "bucket_halvings", result.bucket_halvings)
        camera.tracker.update(plan, result, frame.stamp)
        objects, ids = camera.identities.update(result, frame.stamp) if result.instance_map is not None else ((), None)
        if plan.refresh and grey is not None:
            camera.refresh_grey = grey
        if self._temporal.propagate:
            camera.propagator.anchor(frame.rgb, result, frame.stamp, frame.context, grey,
                                     camera.tracker.propagation_age_limit, objects, ids)
        latency = self.stats.clock() - received_at
        out = FrameResult(frame, result, plan, latency, MODEL, frame.stamp, frame.context, objects, ids)
        with self._state_lock:
            published = deliver is None or self._order.admit(frame.camera, frame.stamp)
            self.stats.processed(frame.camera, latency, plan.refresh, result.preview_ran,
                                 len(result.active_classes), output=published, bucket_size=result.bucket_size)
            if not published:
                self.stats.count(frame.camera, "withheld")
            elif deliver is not None:
                deliver(out)
        return out

    def _camera(self, name: str) -> _Camera:
        with self._state_lock:
            camera = self._cameras.get(name)
            if camera is None:
                camera = self._cameras[name] = _Camera(self._temporal, self.engine.vocabulary.query_class,
                                                       self._last_ids.get(name, 0))
            return camera

    def propagate(self, frame: Frame, received_at: Optional[float] = None,
                  deliver: Optional[Callable[[FrameResult], None]] = None) -> Optional[FrameResult]:
        """Carry the camera's last model labels to a frame the model skips.
        Returns None, the frame counted as dropped, when propagation is off,
        no model frame of this camera exists (since the last parameter
        change), or the flow is not to be trusted. ``deliver`` is called with
        the result before a parameter swap can happen."""
        if received_at is None:
            received_at = self.stats.clock()
            self.stats.received(frame.camera, received_at)
        out = self._carry(frame, received_at, deliver)
        if out is None:
            self.stats.count(frame.camera, "dropped")
        return out

    def label(self, frame: Frame, model_every: int = 1) -> FrameResult:
        """One frame of a recording, in order: the model on every
        ``model_every``-th frame of its camera, the frames between carried
        forward where propagation can be trusted (segmented where not), as
        the runtime does when the model is slower than the camera."""
        received_at = self.stats.clock()
        self.stats.received(frame.camera, received_at)
        with self._state_lock:
            camera = self._cameras.get(frame.camera)
        if camera is not None and camera.since_model + 1 < model_every:
            out = self._carry(frame, received_at)
            if out is not None:
                camera.since_model += 1
                return out
        out = self.process(frame, received_at)
        self._camera(frame.camera).since_model = 0
        return out

    def _carry(self, frame: Frame, received_at: float,
               deliver: Optional[Callable[[FrameResult], None]] = None) -> Optional[FrameResult]:
        with self._state_lock:
            camera = self._cameras.get(frame.camera) if self._temporal.propagate else None
            carried = camera.propagator.propagate(frame.rgb, frame.stamp) if camera is not None else None
            if carried is None or carried.result is None:
                return None
            latency = self.stats.clock() - received_at
            out = FrameResult(frame, carried.result, None, latency, PROPAGATED, carried.model_stamp,
                              carried.model_context, carried.objects, carried.instance_ids)
            if carried.instance_ids is not None:
                camera.identities.carried(carried.instance_ids, carried.model_stamp)
            if deliver is not None and not self._order.admit(frame.camera, frame.stamp):
                self.stats.count(frame.camera, "withheld")
                return out
            self.stats.propagated(frame.camera, latency, out.age)
            if deliver is not None:
                deliver(out)
            return out


class StreamRuntime:
    """Frames in from any thread, model results out on one worker thread.

    ``submit`` never blocks: it leaves the frame in its camera's slot for
    the model. A frame still waiting there is replaced: it gets propagated
    labels, delivered at once on the submitting thread (milliseconds), or
    is dropped and counted when they cannot be trusted (or propagation is
    off). ``on_result(FrameResult)`` runs on the worker for model frames and
    on the submitting thread for propagated ones, so it must be thread-safe;
    ``on_error(frame, error)`` runs on the worker. A frame the engine fails
    on (or that does not fit the device's memory: ``FrameOutOfMemory``) is
    dropped, counted and reported, and the worker goes on.
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

    def _engine_stop(self) -> Any:
        """The engine's stop flag (``ActiveSAM.stop``), if it has one."""
        return getattr(self.processor.engine, "stop", None)

    def start(self) -> "StreamRuntime":
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("the stream runtime is already started")
            if self._engine_stop() is not None:
                self._engine_stop().clear()
            self._running = True
            self._thread = threading.Thread(target=self._work, name="activesam-runtime", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop taking frames, drop those waiting, abandon the frame in
        progress at the engine's next check (between two buckets), and join
        the worker. True when the worker has ended."""
        if self._engine_stop() is not None:
            self._engine_stop().set()
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
            replaced = self._waiting.get(frame.camera)
            if replaced is None and frame.camera not in self._cameras:
                self._cameras.append(frame.camera)
            self._waiting[frame.camera] = (frame, now)
            self._cond.notify()
        if replaced is not None:
            self.processor.propagate(*replaced, deliver=self._deliver)
        return True

    def _deliver(self, out: FrameResult) -> None:
        try:
            self.on_result(out)
        except Exception as exc:
            self.processor.report_error(out.frame, exc)

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
                self.processor.process(frame, received_at, deliver=self._deliver)
            except Interrupted:  # stopping: counted as dropped by the processor
                continue
            except Exception as exc:
                self.processor.report_error(frame, exc)
                continue
