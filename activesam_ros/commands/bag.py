"""``activesam bag``: segment the image topics of a rosbag2 into a new rosbag2
that holds what the node would have published.

Each input topic is one camera stream, processed in bag-timestamp order with
the node's temporal policy (``runtime.StreamProcessor``) and written with
the node's topic names, message types and QoS (``bagio``), every output
stamped with its input's header and bag timestamp. A camera with a depth
topic (``--depth-topic``) also gets the node's 3D outputs: each frame takes
the depth image nearest its stamp within ``--depth-tolerance``, read ahead
of the frame by :data:`DEPTH_LOOKAHEAD` seconds of bag time (a depth image
is often recorded just after its colour image), and the CameraInfo beside
the depth topic.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..engine.stopping import Interrupted
from ..ros import bagio, names
from ..ros.committed_bag import COMMIT_EVERY
from ..ros.topics import CameraOutputs, Depth
from ..stream.depth_sync import DepthPairing
from ..stream.parameters import SHARED_BY_NAME, default
from . import distributed
from .common import (
    Stopped,
    StopRequests,
    UserError,
    add_engine_args,
    add_model_args,
    add_temporal_args,
    add_vocab_args,
    build_engine,
    check_combination,
    config_from_args,
    model_description,
    temporal_from_args,
    vocabulary_from_args,
)

if TYPE_CHECKING:  # torch comes with the engine; imported when the command runs
    from tqdm import tqdm

    from ..engine.vocabulary import Vocabulary
    from ..render.labelspace import LabelSpace
    from ..ros.committed_bag import CommittedBag
    from ..stream.runtime import FrameResult, StreamProcessor

PROG = "activesam bag"

DEPTH_LOOKAHEAD = 0.25
"""Seconds of bag time, beyond ``--depth-tolerance``, that depth images are read ahead of a frame."""
DEPTH_KEEP = 32
"""Depth images kept per camera while reading ahead (``stream.depth_sync``)."""


def _switch(group: Any, name: str, what: str) -> None:
    """A ``--name``/``--no-name`` flag for the node's boolean parameter ``name``, defaulting as the node does."""
    group.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=default(name),
                       help=f"{what} (default {'on' if default(name) else 'off'}, as the node)")


def _choice(group: Any, name: str) -> None:
    """A ``--name`` flag for the node's parameter ``name`` of fixed choices, described and defaulting as the node's."""
    spec = SHARED_BY_NAME[name]
    group.add_argument("--" + name.replace("_", "-"), choices=spec.choices, default=default(name),
                       help=f"{spec.description} (default {default(name)}, as the node)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bag",
        help="segment the image topics of a rosbag2 into a new rosbag2",
        description="Segment sensor_msgs/Image and CompressedImage topics of a rosbag2 (sqlite3 or "
        "MCAP) frame by frame, each topic a camera, with the node's temporal policy; write a new "
        "rosbag2 with the node's outputs: <ns>/labels, <ns>/color_labels, <ns>/label_info, <ns>/active_classes, "
        "<ns>/label_source, <ns>/overlay, <ns>/confidence, <ns>/detections, <ns>/instances, <ns>/panoptic "
        "(and with --depth-topic <ns>/points, <ns>/detections_3d), "
        f"where <ns> is {bagio.NODE_NAMESPACE} for one camera and {bagio.NODE_NAMESPACE}/<camera topic> for several.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IN",
                        help="a rosbag2 directory, or a lone .db3 or .mcap file; several: each is segmented on "
                        "its own, into OUT/<its name> (under torchrun, the bags are shared among the processes)")
    parser.add_argument("output", metavar="OUT", help="the new rosbag2 directory (must not exist); with several "
                        "IN, the folder of their output bags (it may exist, their bags must not)")
    parser.add_argument("--image-topic", dest="image_topics", action="append", required=True, metavar="TOPIC",
                        help="an image topic of the bag (repeat for several cameras)")
    add_vocab_args(parser)
    add_model_args(parser)
    group = parser.add_argument_group("output")
    group.add_argument("--include-input", action="store_true", help="also copy the input image topics into OUT")
    _switch(group, "publish_overlay", "write <ns>/overlay, the image with class colours blended in")
    group.add_argument("--overlay-alpha", type=float, default=default("overlay_alpha"),
                       help=f"weight of the class colours (default {default('overlay_alpha'):g})")
    _switch(group, "overlay_legend", "draw the class names in their colours into the overlay")
    _switch(group, "publish_color_labels", "write <ns>/color_labels, rgb8 class colours with unlabeled black")
    _switch(group, "publish_confidence", "write <ns>/confidence, 32FC1 score of the winning class per pixel")
    _switch(group, "publish_detections", "write <ns>/detections, the frame's objects with their persistent ids")
    _choice(group, "detection_class_id")
    _switch(group, "publish_instances", "write <ns>/instances, mono16 object id per pixel")
    _switch(group, "publish_panoptic", "write <ns>/panoptic, 32SC1 class << 16 | object id per pixel")
    _choice(group, "label_encoding")
    group.add_argument("--labelspace", action="store_true",
                       help="also write <namespace>/labelspace, the semantic_inference_msgs/Labelspace the node "
                       "publishes where that package is installed (latched, once, at the first message): the label "
                       "space Hydra reads at start-up")
    group.add_argument("--labelspace-roles", metavar="FILE",
                       help="with --labelspace: YAML naming its object, surface and dynamic classes (the node's "
                       "labelspace_roles; every name must be a class of the vocabulary)")
    depth = parser.add_argument_group("depth")
    depth.add_argument("--depth-topic", dest="depth_topics", action="append", metavar="TOPIC",
                       help="a depth image topic registered to the camera of the --image-topic in the same position "
                       "(16UC1 mm or 32FC1 m; '' for a camera without); its sensor_msgs/CameraInfo is the bag's "
                       "camera_info topic beside it (/cam/depth/image_raw -> /cam/depth/camera_info)")
    depth.add_argument("--depth-tolerance", type=float, default=default("depth_tolerance"), metavar="SECONDS",
                       help="a frame takes the depth image nearest its stamp, at most this far (default "
                       f"{default('depth_tolerance'):g} s, as the node); frames without one get the 2D outputs only")
    depth.add_argument("--points-decimation", type=int, default=default("points_decimation"), metavar="N",
                       help=f"<ns>/points keeps every N-th depth pixel along each axis (default "
                       f"{default('points_decimation')}, as the node)")
    _switch(depth, "publish_points", "write <ns>/points, the labelled cloud, for cameras with depth")
    _switch(depth, "publish_detections_3d",
            "write <ns>/detections_3d, each instance's 3D centroid and box, for cameras with depth")
    group.add_argument("--namespace", default=bagio.NODE_NAMESPACE,
                       help=f"what the node's ~ stands for (default {bagio.NODE_NAMESPACE})")
    group.add_argument("--distro", choices=sorted(bagio.METADATA_VERSIONS), default="humble",
                       help="ROS 2 distribution that reads OUT: message definitions and metadata "
                       "version (default humble; Jazzy reads either)")
    group.add_argument("--storage", choices=sorted(bagio.STORAGES),
                       help="storage format of OUT (default: that of IN)")
    parser.add_argument("--model-every", type=int, default=1, metavar="N",
                        help="run the model on every N-th frame of a camera and give the frames between labels "
                        "carried forward by optical flow (--propagate), as the node does when the model is "
                        "slower than the camera; a frame the flow cannot serve is segmented (default 1: "
                        "every frame segmented)")
    parser.add_argument("--start-time", type=int, metavar="NS",
                        help="segment only input messages at or after this bag time (ns); a stopped run "
                        "says where to continue")
    parser.add_argument("--commit-every", type=int, default=COMMIT_EVERY, metavar="N",
                        help="close a part of OUT (one file each, a split bag) and rewrite its metadata.yaml "
                        "every N input messages, so that a kill, a power loss or a full disk loses at most "
                        f"the last N (default {COMMIT_EVERY})")
    add_engine_args(parser, stream=True)
    add_temporal_args(parser)
    distributed.add_args(parser)
    parser.set_defaults(run=run)


@dataclass
class Camera(CameraOutputs):
    """One input topic: its output connections in OUT (``handles``) and what happened to its frames."""

    msgtype: str = ""
    copy: Optional[str] = None  # the input topic's handle in OUT (--include-input)
    segmented: int = 0
    propagated: int = 0
    refreshes: int = 0
    previews: int = 0
    skipped: int = 0
    out_of_memory: int = 0     # of the skipped: out of device memory even at one prompt per forward
    bucket_halvings: int = 0   # frames run again with half the bucket (out of device memory)
    first_problem: str = ""
    depth_topic: str = ""
    pairing: Optional[DepthPairing] = None
    with_depth: int = 0
    without_depth: int = 0
    first_depth_problem: str = ""

    def summary(self) -> str:
        line = (f"{self.topic} -> {self.prefix}/*: {self.segmented} frame(s) segmented ({self.refreshes} "
                f"refreshed, {self.previews} with a preview), {self.propagated} labelled by propagation")
        if self.depth_topic:
            line += f", {self.with_depth} with depth from {self.depth_topic}"
        if self.without_depth:
            line += f", {self.without_depth} without a matching depth image (first: {self.first_depth_problem})"
        if self.skipped:
            memory = f"{self.out_of_memory} out of device memory; " if self.out_of_memory else ""
            line += f", {self.skipped} skipped ({memory}first: {self.first_problem})"
        if self.bucket_halvings:
            line += f", bucket halved {self.bucket_halvings} time(s) for device memory"
        return line


def _add_outputs(out: "CommittedBag", store: "bagio.Typestore", camera: Camera, args: argparse.Namespace) -> None:
    """The node's output topics of one camera, with its message types and QoS."""
    from ..ros.topics import enabled

    for output in enabled(vars(args), depth=bool(camera.depth_topic)):
        qos = bagio.LATCHED_QOS if output.latched else bagio.OUTPUT_QOS
        camera.handles[output.name] = out.add_topic(f"{camera.prefix}/{output.name}", output.msgtype, store, (qos,))


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except bagio.BagError as exc:
        raise UserError(str(exc)) from exc


@dataclass(frozen=True)
class BagPlan:
    """One input bag, checked: where its outputs go, each camera's output
    prefix and how many frames it has."""

    source: Path
    out: Path
    storage: str
    prefixes: Dict[str, str]
    frames: int


def _pairs(args: argparse.Namespace) -> List[Tuple[Path, Path]]:
    """(input, output) per bag: OUT itself for one input, OUT/<input's name> for several."""
    sources = [Path(name) for name in args.inputs]
    if len(sources) == 1:
        return [(sources[0], Path(args.output))]
    named: Dict[str, List[Path]] = {}
    for source in sources:  # a lone bag file is named without its suffix
        named.setdefault(source.stem if source.suffix in bagio.BAG_FILE_SUFFIXES else source.name, []).append(source)
    clashes = [f"{', '.join(map(str, given))} (all {name})" for name, given in named.items() if len(given) > 1]
    if clashes:
        raise UserError(f"input bags must have different names, their outputs are OUT/<name>: {'; '.join(clashes)}")
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is not a folder: with several input bags OUT is the folder of their outputs")
    return [(given[0], folder / name) for name, given in named.items()]


def _plan(args: argparse.Namespace, source: Path, out: Path) -> BagPlan:
    """Check one input bag and its output before the model loads."""
    bagio.check_new_output(out, source)
    bag = bagio.open_bag(source)
    try:
        connections = bagio.image_connections(bag, args.image_topics)
        bagio.depth_connections(bag, [depth for depth in args.depth.values() if depth])
        prefixes = bagio.output_prefixes({topic: conns[0].msgtype for topic, conns in connections.items()},
                                         args.namespace)
        frames = sum(c.msgcount for conns in connections.values() for c in conns)
        if args.start_time is not None and frames and args.start_time >= bag.end_time:
            raise UserError(f"--start-time {args.start_time} is after the last message of {source} (bag time "
                            f"{bag.end_time - 1} ns): there is nothing to segment")
    finally:
        bag.close()
    return BagPlan(source, out, args.storage or bagio.storage_of(source), prefixes, frames)


def _bag_topics(topics: List[str]) -> List[str]:
    """--image-topic values as the bag names topics: normalised and absolute
    (``cam/image/`` is ``/cam/image``), checked by ROS's rules, each once."""
    problems = names.camera_problems(topics, "/", bagio.NODE_NAME, what="--image-topic")
    private = [t for t in topics if names.normalise(t).startswith("~")]
    if private:
        problems.append(f"--image-topic {private[0]!r}: a bag's topics have no private (~) names")
    if problems:
        raise UserError("; ".join(problems))
    return [names.resolve(t, "/", bagio.NODE_NAME) for t in topics]


def _depth_topics(args: argparse.Namespace) -> Dict[str, str]:
    """Each image topic's depth topic ('' = none), checked and made absolute."""
    given = args.depth_topics or []
    problems = names.depth_problems(given, args.image_topics, what="--depth-topic")
    if problems:
        raise UserError("; ".join(problems))
    topics = names.depth_topics(given, args.image_topics)
    return {image: names.resolve(depth, "/", bagio.NODE_NAME) if depth else "" for image, depth in topics.items()}


def _run(args: argparse.Namespace) -> int:
    """Check everything the user gave before the model loads, then segment."""
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise UserError(f"--overlay-alpha must be in [0, 1], got {args.overlay_alpha}")
    if not 0.0 <= args.depth_tolerance <= 1.0:
        raise UserError(f"--depth-tolerance must be in [0, 1] seconds, got {args.depth_tolerance}")
    if not 1 <= args.points_decimation <= 64:
        raise UserError(f"--points-decimation must be in [1, 64], got {args.points_decimation}")
    args.image_topics = _bag_topics(args.image_topics)
    args.depth = _depth_topics(args)
    problem = names.namespace_problem(names.normalise(args.namespace))
    if problem:
        raise UserError(f"--namespace: {problem}")
    vocabulary = vocabulary_from_args(args)
    config = config_from_args(args)
    check_combination(config, vocabulary)
    args.label_space = _label_space(args, vocabulary)
    temporal = temporal_from_args(args)
    if args.commit_every < 1:
        raise UserError(f"--commit-every must be at least 1, got {args.commit_every}")
    if args.model_every < 1:
        raise UserError(f"--model-every must be at least 1, got {args.model_every}")
    if args.start_time is not None and args.start_time < 0:
        raise UserError(f"--start-time must be a bag time in nanoseconds >= 0, got {args.start_time}")

    # Under torchrun each process segments whole bags: a bag's output is then the one a single
    # process writes, with no label traffic between processes or machines.
    with distributed.join(args) as job:
        plans = [_plan(args, source, out) for source, out in _pairs(args)]
        mine = job.shard(plans, weights=[plan.frames for plan in plans])
        if not mine:
            print(f"{PROG}: rank {job.rank} has no bag to segment ({len(plans)} bag(s) for "
                  f"{job.world_size} processes)", file=sys.stderr)
            return 0

        from ..stream.runtime import StreamProcessor

        engine = build_engine(args, vocabulary, config)
        empty = []
        with StopRequests(engine.stop.set) as stop:
            for plan in mine:
                bag = bagio.open_bag(plan.source)
                try:
                    connections = bagio.image_connections(bag, args.image_topics)
                    if len(plans) > 1:
                        plan.out.parent.mkdir(parents=True, exist_ok=True)
                    # A new processor per bag: temporal state never crosses from one recording into another.
                    if not _segment(args, bag, connections, plan.prefixes, StreamProcessor(engine, temporal),
                                    plan.out, plan.storage, stop, job):
                        empty.append(str(plan.source))
                finally:
                    bag.close()
    if empty:
        print(f"{PROG}: error: no frame could be segmented{'' if len(plans) == 1 else ' in ' + ', '.join(empty)}",
              file=sys.stderr)
        return 1
    return 0


def _label_space(args: argparse.Namespace, vocabulary: "Vocabulary") -> Optional["LabelSpace"]:
    """What --labelspace writes (None without it); roles checked against the vocabulary."""
    from ..render.labelspace import LabelSpace, LabelSpaceError, read_roles, resolve_roles

    if args.labelspace_roles and not args.labelspace:
        raise UserError("--labelspace-roles gives the roles of --labelspace: pass both")
    if not args.labelspace:
        return None
    try:
        named = read_roles(args.labelspace_roles) if args.labelspace_roles else {}
        return LabelSpace.of(vocabulary, resolve_roles(vocabulary, named), args.label_encoding)
    except LabelSpaceError as exc:
        raise UserError(f"--labelspace-roles: {exc}") from exc


def _segment(args: argparse.Namespace, bag: "bagio.InputBag", connections: Dict[str, List["bagio.Connection"]],
             prefixes: Dict[str, str], processor: "StreamProcessor", out: Path, storage: str, stop: StopRequests,
             job: "distributed.Job") -> int:
    """Every frame of the image topics through ``processor``, in bag order,
    outputs into a new bag at ``out`` committed every --commit-every input
    messages (``CommittedBag``); returns how many were labelled. A stop
    request ends it between two messages, the bag closed and marked partial
    (so do errors, a full disk included)."""
    from ..ros.committed_bag import CommittedBag
    from ..ros.rosbags_types import typestore

    store = typestore(args.distro)
    writer = CommittedBag(out, storage, args.distro, _provenance(bag.path, args, processor), args.commit_every)
    cameras: Dict[str, Camera] = {}
    total = sum(c.msgcount for conns in connections.values() for c in conns)
    progress = job.progress(total=total, desc="bag", unit="frame", file=sys.stderr)
    try:
        for topic, conns in connections.items():
            camera = cameras[topic] = Camera(topic, prefixes[topic], msgtype=conns[0].msgtype,
                                             depth_topic=args.depth[topic])
            camera.pairing = DepthPairing(DEPTH_KEEP) if camera.depth_topic else None
            _add_outputs(writer, store, camera, args)
            if args.include_input:
                camera.copy = writer.add_topic(topic, camera.msgtype, store, tuple(conns[0].ext.offered_qos_profiles))
        labelspace = _add_labelspace(writer, store, args)
        every = [c for conns in connections.values() for c in conns]
        feed = DepthFeed(bag, store, {c.depth_topic: c for c in cameras.values() if c.depth_topic}, args)
        for connection, timestamp, raw in bagio.messages(bag, every, start=args.start_time):
            stop.check()
            if labelspace is not None:  # once, with the first message's bag time
                writer.write(labelspace[0], timestamp, labelspace[1])
                labelspace = None
            progress.update()
            feed.read_until(timestamp + int((args.depth_tolerance + DEPTH_LOOKAHEAD) * 1e9))
            labelled = _handle(args, bag, writer, store, processor, cameras[connection.topic], timestamp, raw,
                               progress)
            writer.frame_done(timestamp, labelled)
        writer.close()
    except BaseException as error:  # a stop request, a damaged input, a full disk: OUT says it is partial
        if isinstance(error, Interrupted) and stop.signum is not None:  # the frame in progress, abandoned
            error = Stopped(stop.signum)
        reason = f"stopped by {error}" if isinstance(error, (KeyboardInterrupt, Stopped)) else f"failed: {error}"
        writer.stop(reason)
        progress.close()
        where = "" if writer.last is None else f" up to bag time {writer.last} ns"
        print(f"{PROG}: {out} is a readable but partial bag ({writer.frames} frame(s) labelled{where}): "
              f"{bagio.resume_advice(out, writer.last)}", file=sys.stderr)
        if isinstance(error, bagio.BagError):
            raise UserError(str(error)) from error
        if isinstance(error, Stopped):
            raise error from None
        raise
    progress.close()
    for camera in cameras.values():
        print(f"{PROG}: {camera.summary()}", file=sys.stderr)
    orphans = bagio.orphan_messages(bag.path)
    if orphans:
        print(f"{PROG}: {orphans} message(s) of {bag.path} belong to no topic of its index and were not read",
              file=sys.stderr)
    print(f"{PROG}: wrote {out} ({storage}, for ROS 2 {args.distro}, {len(writer.parts)} file(s))", file=sys.stderr)
    return writer.frames


def _handle(args: argparse.Namespace, bag: "bagio.InputBag", writer: "CommittedBag", store: "bagio.Typestore",
            processor: "StreamProcessor", camera: Camera, timestamp: int, raw: bytes, progress: "tqdm") -> bool:
    """One input message: copied if asked, segmented, its outputs written;
    a frame that cannot be segmented is skipped and counted (False)."""
    from ..engine.bucket import FrameOutOfMemory
    from ..engine.limits import InputError
    from ..engine.pipeline import NonFiniteScores
    from ..ros.messages import stamp_seconds
    from ..stream.runtime import Frame

    try:
        raw = bag.inflate(raw, timestamp)
    except InputError as exc:
        _skip(camera, timestamp, str(exc), progress)
        return False
    if camera.copy is not None:
        writer.write(camera.copy, timestamp, raw)
    try:
        msg = store.deserialize_cdr(raw, camera.msgtype)
    except Exception as exc:  # damaged CDR fails in many ways inside rosbags
        _skip(camera, timestamp, f"not a valid {camera.msgtype}: {exc!r}", progress)
        return False
    header = msg.header
    try:
        rgb = bagio.DECODERS[camera.msgtype](msg)
        done = processor.label(Frame(rgb, stamp_seconds(header.stamp), header.frame_id, camera.topic,
                                     context=header), args.model_every)
    except FrameOutOfMemory as exc:
        camera.out_of_memory += 1
        camera.bucket_halvings += exc.halvings
        _skip(camera, timestamp, str(exc), progress)
        return False
    except (InputError, NonFiniteScores) as exc:
        _skip(camera, timestamp, str(exc), progress)
        return False
    _write_outputs(writer, store, camera, timestamp, done, args, processor.engine.config.confidence_threshold)
    return True


def _add_labelspace(writer: "CommittedBag", store: "bagio.Typestore",
                    args: argparse.Namespace) -> Optional[Tuple[str, bytes]]:
    """The --labelspace topic's handle (latched, as the node's) and its one
    message; None without --labelspace."""
    import numpy as np

    from ..ros.labelspace_msg import MSGTYPE, labelspace_message

    if args.label_space is None:
        return None
    handle = writer.add_topic(f"{bagio.node_root(args.namespace)}/labelspace", MSGTYPE, store, (bagio.LATCHED_QOS,))
    message = labelspace_message(store.types[MSGTYPE], args.label_space, lambda v: np.asarray(v, np.int32))
    return handle, store.serialize_cdr(message, MSGTYPE)


class DepthFeed:
    """The bag's depth images and camera infos of the cameras with depth,
    read in bag order alongside the images, each into its camera's pairing."""

    def __init__(self, bag: "bagio.InputBag", store: "bagio.Typestore", cameras: Dict[str, Camera],
                 args: argparse.Namespace):
        from ..ros.names import camera_info_topic

        self.store, self.bag = store, bag
        self.owner: Dict[str, Tuple[Camera, bool]] = {}
        for depth, camera in cameras.items():
            self.owner[depth] = (camera, True)
            self.owner[camera_info_topic(depth)] = (camera, False)
        wanted = [c for topic, info in bag.topics.items() if topic in self.owner for c in info.connections]
        start = None if args.start_time is None else max(0, args.start_time - int(1e9))
        self.stream = bagio.messages(bag, wanted, start=start) if wanted else iter(())
        self.next: Optional[Tuple["bagio.Connection", int, bytes]] = None

    def read_until(self, until: int) -> None:
        """Take every depth and camera info message up to bag time ``until`` (ns)."""
        while True:
            if self.next is None:
                self.next = next(self.stream, None)
                if self.next is None:
                    return
            connection, timestamp, raw = self.next
            if timestamp > until:
                return
            self.next = None
            camera, is_depth = self.owner[connection.topic]
            self._take(camera, is_depth, connection, timestamp, raw)

    def _take(self, camera: Camera, is_depth: bool, connection: "bagio.Connection", timestamp: int,
              raw: bytes) -> None:
        from ..engine.limits import InputError
        from ..ros.depthconv import depth_to_metres, intrinsics
        from ..ros.messages import stamp_seconds

        try:
            msg = self.store.deserialize_cdr(self.bag.inflate(raw, timestamp), connection.msgtype)
            if is_depth:
                camera.pairing.add_depth(depth_to_metres(msg), stamp_seconds(msg.header.stamp),
                                         str(msg.header.frame_id), msg.header)
            else:
                camera.pairing.add_intrinsics(intrinsics(msg))
        except (InputError, ValueError) as exc:  # counted when a frame then finds no depth
            camera.first_depth_problem = camera.first_depth_problem or f"{connection.topic}: {exc}"
        except Exception as exc:  # damaged CDR fails in many ways inside rosbags
            camera.first_depth_problem = camera.first_depth_problem or f"{connection.topic}: not readable: {exc!r}"


def _provenance(source: Path, args: argparse.Namespace, processor: "StreamProcessor") -> Dict[str, str]:
    """What made OUT, for its metadata.yaml's custom_data (a string per key)."""
    engine = processor.engine
    return {
        "activesam.input": str(source),
        "activesam.model": model_description(args),
        "activesam.vocabulary": json.dumps(list(engine.vocabulary.lines)),
        "activesam.config": json.dumps(engine.config.as_dict()),
        "activesam.temporal": json.dumps(dataclasses.asdict(processor.temporal)),
    }


def _write_outputs(writer: "CommittedBag", store: "bagio.Typestore", camera: Camera, timestamp: int,
                   done: "FrameResult", args: argparse.Namespace, threshold: float) -> None:
    """One frame's messages, each with the input's header and bag timestamp."""
    from ..ros.rosbags_types import rosbags_messages
    from ..stream.runtime import MODEL

    ns = rosbags_messages(args.distro)
    depth = _depth(camera, done, args)
    for handle, message in camera.frame_messages(ns, done.frame.rgb, done.result, done.frame.context,
                                                     args.overlay_alpha, threshold, done.source, done.model_context,
                                                     overlay_legend=args.overlay_legend,
                                                     label_encoding=args.label_encoding, depth=depth,
                                                     objects=done.objects, instance_ids=done.instance_ids,
                                                     class_id=args.detection_class_id):
        writer.write(handle, timestamp, store.serialize_cdr(message, message.__msgtype__))
    if done.source == MODEL:
        camera.segmented += 1
        camera.bucket_halvings += done.result.bucket_halvings
        camera.refreshes += int(done.plan.refresh)
        camera.previews += int(done.result.preview_ran)
    else:
        camera.propagated += 1


def _depth(camera: Camera, done: "FrameResult", args: argparse.Namespace) -> Optional[Depth]:
    """The frame's 3D inputs, or None (counted) when the camera has depth but none matches the frame."""
    if camera.pairing is None:
        return None
    image, header, why = camera.pairing.match(done.frame.stamp, done.frame.rgb.shape[:2], args.depth_tolerance)
    if image is None:
        camera.without_depth += 1
        camera.first_depth_problem = camera.first_depth_problem or why
        return None
    camera.with_depth += 1
    return Depth(image, header, args.points_decimation, done.instance_ids, done.objects)


def _skip(camera: Camera, timestamp: int, reason: str, progress: "tqdm") -> None:
    """Count a frame that cannot be segmented; say why for the first of each topic."""
    if not camera.skipped:
        camera.first_problem = reason
        progress.write(f"{PROG}: skipping frames of {camera.topic} that cannot be segmented, "
                       f"first at bag time {timestamp} ns: {reason}", file=sys.stderr)
    camera.skipped += 1
