"""One decoder for every encoded image (files, CompressedImage messages):
only formats whose size is read from the header, the size checked before
a pixel is decoded; and inflation bounded before it starts."""

from __future__ import annotations

import gzip
import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from activesam_ros.engine.limits import MAX_IMAGE_BYTES, ImageError
from activesam_ros.files import images
from activesam_ros.files.inflate import InflateError, inflate_file, inflate_zstd, zstd

RGB = (np.arange(20 * 30 * 3) % 251).astype(np.uint8).reshape(20, 30, 3)


def encoded(ext: str, pixels: np.ndarray = RGB) -> bytes:
    ok, data = cv2.imencode(ext, pixels)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("ext, exact", [(".png", True), (".bmp", True), (".ppm", True), (".webp", False),
                                        (".jpg", False)])
def test_the_accepted_formats_decode_to_rgb(ext, exact):
    decoded = images.decode(encoded(ext, RGB[:, :, ::-1]), f"x{ext}")
    assert decoded.rgb.shape == RGB.shape and decoded.rgb.dtype == np.uint8
    assert decoded.header.format in images.FORMATS and decoded.header.orientation == 1
    if exact:
        assert np.array_equal(decoded.rgb, RGB)
    else:
        assert np.abs(decoded.rgb.astype(int) - RGB).mean() < 12


@pytest.mark.parametrize("ext", [".hdr", ".tif", ".exr", ".pfm"])
def test_formats_whose_header_is_not_read_are_refused_before_decoding(ext):
    """A 4 MB Radiance HDR of 8192 x 8192 was decoded in full (+920 MB)
    before the pixel limit refused it; such formats are refused by name now."""
    try:
        data = encoded(ext, RGB.astype(np.float32))
    except cv2.error:
        pytest.skip(f"this OpenCV cannot write {ext}")
    with pytest.raises(ImageError, match=r"not an image of an accepted format \(PNG, JPEG, WebP, BMP, PNM"):
        images.decode(data, f"x{ext}")


def test_a_huge_radiance_header_is_refused_without_allocating(tmp_path):
    header = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8192 +X 8192\n"
    with pytest.raises(ImageError, match="accepted format"):
        images.decode(header + b"\0" * 1024, "big.hdr")


def test_a_header_that_lies_about_the_size_is_refused():
    png = bytearray(encoded(".png"))
    width_at = 16  # IHDR: width, height after the signature and the chunk header
    struct.pack_into(">I", png, width_at, 31)  # the CRC no longer matches: Pillow or OpenCV says so
    with pytest.raises(ImageError):
        images.decode(bytes(png), "liar.png")


def test_sixteen_bit_images_are_stretched_and_exif_orientation_is_reported_not_applied():
    twelve = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 6)  # 0..3594: a 12-bit camera
    rgb = images.decode_rgb(encoded(".png", twelve), "deep.png")
    assert rgb.min() == 0 and rgb.max() == 255 and np.array_equal(rgb[..., 0], rgb[..., 2])
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION] = 6
    Image.fromarray(RGB).save(buffer, format="JPEG", exif=exif)
    decoded = images.decode(buffer.getvalue(), "phone.jpg")
    assert decoded.header.orientation == 6 and decoded.rgb.shape == RGB.shape  # stored pixels, not rotated


def test_oversized_and_damaged_data_are_one_line():
    with pytest.raises(ImageError, match=f"huge has {MAX_IMAGE_BYTES + 1} bytes; the limit is {MAX_IMAGE_BYTES}"):
        images.decode(np.zeros(MAX_IMAGE_BYTES + 1, np.uint8), "huge")  # zero pages: never touched
    with pytest.raises(ImageError, match="damaged PNG header"):
        images.decode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "broken.png")


# -- inflation ------------------------------------------------------------------------------------------

def test_zstd_declared_and_undeclared_sizes_are_bounded():
    declared = zstd.compress(bytes(10_000))
    assert inflate_zstd(declared, 10_000, "m") == bytes(10_000)
    with pytest.raises(InflateError, match="would inflate to 10000 bytes; the limit is 9999"):
        inflate_zstd(declared, 9_999, "m")
    streamed = zstd.ZstdCompressor()
    undeclared = streamed.compress(bytes(50_000)) + streamed.flush()
    assert zstd.get_frame_info(undeclared).decompressed_size is None
    with pytest.raises(InflateError, match="inflates to more than 1000 bytes"):
        inflate_zstd(undeclared, 1_000, "m")
    two = zstd.compress(b"ab") + zstd.compress(b"cd")
    assert inflate_zstd(two, 4, "m") == b"abcd"
    with pytest.raises(InflateError, match="truncated"):
        inflate_zstd(zstd.compress(bytes(range(256)) * 50)[:-5], 1 << 20, "m")
    with pytest.raises(InflateError, match="damaged zstd data"):
        inflate_zstd(b"not zstd at all", 1 << 20, "m")


def test_a_gzip_file_inflates_to_its_bound_and_a_damaged_one_is_one_line(tmp_path):
    good = tmp_path / "v.avi.gz"
    good.write_bytes(gzip.compress(bytes(5_000)))
    assert inflate_file(good, tmp_path / "v.avi", "gzip", 5_000, str(good)) == 5_000
    with pytest.raises(InflateError, match="inflates to more than 4999 bytes"):
        inflate_file(good, tmp_path / "w.avi", "gzip", 4_999, str(good))
    assert not (tmp_path / "w.avi").exists()  # nothing half-inflated left
    damaged = tmp_path / "d.avi.gz"
    damaged.write_bytes(gzip.compress(bytes(5_000))[:-12])
    with pytest.raises(InflateError, match=f"{damaged}: cannot inflate it as gzip"):
        inflate_file(damaged, tmp_path / "d.avi", "gzip", 1 << 20, str(damaged))
