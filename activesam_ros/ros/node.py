"""``activesam_node``: ActiveSAM on ROS 2 camera topics, as a managed (lifecycle) node.

Thin by design: parameters come from :mod:`node_params` (declared from its
table, validated by its functions), frames go through the runtime's worker
thread (newest frame per camera, temporal reuse, parameter swaps between
frames), and output messages are built by :mod:`messages`. What is left here
is wiring: the lifecycle transitions, subscriptions, publishers, the
set-parameters callback, /diagnostics and shutdown.

Lifecycle: configure loads the model and creates the publishers; activate
publishes ``label_info``, starts the worker and subscribes; deactivate
unsubscribes and stops the worker after its frame; cleanup destroys the
publishers and frees the model's memory; shutdown does what is left of
these. With ``autostart`` (the default) the node configures and activates
itself at start, as a plain node would.

Per camera (``image_topics``; one camera publishes directly under ``~``):
``~/labels`` (mono8/mono16 class indices), ``~/color_labels`` (rgb8 class
colours), ``~/label_info`` (transient local; published at start and again
with the first frame made with a new vocabulary), ``~/active_classes``,
``~/overlay``, ``~/confidence``, ``~/detections`` (the objects under
their persistent ids), ``~/instances`` (the id image) and ``~/panoptic``;
with a depth topic (``depth_topics``)
also ``~/points`` and ``~/detections_3d``, made from the depth image
nearest the frame's stamp (``stream.depth_sync``) and its CameraInfo. Per
node, where semantic_inference_msgs is installed: ``~/labelspace``
(transient local; the label space Hydra reads, sent at activation and with
the first frame of a new vocabulary).
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..engine.environment import set_process_defaults

set_process_defaults()  # before torch is imported

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult  # noqa: E402
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup  # noqa: E402
from rclpy.exceptions import ParameterException  # noqa: E402
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.publisher import Publisher  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from ..engine.bucket import FrameOutOfMemory  # noqa: E402
from ..engine.config import ConfigError  # noqa: E402
from ..engine.model import LoadReport, ModelLoadError, load_model_with_report  # noqa: E402
from ..engine.pipeline import ActiveSAM  # noqa: E402
from ..engine.release import release_memory  # noqa: E402
from ..engine.vocabulary import VocabularyError  # noqa: E402
from ..render.labelspace import LabelSpaceError, read_roles  # noqa: E402
from ..stream.logline import shorten, summary, vocabulary_summary  # noqa: E402
from ..stream.parameters import ParameterError, model_source  # noqa: E402
from ..stream.depth_sync import DepthPairing  # noqa: E402
from ..stream.runtime import Frame, FrameResult, StreamRuntime  # noqa: E402
from ..stream.stats import StreamStats  # noqa: E402
from . import labelspace_msg, messages, names, topics  # noqa: E402
from . import node_params as params  # noqa: E402
from .depthconv import depth_to_metres, intrinsics  # noqa: E402
from .diagnostics import ERROR, Report, camera_report, load_values, memory_value  # noqa: E402
from .imgconv import compressed_to_rgb, image_to_rgb  # noqa: E402

try:  # Jazzy's name; Humble has them in qos_event
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # pragma: no cover - depends on the ROS distribution
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

try:  # python diagnostic_updater is optional: without it the node publishes DiagnosticArray itself
    from diagnostic_updater import Updater
except ImportError:  # pragma: no cover - depends on the ROS install
    Updater = None

BAD_INPUT_LOG_PERIOD = 10.0  # seconds between warnings about undecodable frames
DEPTH_QUEUE = 5              # queue depth of the depth and camera info subscriptions: their callbacks only decode
STOP_TIMEOUT = 3.0           # seconds to wait for the worker at shutdown: the engine stops between two buckets

_ROS_TYPES = {
    params.BOOL: Parameter.Type.BOOL,
    params.INT: Parameter.Type.INTEGER,
    params.DOUBLE: Parameter.Type.DOUBLE,
    params.STRING: Parameter.Type.STRING,
    params.STRING_ARRAY: Parameter.Type.STRING_ARRAY,
}
_RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def descriptor(spec: params.ParamSpec) -> ParameterDescriptor:
    """The ParameterDescriptor ``ros2 param describe`` shows for ``spec``."""
    out = ParameterDescriptor(
        name=spec.name,
        type=_ROS_TYPES[spec.kind].value,
        description=spec.description,
        additional_constraints=spec.constraints,
        read_only=spec.read_only,
    )
    if spec.low is not None and spec.kind == params.INT:
        out.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=int(spec.step))]
    elif spec.low is not None:
        out.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=float(spec.step))
        ]
    return out


def qos(reliability: str, depth: int, durability: DurabilityPolicy = DurabilityPolicy.VOLATILE) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=_RELIABILITY[reliability], durability=durability)


@dataclass
class Camera(topics.CameraOutputs):
    """One input topic: its publishers (``handles``) and what the node remembers about it."""

    resolved: str = ""                       # the topic subscribed to, after namespace and remapping
    subscription: Any = None                 # while active
    undecodable: int = 0
    reported: StreamStats = field(default_factory=StreamStats)
    reported_undecodable: int = 0
    depth_topic: str = ""                    # "" = no depth: no 3D outputs
    pairing: Optional[DepthPairing] = None   # its recent depth images and camera info
    depth_subscriptions: List[Any] = field(default_factory=list)  # while active
    bad_depth: int = 0                       # depth or camera info messages that could not be read


def _transition(method: Callable[..., TransitionCallbackReturn]) -> Callable[..., TransitionCallbackReturn]:
    """A lifecycle callback that logs what it raises (rclpy turns an exception
    into ERROR without a word) and then reports ERROR."""
    @functools.wraps(method)
    def run(self: "ActiveSAMNode", state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return method(self, state)
        except Exception as exc:
            self.get_logger().error(f"{method.__name__[3:]} failed: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.ERROR
    return run


class ActiveSAMNode(LifecycleNode):
    """Segments every camera of ``image_topics`` with one ActiveSAM engine.

    Unconfigured it holds only its parameters; configured (inactive) the
    model, the worker (stopped) and the publishers; active it subscribes.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(params.NODE_NAME, **kwargs)
        self._declare_parameters()
        self._updater = Updater(self, period=params.BY_NAME[params.DIAGNOSTICS_PERIOD].default) if Updater else None
        if self._updater is not None:
            self._updater.setHardwareID("none")  # no device before configure
        self._params = params.LiveParameters(
            {name: self.get_parameter_or(name).value for name in params.BY_NAME},
            params.NodeContext(self.get_namespace(), self.get_name(), getattr(self, "resolve_topic_name", None)))
        self._ns = messages.rclpy_messages()
        self._closing = False
        self._outputs_lock = threading.Lock()  # the worker publishes while parameters add/remove publishers
        self.runtime: Optional[StreamRuntime] = None  # from configure to cleanup
        self._device = ""
        self._cameras: Dict[str, Camera] = {}
        self._diagnostics = None if self._updater else self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = None
        self.failure = ""  # why the last configure failed
        self._load: Optional[LoadReport] = None  # how long the model took, from configure
        self._configured_at = 0.0
        self._first_label: Optional[float] = None  # seconds from configure to the first labels published
        self._labelspace_class = labelspace_msg.rclpy_labelspace_class()  # None: not installed, not published
        self._labelspace: Optional[Publisher] = None  # from configure to cleanup
        self._labelspace_sent: Optional[Any] = None   # the vocabulary last described on ~/labelspace
        self._roles: Dict[str, List[str]] = {}        # labelspace_roles' class names
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def autostart(self) -> bool:
        return bool(self._values[params.AUTOSTART])

    @property
    def _values(self) -> Dict[str, Any]:
        return self._params.values

    @property
    def _settings(self) -> Optional[params.Settings]:
        return self._params.settings

    # -- lifecycle -------------------------------------------------------------

    @_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters, load the model, create the worker (stopped) and the publishers."""
        self._configured_at, self._first_label = time.monotonic(), None
        try:
            self._params.configure()
            source = model_source(self._values)
            self.get_logger().info(f"loading {shorten(source.describe(), 300)} on device "
                                   f"{summary(self._values['device'])}")
            if source.tiny:
                self.get_logger().warning("model:=tiny has random weights: its labels mean nothing")
            model, self._load = load_model_with_report(source.checkpoint, source.hub_id, tiny=source.tiny,
                                                       device=self._values["device"])
            if self._load.skipped:
                self.get_logger().info(self._load.skipped)
            self.get_logger().info(self._load.line())
            engine = ActiveSAM(model, self._settings.vocabulary, self._settings.engine)
            roles_file = self._values["labelspace_roles"].strip()
            self._roles = read_roles(roles_file) if roles_file else {}
        except STARTUP_ERRORS as exc:
            self.failure = shorten(str(exc), params.MAX_REASON_CHARS)
            self.get_logger().error(f"cannot configure: {self.failure}")
            return TransitionCallbackReturn.FAILURE
        self._device = str(engine.device)
        self.runtime = StreamRuntime(engine, self._on_result, self._on_error, self._settings.temporal)
        self._params.runtime = self.runtime
        self._cameras = self._create_cameras()
        if self._labelspace_class is not None:
            self._labelspace = self.create_publisher(self._labelspace_class, "~/labelspace",
                                                     qos("reliable", 1, DurabilityPolicy.TRANSIENT_LOCAL))
        else:
            self.get_logger().info("semantic_inference_msgs with Labelspace is not installed: no ~/labelspace (Hydra "
                                   "can read the label space from a file: activesam labelspace)")
        self.get_logger().info(f"configured: {self._describe()}")
        return TransitionCallbackReturn.SUCCESS

    @_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Publish label_info, start the worker, subscribe, report on /diagnostics."""
        for camera in self._cameras.values():
            camera.handles["label_info"].publish(self._label_info(camera))
        self._publish_labelspace(self._settings.vocabulary)
        self.runtime.start()
        self._subscribe()
        self._start_diagnostics()
        self.get_logger().info(f"segmenting {self._describe()}")
        return super().on_activate(state)

    @_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker after its current frame: no more work, no more outputs."""
        self._stop()
        self.get_logger().info("deactivated: no subscriptions, the worker stopped")
        return super().on_deactivate(state)

    @_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the publishers and drop the model; its device memory goes back."""
        self._release()
        self.get_logger().info("cleaned up: the model and its memory released")
        return TransitionCallbackReturn.SUCCESS

    @_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @_transition
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Back to unconfigured, everything released, ready to be configured again."""
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _describe(self) -> str:
        return (f"{summary([c.resolved or c.topic for c in self._cameras.values()])} into "
                f"{vocabulary_summary(self._settings.vocabulary.names)} on {self._device}")

    def _stop(self) -> None:
        """What deactivate undoes: subscriptions, diagnostics, the worker (idempotent)."""
        self._stop_diagnostics()
        for camera in self._cameras.values():
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
                camera.subscription = None
            for subscription in camera.depth_subscriptions:
                self.destroy_subscription(subscription)
            camera.depth_subscriptions.clear()
        if self.runtime is not None and not self.runtime.stop(STOP_TIMEOUT):
            self.get_logger().error(f"the segmentation worker did not stop within {STOP_TIMEOUT:.0f} s")

    def _release(self) -> None:
        """What configure made, undone (idempotent): publishers, worker, engine, model."""
        with self._outputs_lock:
            for camera in self._cameras.values():
                for publisher in camera.handles.values():
                    self.destroy_publisher(publisher)
                camera.handles.clear()
            self._cameras = {}
            if self._labelspace is not None:
                self.destroy_publisher(self._labelspace)
            self._labelspace, self._labelspace_sent = None, None
        device, self.runtime = self._device, None
        self._params.runtime = None
        if device:
            release_memory(device)

    # -- parameters ----------------------------------------------------------

    def _declare_parameters(self) -> None:
        for spec in params.PARAMS:
            if spec.name == params.DIAGNOSTICS_PERIOD and Updater is not None:
                continue  # diagnostic_updater declares its own period parameter
            default = _ROS_TYPES[spec.kind] if spec.default is None else spec.default
            self.declare_parameter(spec.name, default, descriptor(spec))

    def _on_set_parameters(self, changed: List[Parameter]) -> SetParametersResult:
        """Decided by ``node_params.LiveParameters.set`` (validated with the
        other values, then staged into the runtime, which swaps them in
        between two frames; unconfigured, configure reads them); a refusal
        never stops the node."""
        outcome = self._params.set({p.name: p.value for p in changed})
        try:
            if outcome.successful:
                self._update_optional_outputs()
                if outcome.log:
                    self.get_logger().info(outcome.log)  # rclpy fixes a severity per call site: one each
            else:
                self.get_logger().warning(outcome.log)
        except Exception as exc:  # a publisher that cannot be created: the values stand, the node goes on
            self.get_logger().error(f"after setting parameters: {shorten(str(exc), 300)}")
        return SetParametersResult(successful=outcome.successful, reason=outcome.reason)

    # -- topics --------------------------------------------------------------

    def _create_cameras(self) -> Dict[str, Camera]:
        """One camera per input topic, with its publishers (configure)."""
        values = self._values
        self._output_qos = qos(values["output_reliability"], values["output_depth"])
        cameras = {}
        depth = names.depth_topics(values["depth_topics"], values["image_topics"])
        for topic, prefix in names.output_namespaces(values["image_topics"]).items():
            camera = cameras[topic] = Camera(topic=topic, prefix=prefix, depth_topic=depth[topic])
            camera.pairing = DepthPairing() if camera.depth_topic else None
            for output in topics.OUTPUT_TOPICS:
                if not output.switch:
                    camera.handles[output.name] = self._publisher(camera, output)
        self._update_optional_outputs(cameras)
        return cameras

    def _label_info(self, camera: Camera) -> Any:
        return camera.label_info(self._ns, self._settings.vocabulary,
                                 self._ns.Header(stamp=self.get_clock().now().to_msg()),
                                 self._settings.engine.confidence_threshold)

    def _publish_labelspace(self, vocabulary: Any) -> None:
        """``~/labelspace`` for ``vocabulary``, unless it was the last one sent
        (or the message is not installed); ``labelspace_msg.node_label_space``
        says what it holds."""
        if self._labelspace is None or self._labelspace_sent == vocabulary:
            return
        self._labelspace_sent = vocabulary
        space, warnings = labelspace_msg.node_label_space(vocabulary, self._roles, self._values["label_encoding"])
        for warning in warnings:
            self.get_logger().warning(warning)
        self._labelspace.publish(labelspace_msg.labelspace_message(self._labelspace_class, space, list))

    def _subscribe(self) -> None:
        """Each camera's image subscription (activate)."""
        values = self._values
        compressed = values["compressed"]
        input_qos = qos(values["input_reliability"], values["input_depth"])
        group = MutuallyExclusiveCallbackGroup()  # images keep flowing while a vocabulary is prepared
        for topic, camera in self._cameras.items():
            kind, name, decode = (CompressedImage, f"{topic}/compressed", compressed_to_rgb) if compressed \
                else (Image, topic, image_to_rgb)
            camera.subscription = self.create_subscription(
                kind, name, self._image_callback(camera, decode), input_qos, callback_group=group,
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._qos_warning(
                    lambda camera=camera: camera.resolved, False, values["input_reliability"])))
            camera.resolved = camera.subscription.topic_name
            if camera.depth_topic:
                depth_group = MutuallyExclusiveCallbackGroup()  # decoding depth never waits for an image callback
                depth_qos = qos(values["input_reliability"], DEPTH_QUEUE)
                camera.depth_subscriptions = [
                    self.create_subscription(Image, camera.depth_topic, self._depth_callback(camera), depth_qos,
                                             callback_group=depth_group),
                    self.create_subscription(CameraInfo, names.camera_info_topic(camera.depth_topic),
                                             self._info_callback(camera), depth_qos, callback_group=depth_group),
                ]

    def _publisher(self, camera: Camera, output: topics.OutputTopic) -> Publisher:
        kind = messages.rclpy_class(output.msgtype)
        reliability = "reliable" if output.latched else self._values["output_reliability"]
        profile = qos("reliable", 1, DurabilityPolicy.TRANSIENT_LOCAL) if output.latched else self._output_qos
        created: List[Publisher] = []
        callbacks = PublisherEventCallbacks(incompatible_qos=self._qos_warning(
            lambda: created[0].topic_name, True, reliability))
        created.append(self.create_publisher(kind, f"{camera.prefix}/{output.name}", profile,
                                             event_callbacks=callbacks))
        return created[0]

    def _qos_warning(self, topic: Callable[[], str], output: bool, reliability: str) -> Callable[[Any], None]:
        """An incompatible-QoS event handler that names the resolved topic
        (rclpy's default one prints the name as given, e.g. ``~/labels``)."""
        def warn(event: Any) -> None:
            policy = qos_policy_name_from_kind(event.last_policy_kind)
            self.get_logger().warning(params.incompatible_qos_warning(topic(), policy, output, reliability))
        return warn

    def _update_optional_outputs(self, cameras: Optional[Dict[str, Camera]] = None) -> None:
        """Create or remove the switched outputs (overlay, confidence) as their parameters say."""
        with self._outputs_lock:
            for camera in (cameras or self._cameras).values():
                for output in topics.SWITCHED:
                    if output.depth and not camera.depth_topic:
                        continue
                    current = camera.handles.get(output.name)
                    if self._values[output.switch] and current is None:
                        camera.handles[output.name] = self._publisher(camera, output)
                    elif not self._values[output.switch] and current is not None:
                        self.destroy_publisher(camera.handles.pop(output.name))

    def _image_callback(self, camera: Camera, decode: Callable[[Any], Any]) -> Callable[[Any], None]:
        def on_image(msg: Any) -> None:
            try:
                frame = Frame(decode(msg), messages.stamp_seconds(msg.header.stamp), str(msg.header.frame_id),
                              camera.topic, context=msg.header)
            except Exception as exc:  # never let one bad frame stop the node
                camera.undecodable += 1
                encoding = getattr(msg, "encoding", None) or getattr(msg, "format", "")
                self.get_logger().warning(
                    f"dropped an undecodable frame (encoding {summary(encoding)}) on {camera.resolved}: "
                    f"{shorten(str(exc), 300)} [{camera.undecodable} so far; this warning is throttled]",
                    throttle_duration_sec=BAD_INPUT_LOG_PERIOD,
                )
                return
            runtime = self.runtime
            if runtime is not None:  # None once cleanup ran: a callback that was already under way
                if camera.pairing is not None:  # its depth image, kept while the frame waits for the model
                    camera.pairing.hold(frame.stamp, self._values["depth_tolerance"])
                runtime.submit(frame)

        return on_image

    def _bad_depth(self, camera: Camera, what: str, exc: Exception) -> None:
        camera.bad_depth += 1
        self.get_logger().warning(f"dropped an unreadable {what} for {camera.resolved}: {shorten(str(exc), 300)} "
                                  f"[{camera.bad_depth} so far; this warning is throttled]",
                                  throttle_duration_sec=BAD_INPUT_LOG_PERIOD)

    def _depth_callback(self, camera: Camera) -> Callable[[Any], None]:
        def on_depth(msg: Any) -> None:
            try:
                metres = depth_to_metres(msg)
            except Exception as exc:  # never let one bad message stop the node
                self._bad_depth(camera, "depth image", exc)
                return
            camera.pairing.add_depth(metres, messages.stamp_seconds(msg.header.stamp), str(msg.header.frame_id),
                                     msg.header)
        return on_depth

    def _info_callback(self, camera: Camera) -> Callable[[Any], None]:
        def on_info(msg: Any) -> None:
            try:
                camera.pairing.add_intrinsics(intrinsics(msg))
            except Exception as exc:
                self._bad_depth(camera, "camera info", exc)
        return on_info

    def _depth(self, camera: Camera, out: FrameResult) -> Optional[topics.Depth]:
        """The frame's 3D inputs, or None: no depth topic, or no depth image
        matches it (counted, and said in a throttled warning)."""
        if camera.pairing is None:
            return None
        image, header, why = camera.pairing.match(out.frame.stamp, out.frame.rgb.shape[:2],
                                                  self._values["depth_tolerance"])
        if image is None:
            self.runtime.processor.stats.count(camera.topic, "without_depth")
            self.get_logger().warning(f"a frame of {camera.resolved} is labelled in 2D only: {why}",
                                      throttle_duration_sec=BAD_INPUT_LOG_PERIOD)
            return None
        return topics.Depth(image, header, self._values["points_decimation"], out.instance_ids, out.objects)

    def _on_result(self, out: FrameResult) -> None:
        """Publish one frame's outputs with its input header: on the worker for
        model frames, on the image callback's thread for propagated ones.
        Switched outputs (overlay, confidence) are built only while someone subscribes."""
        camera = self._cameras.get(out.frame.camera)
        if self._closing or camera is None:  # closing, or cleaned up while the frame was under way
            return
        depth = self._depth(camera, out)
        with self._outputs_lock:
            for publisher, message in camera.frame_messages(
                self._ns, out.frame.rgb, out.result, out.frame.context, self._values["overlay_alpha"],
                self._settings.engine.confidence_threshold, out.source, out.model_context,
                wanted=lambda name, pub: not topics.BY_NAME[name].switch or pub.get_subscription_count() > 0,
                overlay_legend=self._values["overlay_legend"], label_encoding=self._values["label_encoding"],
                depth=depth, objects=out.objects, instance_ids=out.instance_ids,
                class_id=self._values["detection_class_id"],
            ):
                publisher.publish(message)
            self._publish_labelspace(out.result.vocabulary)
        if self._first_label is None and self._load is not None:
            self._first_label = time.monotonic() - self._configured_at
            self.get_logger().info(f"first labels {self._first_label:.1f} s after configure "
                                   f"(model ready in {self._load.total_seconds:.1f} s)")

    def _on_error(self, frame: Optional[Frame], error: BaseException) -> None:
        if self._closing:
            return
        if frame is None:
            self.get_logger().error(f"a parameter update was refused: {shorten(str(error), 300)}")
        else:
            camera = self._cameras.get(frame.camera)
            where = camera.resolved if camera else summary(frame.camera)
            if isinstance(error, FrameOutOfMemory):  # counted on /diagnostics; the next frame runs
                self.get_logger().warn(f"a frame on {where} was dropped: {shorten(str(error), 300)}",
                                       throttle_duration_sec=BAD_INPUT_LOG_PERIOD)
            else:
                self.get_logger().error(f"a frame on {where} failed: {shorten(str(error), 300)}",
                                        throttle_duration_sec=BAD_INPUT_LOG_PERIOD)

    # -- diagnostics -----------------------------------------------------------

    def _report(self, camera: Camera) -> Report:
        try:
            return self._camera_report(camera)
        except Exception as exc:  # /diagnostics must never stop the node
            return Report(ERROR, f"diagnostics failed: {shorten(str(exc), 200)}", [("input topic", camera.resolved)])

    def _camera_report(self, camera: Camera) -> Report:
        stats = self.runtime.stats(camera.topic)
        report = camera_report(camera.resolved, stats, camera.reported, camera.undecodable,
                               camera.reported_undecodable, self.runtime.running)
        camera.reported, camera.reported_undecodable = stats, camera.undecodable
        report.values.append(memory_value(self._device))
        if self._load is not None:
            report.values.extend(load_values(self._load, self._first_label))
        return report

    def _start_diagnostics(self) -> None:
        """One /diagnostics status per camera while active."""
        if self._updater is not None:
            self._updater.setHardwareID(self._device)
            for camera in self._cameras.values():
                self._updater.add(camera.resolved, lambda stat, c=camera: self._fill_status(stat, self._report(c)))
            return
        period = self.get_parameter(params.DIAGNOSTICS_PERIOD).value
        self._diagnostics_timer = self.create_timer(period, self._publish_diagnostics)

    def _stop_diagnostics(self) -> None:
        if self._updater is not None:
            for camera in self._cameras.values():
                self._updater.removeByName(camera.resolved)
        elif self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None

    @staticmethod
    def _fill_status(stat: Any, report: Report) -> Any:
        stat.summary(bytes([report.level]), report.message)
        for key, value in report.values:
            stat.add(key, value)
        return stat

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        for camera in self._cameras.values():
            report = self._report(camera)
            array.status.append(DiagnosticStatus(
                level=bytes([report.level]), name=f"{self.get_name()}: {camera.resolved}",
                message=report.message, hardware_id=self._device,
                values=[KeyValue(key=k, value=v) for k, v in report.values],
            ))
        self._diagnostics.publish(array)

    # -- shutdown --------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker (the frame in progress is abandoned between two of
        its buckets); nothing is published after this."""
        self._closing = True
        if self.runtime is not None and not self.runtime.stop(STOP_TIMEOUT):
            self.get_logger().error(f"the segmentation worker did not stop within {STOP_TIMEOUT:.0f} s")


STARTUP_ERRORS = (ParameterError, ConfigError, VocabularyError, ModelLoadError, ParameterException, LabelSpaceError)


def _leave_it_to_rclpy(signum: int, frame: Any) -> None:
    """rclpy's own SIGINT/SIGTERM handler shuts the context down, which ends
    the spin; it also chains to Python's handlers, whose KeyboardInterrupt
    (or the early exit ``node_main`` installs) would cut the shutdown short."""


def spin_until_shutdown(executor: Executor) -> None:
    """Spin until the context shuts down. A signal's shutdown can land between
    the executor's check of the context and its next wait set, which rcl then
    refuses (rclpy raises RCLError) instead of ending the spin: that is a stop,
    not a failure that leaves the node to be killed."""
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception:
        if executor.context.ok():
            raise


def main(args: Optional[List[str]] = None) -> int:
    """Run the node until SIGINT or SIGTERM; 0 on a clean stop, 2 on bad parameters, 1 if it cannot start.

    With ``autostart`` the node configures and activates itself first (a
    failed configure ends it with status 2); without, it waits unconfigured
    for a lifecycle manager."""
    for signum in (signal.SIGINT, signal.SIGTERM):  # rclpy's handlers chain to these: they must do nothing
        signal.signal(signum, _leave_it_to_rclpy)
    rclpy.init(args=args)
    try:
        node = ActiveSAMNode()
        if node.autostart and node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ParameterError(node.failure or "configure failed (see the log)")
        if node.autostart and node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise ParameterError("activate failed (see the log)")
    except STARTUP_ERRORS as exc:
        if not rclpy.ok():
            return 0  # stopped by a signal while loading the model
        rclpy.logging.get_logger(params.NODE_NAME).fatal(f"cannot start: {shorten(str(exc), 2000)}")
        rclpy.try_shutdown()
        return 2
    except Exception as exc:
        if not rclpy.ok():
            return 0  # stopped by a signal while loading the model: creating topics then fails
        rclpy.logging.get_logger(params.NODE_NAME).fatal(
            f"cannot start: {type(exc).__name__}: {shorten(str(exc), 2000)}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        spin_until_shutdown(executor)
    finally:
        node.close()
        executor.shutdown(timeout_sec=0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
