"""Fuzzing what a remote participant of the ROS graph can send the node,
through the node's own code paths, offline:

- parameter change sets through ``node_params.LiveParameters.set`` (the
  node's set-parameters callback is one call of it), staged into a real
  StreamRuntime whose worker then applies them between frames;
- image messages (raw and compressed) through ``imgconv`` and the frame the
  node's image callback builds from them.

Nothing may escape but the documented refusals; every reply and log line is
one bounded line; a refused change leaves every value as it was.
"""

from __future__ import annotations

import math
import random
import struct
import zlib
from typing import Any, Dict, List

import cv2
import numpy as np

from activesam_ros.engine.limits import ImageError
from activesam_ros.ros import imgconv, messages
from activesam_ros.ros import node_params as P
from activesam_ros.stream.parameters import ParameterError
from activesam_ros.stream.runtime import Frame, StreamRuntime

from bags import COMPRESSED, IMAGE, T, header
from fake_engine import FakeEngine

PARAMETER_SETS = 2_500
IMAGE_MESSAGES = 2_500

STRINGS = ["", " ", "tiny", "cpu", "cuda:99", "exact", "fast", "slow", "indoor", "driving", "ade20k", "~nouser/x",
           "~/x", "/etc/shadow", "../../etc/passwd", "a" * 5000, "x\0y", "\ufeffcat", "cat\u2028dog", "caf\u00e9",
           "best_effort", "reliable", "auto", "float32", "bfloat16", "/dev/zero", "/proc/self/environ", "🐈"]
ARRAYS = [[], [""], ["cat"], ["cat", "dog"], ["cat", "Cat"], ["background", "cat"], ["# cat"], ["a\u2028b"],
          ["x" * 300], ["\ufeffperson", "car, automobile"], [f"class {i}" for i in range(300)], ["/cam", "cam"],
          ["a b"], ["image"], ["~/x", "x"], [1, 2], [True], ["cat", None], [b"cat"]]
NUMBERS = [0, 1, -1, 2, 7, 14, 336, 1008, 2016, 2017, 4096, 10**6, 2**63 - 1, 2**63, 2**70, -2**70,
           0.0, 0.2, 0.5, 1.0, 1.5, -0.1, 1e-9, 1e300, -1e300, math.inf, -math.inf, math.nan]


def random_value(rng: random.Random) -> Any:
    kind = rng.random()
    if kind < 0.35:
        return rng.choice(NUMBERS)
    if kind < 0.55:
        return rng.choice(STRINGS)
    if kind < 0.75:
        return list(rng.choice(ARRAYS))
    if kind < 0.85:
        return rng.choice([True, False])
    if kind < 0.9:
        return None  # ROS's NOT_SET
    return rng.choice([b"\x00\x01", [1.5, math.nan], [[1]], {"a": 1}, object()])


def valid_value(rng: random.Random, spec: P.ParamSpec) -> Any:
    """A value of the right type, often within range, so changes also succeed."""
    if spec.choices:
        return rng.choice(spec.choices)
    if spec.kind == P.BOOL:
        return rng.choice([True, False])
    if spec.kind == P.INT:
        low, high = int(spec.low if spec.low is not None else 0), int(spec.high if spec.high is not None else 50)
        value = rng.randint(low, min(high, low + 60))
        return value - value % int(spec.step) if spec.step else value
    if spec.kind == P.DOUBLE:
        low, high = (spec.low, spec.high) if spec.low is not None else (0.0, 10.0)
        return rng.uniform(low, high)
    if spec.kind == P.STRING_ARRAY:
        return rng.choice([["cat", "dog"], ["background", "person", "car"], [""], ["sofa, couch", "table"]])
    return rng.choice(["indoor", "driving", ""]) if spec.name == "vocabulary_file" else spec.default


def start_values() -> Dict[str, Any]:
    values = P.default_values()
    values.update(model="tiny", vocabulary=None, vocabulary_file="indoor", image_topics=["/cam0/image_raw"])
    return values


def test_thousands_of_parameter_change_sets_never_escape_the_callback(tmp_path):
    rng = random.Random(19)
    names = list(P.BY_NAME) + ["no_such_parameter", "qos_overrides./x.depth"]
    live = P.LiveParameters(start_values(), P.NodeContext("/robot", "activesam"))
    live.configure()
    engine = FakeEngine(live.settings.vocabulary, live.settings.engine)
    refused: List[str] = []
    runtime = StreamRuntime(engine, lambda out: None, lambda frame, error: refused.append(str(error)),
                            live.settings.temporal)
    live.runtime = runtime
    outcomes = {True: 0, False: 0}
    for index in range(PARAMETER_SETS):
        changes = {}
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(names)
            spec = P.BY_NAME.get(name)
            changes[name] = valid_value(rng, spec) if spec and rng.random() < 0.5 else random_value(rng)
        before = dict(live.values)
        outcome = live.set(changes)
        outcomes[outcome.successful] += 1
        assert isinstance(outcome.successful, bool) and "\n" not in outcome.reason + outcome.log
        assert len(outcome.reason) <= P.MAX_REASON_CHARS and len(outcome.log) <= 2 * P.MAX_REASON_CHARS
        if outcome.successful:
            assert P.settings(live.values, live.context) == live.settings
        else:
            assert live.values == before and outcome.reason
        if index % 50 == 0:  # the worker swaps what was staged in between two frames
            runtime.processor.process(Frame(np.zeros((8, 8, 3), np.uint8), stamp=float(index), camera="c"))
    assert not refused, refused[:3]  # nothing the callback accepted was refused by the engine
    assert outcomes[True] > 200 and outcomes[False] > 200, outcomes


def test_the_remote_values_of_the_report_are_refused_with_a_reason():
    live = P.LiveParameters(start_values())
    live.configure()
    for changes, reason in (({"vocabulary_file": "~nouser/x"}, "a live change takes a shipped vocabulary"),
                            ({"vocabulary_file": "a" * 5000}, "vocabulary_file 'aaaa"),
                            ({"quantile_alpha": math.nan}, "quantile_alpha must be in"),
                            ({"vocabulary": ["cat\u2028dog"]}, "line break"),
                            ({"resolution": 15}, "multiple of 14")):
        outcome = live.set(changes)
        assert not outcome.successful and reason in outcome.reason and len(outcome.log) < 2 * P.MAX_REASON_CHARS
    # A 2 MB vocabulary within the limits is taken, and logged in one short line.
    big = [f"{i:06d} " + "x" * 190 for i in range(10_000)]
    outcome = live.set({"vocabulary": big})
    assert outcome.successful and len(outcome.log) < 400 and outcome.log.startswith("set vocabulary=10000 items [")


def test_settings_at_start_up_refuse_what_the_callback_refuses(tmp_path):
    vocab = tmp_path / "v.txt"
    vocab.write_bytes("\ufeffcat\ndog\n".encode())
    assert P.settings({**start_values(), "vocabulary_file": str(vocab)}).vocabulary.names == ("cat", "dog")
    for bad in ("~nouser/x", "a" * 5000, "x\0y"):
        try:
            P.settings({**start_values(), "vocabulary_file": bad})
        except ParameterError as exc:
            assert len(str(exc)) < 600
        else:
            raise AssertionError(f"{bad[:20]!r} was accepted")


# -- image messages --------------------------------------------------------------------------------------

ENCODINGS = list(imgconv.LAYOUTS) + ["RGB8", "8UC3", "bayer_rggb8 ", "yuv420", "64FC1", "", "🐈", "a" * 300]
FORMATS = ["rgb8; jpeg compressed bgr8", "bgr8; png compressed", "png", "jpeg", "rgb8; png compressed rgb8",
           "16UC1; compressedDepth png", "", "tiff", "x" * 500]


def png_claiming(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def compressed_payload(rng: random.Random, np_rng: np.random.Generator) -> bytes:
    kind = rng.random()
    small = np_rng.integers(0, 256, (rng.randint(1, 24), rng.randint(1, 24), 3), dtype=np.uint8)
    if kind < 0.3:
        data = bytearray(cv2.imencode(rng.choice([".png", ".jpg", ".bmp", ".webp", ".ppm"]), small)[1].tobytes())
        for _ in range(rng.randint(0, 3)):  # bit flips
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data[: rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
    if kind < 0.5:
        return png_claiming(rng.choice([0, 1, 2, 4096, 8192, 20000, 2**31 - 1]), rng.choice([0, 1, 3, 8192, 2**31 - 1]),
                            rng.choice([1, 8, 16, 3]), rng.choice([0, 2, 3, 4, 6, 7]))
    if kind < 0.6:
        return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8192 +X 8192\n" + bytes(rng.randint(0, 64))
    if kind < 0.7:
        deep = np_rng.integers(0, 4096, small.shape[:2], dtype=np.uint16)
        return cv2.imencode(".png", deep)[1].tobytes()
    return np_rng.integers(0, 256, rng.randint(0, 300), dtype=np.uint8).tobytes()


def raw_message(rng: random.Random, np_rng: np.random.Generator):
    encoding = rng.choice(ENCODINGS)
    width = rng.choice([0, 1, 2, 3, 7, 16, -1, 5000, 2**31, 2**32 + 4])
    height = rng.choice([0, 1, 2, 5, 9, -3, 5000, 2**31])
    pixel = imgconv.LAYOUTS.get(encoding.strip().lower(), imgconv.LAYOUTS["rgb8"])
    row = max(0, min(width, 64)) * pixel.channels * pixel.depth
    step = rng.choice([row, row + rng.randint(1, 7), max(0, row - 1), 0, 2**31])
    length = rng.choice([max(0, step) * max(0, min(height, 16)), rng.randint(0, 400), 0])
    data = np_rng.integers(0, 256, min(length, 1 << 16), dtype=np.uint8)
    return T[IMAGE](header=header(rng.randint(0, 99)), height=height % 2**32, width=width % 2**32,
                    encoding=encoding, is_bigendian=rng.choice([0, 1]), step=step % 2**32, data=data)


def test_thousands_of_image_messages_convert_or_are_refused_as_bad_images():
    rng, np_rng = random.Random(20), np.random.default_rng(20)
    converted = refused = 0
    for _ in range(IMAGE_MESSAGES):
        if rng.random() < 0.5:
            msg = raw_message(rng, np_rng)
            decode = imgconv.image_to_rgb
        else:
            payload = np.frombuffer(compressed_payload(rng, np_rng), np.uint8)
            msg = T[COMPRESSED](header=header(rng.randint(0, 99)), format=rng.choice(FORMATS), data=payload)
            decode = imgconv.compressed_to_rgb
        try:  # what the node's image callback does with a message, before the runtime
            frame = Frame(decode(msg), messages.stamp_seconds(msg.header.stamp), str(msg.header.frame_id), "cam",
                          context=msg.header)
        except ImageError as exc:  # UnsupportedImage is one: a dropped, counted frame with a one-line reason
            assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)[:200]
            refused += 1
            continue
        assert frame.rgb.ndim == 3 and frame.rgb.shape[2] == 3 and frame.rgb.dtype == np.uint8
        assert frame.rgb.flags.c_contiguous and math.isfinite(frame.stamp)
        converted += 1
    assert converted > 200 and refused > 200, (converted, refused)
