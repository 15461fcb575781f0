"""imgconv: every supported encoding against pixels built independently of it."""

from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from activesam_ros.ros.imgconv import UnsupportedImage, compressed_to_rgb, image_to_rgb, rgb_to_image_fields

H, W = 6, 10
RNG = np.random.default_rng(7)


def rgb_full_range() -> np.ndarray:
    """Random RGB that contains 0 and 255, so a min/max stretch is the identity."""
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb[0, 0], rgb[-1, -1] = 0, 255
    return rgb


def image_msg(raw: np.ndarray, encoding: str, *, pad: int = 0, bigendian: bool = False,
              wrap=bytes) -> SimpleNamespace:
    """An Image-like message from (H, W[, C]) raw pixels, rows padded with ``pad`` junk bytes."""
    dtype = raw.dtype.newbyteorder(">" if bigendian else "<") if raw.itemsize > 1 else raw.dtype
    rows = raw.astype(dtype).reshape(raw.shape[0], -1).view(np.uint8)
    junk = RNG.integers(0, 256, (rows.shape[0], pad), dtype=np.uint8)
    data = np.concatenate([rows, junk], axis=1)
    return SimpleNamespace(height=raw.shape[0], width=raw.shape[1], encoding=encoding,
                           is_bigendian=int(bigendian), step=data.shape[1],
                           data=wrap(data.tobytes()))


def with_alpha(pixels: np.ndarray) -> np.ndarray:
    alpha = RNG.integers(0, 256, pixels.shape[:2] + (1,), dtype=pixels.dtype)
    return np.concatenate([pixels, alpha], axis=2)


# encoding -> how its raw channels are made from RGB (None: a mono encoding)
COLOUR_8BIT = {
    "rgb8": lambda rgb: rgb,
    "bgr8": lambda rgb: rgb[:, :, ::-1],
    "8UC3": lambda rgb: rgb[:, :, ::-1],
    "rgba8": with_alpha,
    "bgra8": lambda rgb: with_alpha(rgb[:, :, ::-1]),
    "8UC4": lambda rgb: with_alpha(rgb[:, :, ::-1]),
}
COLOUR_16BIT = {
    "rgb16": lambda rgb: rgb,
    "bgr16": lambda rgb: rgb[:, :, ::-1],
    "rgba16": with_alpha,
    "bgra16": lambda rgb: with_alpha(rgb[:, :, ::-1]),
}
WRAPPERS = {
    "bytes": bytes,
    "bytearray": bytearray,
    "array.array": lambda b: array.array("B", b),  # what rclpy delivers
    "numpy": lambda b: np.frombuffer(b, np.uint8),  # what rosbags delivers
}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding", COLOUR_8BIT)
def test_8bit_colour(encoding, pad, wrap):
    rgb = rgb_full_range()
    msg = image_msg(np.ascontiguousarray(COLOUR_8BIT[encoding](rgb)), encoding, pad=pad, wrap=wrap)
    out = image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_8bit_mono(encoding, pad):
    gray = rgb_full_range()[:, :, 0]
    out = image_to_rgb(image_msg(gray, encoding, pad=pad))
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 4])
@pytest.mark.parametrize("scale", [257, 16], ids=["full-16bit", "12bit-in-16"])
@pytest.mark.parametrize("encoding", [*COLOUR_16BIT, "mono16", "16UC1"])
def test_16bit_is_stretched_to_its_range(encoding, scale, pad, bigendian):
    """v * 257 (full range) and v * 16 (a 12-bit camera) both come back as v."""
    rgb = rgb_full_range()
    if encoding in COLOUR_16BIT:
        raw, expected = COLOUR_16BIT[encoding](rgb.astype(np.uint16) * scale), rgb
    else:
        raw, expected = rgb[:, :, 1].astype(np.uint16) * scale, np.repeat(rgb[:, :, 1:2], 3, 2)
    msg = image_msg(np.ascontiguousarray(raw), encoding, pad=pad, bigendian=bigendian)
    np.testing.assert_array_equal(image_to_rgb(msg), expected)


def test_16bit_depth_keeps_order_and_constant_falls_back_to_high_byte():
    depth = np.array([[0, 500, 1000, 4000]], dtype=np.uint16)
    gray = image_to_rgb(image_msg(depth, "16UC1"))[0, :, 0]
    assert gray[0] == 0 and gray[-1] == 255 and list(gray) == sorted(gray)
    assert gray[1] == round(500 * 255 / 4000)
    flat = np.full((2, 2), 0xAB12, dtype=np.uint16)
    np.testing.assert_array_equal(image_to_rgb(image_msg(flat, "mono16")), 0xAB)


def yuyv_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 2) YUYV bytes from OpenCV's forward conversion."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUYV).reshape(rgb.shape[0], rgb.shape[1], 2)


def paired_rgb() -> np.ndarray:
    """Pixel pairs of one colour, so 4:2:2 chroma sharing loses nothing."""
    return np.repeat(RNG.integers(30, 226, (H, W // 2, 3), dtype=np.uint8), 2, axis=1)


@pytest.mark.parametrize("encoding", ["yuyv", "yuv422_yuy2"])
def test_yuyv_recovers_rgb(encoding):
    rgb = paired_rgb()
    out = image_to_rgb(image_msg(yuyv_from_rgb(rgb), encoding, pad=2))
    assert np.abs(out.astype(int) - rgb).max() <= 3  # YUV rounding


@pytest.mark.parametrize("encoding", ["uyvy", "yuv422"])
def test_uyvy_is_yuyv_with_bytes_swapped(encoding):
    rgb = paired_rgb()
    yuyv = yuyv_from_rgb(rgb)
    uyvy = np.ascontiguousarray(yuyv[:, :, ::-1])  # Y0 U Y1 V -> U Y0 V Y1
    out = image_to_rgb(image_msg(uyvy, encoding))
    np.testing.assert_array_equal(out, image_to_rgb(image_msg(yuyv, "yuyv")))
    assert np.abs(out.astype(int) - rgb).max() <= 3
    # read in the wrong order, the same bytes give another picture
    assert np.abs(image_to_rgb(image_msg(uyvy, "yuyv")).astype(int) - rgb).max() > 20


def bayer_mosaic(pattern: str, colour, dtype=np.uint8) -> np.ndarray:
    """A flat-colour scene as a ``pattern`` ("rggb"...) sensor sees it."""
    value = dict(zip("rgb", colour))
    mosaic = np.zeros((8, 8), dtype=dtype)
    for i, channel in enumerate(pattern):
        mosaic[i // 2::2, i % 2::2] = value[channel]
    return mosaic


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_demosaics_to_the_scene_colour(pattern):
    colour = (200, 90, 30)
    out = image_to_rgb(image_msg(bayer_mosaic(pattern, colour), f"bayer_{pattern}8"))
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to(colour, (4, 4, 3)))
    wide = bayer_mosaic(pattern, (255 * 257, 100 * 257, 0), np.uint16)
    out16 = image_to_rgb(image_msg(wide, f"bayer_{pattern}16", bigendian=True))
    np.testing.assert_array_equal(out16[2:-2, 2:-2], np.broadcast_to((255, 100, 0), (4, 4, 3)))


def test_reads_a_rosbags_message_after_cdr():
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    rgb = rgb_full_range()
    fields = rgb_to_image_fields(rgb, "rgb8")
    msg = types["sensor_msgs/msg/Image"](
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam"),
        **fields._asdict())
    raw = store.serialize_cdr(msg, msg.__msgtype__)
    np.testing.assert_array_equal(image_to_rgb(store.deserialize_cdr(raw, msg.__msgtype__)), rgb)


def test_output_does_not_alias_the_message():
    data = bytearray(rgb_full_range().tobytes())
    out = image_to_rgb(SimpleNamespace(height=H, width=W, encoding="rgb8", is_bigendian=0,
                                       step=3 * W, data=data))
    out[:] = 0
    assert any(data)


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(encoding="hsv8"), ["hsv8"]),
        (dict(encoding=""), ["''"]),
        (dict(data=bytes(3 * W * H - 1)), ["truncated", "rgb8"]),
        (dict(step=3 * W - 1), ["step", "rgb8"]),
        (dict(height=0), ["empty", "rgb8"]),
        (dict(width=0), ["empty", "rgb8"]),
    ],
)
def test_bad_images_raise_unsupported_image(change, words):
    msg = SimpleNamespace(height=H, width=W, encoding="rgb8", is_bigendian=0, step=3 * W,
                          data=bytes(3 * W * H))
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(UnsupportedImage) as error:
        image_to_rgb(msg)
    assert isinstance(error.value, ValueError)
    for word in words:
        assert word in str(error.value)


def test_odd_width_yuv_is_rejected():
    msg = image_msg(np.zeros((2, 3, 2), np.uint8), "uyvy")
    with pytest.raises(UnsupportedImage, match="uyvy"):
        image_to_rgb(msg)


def compressed(fmt: str, ext: str, pixels: np.ndarray) -> SimpleNamespace:
    ok, encoded = cv2.imencode(ext, pixels)
    assert ok
    return SimpleNamespace(format=fmt, data=array.array("B", encoded.tobytes()))


def test_png_round_trip_is_exact():
    rgb = rgb_full_range()
    out = compressed_to_rgb(compressed("rgb8; png compressed bgr8", ".png", rgb[:, :, ::-1]))
    np.testing.assert_array_equal(out, rgb)
    gray = rgb[:, :, 2]
    np.testing.assert_array_equal(compressed_to_rgb(compressed("png", ".png", gray)),
                                  np.repeat(gray[:, :, None], 3, axis=2))
    wide = gray.astype(np.uint16) * 257
    np.testing.assert_array_equal(
        compressed_to_rgb(compressed("16UC1; png compressed mono16", ".png", wide)),
        np.repeat(gray[:, :, None], 3, axis=2))


def test_format_names_the_channel_order():
    rgb = rgb_full_range()
    np.testing.assert_array_equal(
        compressed_to_rgb(compressed("rgb8; png compressed rgb8", ".png", rgb)), rgb)
    bgra = with_alpha(rgb[:, :, ::-1])
    np.testing.assert_array_equal(
        compressed_to_rgb(compressed("rgba8; png compressed bgra8", ".png", bgra)), rgb)


def test_jpeg_keeps_colours():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :16] = (220, 30, 30)
    rgb[:, 16:32] = (30, 220, 30)
    rgb[:, 32:] = (30, 30, 220)
    out = compressed_to_rgb(compressed("jpeg", ".jpg", rgb[:, :, ::-1]))
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb).mean() < 4


@pytest.mark.parametrize("data", [b"", b"\xff\xd8 definitely not a jpeg"])
def test_undecodable_compressed_raises(data):
    with pytest.raises(UnsupportedImage, match="jpeg"):
        compressed_to_rgb(SimpleNamespace(format="rgb8; jpeg compressed bgr8", data=data))


def test_compressed_depth_is_refused_by_name():
    msg = compressed("16UC1; compressedDepth png", ".png", np.zeros((4, 4), np.uint16))
    with pytest.raises(UnsupportedImage, match="compressedDepth"):
        compressed_to_rgb(msg)


def test_output_fields_describe_their_bytes():
    rgb = rgb_full_range()
    fields = rgb_to_image_fields(rgb, "rgb8")
    assert (fields.height, fields.width, fields.step, fields.is_bigendian) == (H, W, 3 * W, 0)
    np.testing.assert_array_equal(image_to_rgb(SimpleNamespace(**fields._asdict())), rgb)

    mono16 = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 1000
    fields = rgb_to_image_fields(mono16, "mono16")
    assert fields.step == 2 * W
    np.testing.assert_array_equal(np.frombuffer(fields.data.tobytes(), "<u2").reshape(H, W), mono16)

    depth = RNG.random((H, W), dtype=np.float32)
    fields = rgb_to_image_fields(depth, "32FC1")
    assert (fields.encoding, fields.step) == ("32FC1", 4 * W)
    np.testing.assert_array_equal(np.frombuffer(fields.data.tobytes(), "<f4").reshape(H, W), depth)

    fields = rgb_to_image_fields(rgb[:, :, 0], "mono8")
    assert fields.step == W and fields.data.tobytes() == rgb[:, :, 0].tobytes()


@pytest.mark.parametrize(
    "pixels, encoding",
    [
        (np.zeros((H, W), np.int32), "mono8"),
        (np.zeros((H, W), np.uint8), "mono16"),
        (np.zeros((H, W), np.float64), "32FC1"),
        (np.zeros((H, W, 3), np.uint8), "mono8"),
        (np.zeros((H, W), np.uint8), "rgb8"),
        (np.zeros(W, np.uint8), "mono8"),
    ],
)
def test_output_fields_refuse_mismatched_arrays(pixels, encoding):
    with pytest.raises(ValueError, match=encoding):
        rgb_to_image_fields(pixels, encoding)


def test_output_fields_refuse_unknown_encoding():
    with pytest.raises(UnsupportedImage, match="bgr8"):
        rgb_to_image_fields(np.zeros((H, W, 3), np.uint8), "bgr8")
