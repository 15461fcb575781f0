"""activesam bench --video: the temporal policies on a video file; the
report's structure and internal consistency on a few small frames. No timed
assertions: speed is what the benchmark measures."""

from __future__ import annotations

import gzip
import json

import cv2
import numpy as np
import pytest

from activesam_ros.benchmark.video import REFERENCE, VideoError, read_video, video_table
from activesam_ros.cli import main

from conftest import load_photo

POLICIES = ("exact", "fast", "reuse", "propagation")


def write_video(path, frames: int = 8) -> None:
    """A short pan over a real photograph, as an MJPG AVI."""
    photo = load_photo("coffee.png", 200)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 72))
    for i in range(frames):
        writer.write(np.ascontiguousarray(photo[10:82, 3 * i:3 * i + 96, ::-1]))
    writer.release()


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "pan.avi"
    write_video(path)
    return path


def test_videos_are_read_scaled_and_gunzipped(video_file, tmp_path):
    frames, fps = read_video(video_file, 5, 48)
    assert len(frames) == 5 and fps == pytest.approx(10.0) and frames[0].shape == (36, 48, 3)
    packed = tmp_path / "pan.avi.gz"
    packed.write_bytes(gzip.compress(video_file.read_bytes()))
    again, _ = read_video(packed, 5, 48)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    (tmp_path / "not.avi").write_bytes(b"nothing")
    with pytest.raises(VideoError, match="cannot open|fewer than two"):
        read_video(tmp_path / "not.avi", 5, 48)


@pytest.mark.slow
def test_bench_video_report_is_consistent(video_file, tmp_path, capsys, monkeypatch, tiny_model):
    monkeypatch.setattr("activesam_ros.commands.bench.load_model_from_args", lambda args: tiny_model)
    out = tmp_path / "video.json"
    code = main(["bench", "--model", "tiny", "--json", str(out), "--video", str(video_file), "--video-frames", "6",
                 "--video-side", "96", "--video-vocab", "voc21", "--video-vocab", "cityscapes", "--model-every", "3",
                 "--refresh-interval", "3"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["random_weights"] and report["frames"] == 6 and report["model_every"] == 3
    for name, vocab in report["vocabularies"].items():
        rows = vocab["policies"]
        assert tuple(rows) == POLICIES
        assert rows[REFERENCE]["agreement_mean"] == 1.0 and rows[REFERENCE]["speedup_vs_exact"] == 1.0
        assert 0 <= vocab["model_consecutive_agreement_worst"] <= vocab["model_consecutive_agreement_mean"] <= 1
        for policy, row in rows.items():
            assert row["frames"] == 6 and len(row["agreement_per_frame"]) == 6
            assert row["agreement_worst"] == min(row["agreement_per_frame"]) or abs(
                row["agreement_worst"] - min(row["agreement_per_frame"])) < 1e-4
            assert row["speedup_vs_exact"] == pytest.approx(row["published_fps"] / rows[REFERENCE]["published_fps"])
        assert rows["exact"]["model_frames"] == rows["fast"]["model_frames"] == rows["reuse"]["model_frames"] == 6
        assert rows["exact"]["refresh_frames"] == 6 and rows["reuse"]["refresh_frames"] == 2
        assert rows["propagation"]["model_frames"] < 6  # the frames between were carried forward
    assert "| voc21 (21) | reuse |" in video_table(report) and "| cityscapes (19) |" in capsys.readouterr().err


def test_bench_video_refuses_a_missing_file(tmp_path, capsys):
    assert main(["bench", "--model", "tiny", "--json", str(tmp_path / "v.json"), "--video",
                 str(tmp_path / "none.avi")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_a_short_clip_is_bounced_without_a_cut():
    from activesam_ros.benchmark.device_rates import bounced

    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(4)]
    assert [int(f[0, 0, 0]) for f in bounced(frames, 11)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert [int(f[0, 0, 0]) for f in bounced(frames, 3)] == [0, 1, 2]


def test_exact_agreement_with_itself_over_time():
    """Frame i's labels differ from frame j's on |i - j| of 10 pixels: exact
    agrees with itself 90 % a frame later, 80 % two, 60 % four; labels that
    old score at most that."""
    from activesam_ros.benchmark.device_rates import Reference

    labels = {i: (np.arange(10) < i).astype(np.int32) for i in range(6)}
    lags, values = Reference(2, labels).over_time
    assert lags == [0, 1, 2, 4] and np.allclose(values, [1.0, 0.9, 0.8, 0.6])
    assert Reference(2, labels).consecutive() == pytest.approx([0.9, 0.9, 0.9])


@pytest.mark.slow
def test_bench_device_rates_report_is_consistent(video_file, tmp_path, capsys, monkeypatch, tiny_model):
    monkeypatch.setattr("activesam_ros.commands.bench.load_model_from_args", lambda args: tiny_model)
    out = tmp_path / "rates.json"
    code = main(["bench", "--model", "tiny", "--json", str(out), "--video", str(video_file), "--video-frames", "20",
                 "--video-bounce", "--video-side", "96", "--video-vocab", "voc21", "--device-rate", "2",
                 "--device-rate", "5", "--reference-every", "4"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["schema"] == "activesam-bench-device-rates/1" and report["random_weights"]
    assert report["frames"] == 20 and report["frames_read"] == 8 and report["bounced"]
    vocab = report["vocabularies"]["voc21"]
    assert 0 <= vocab["exact_consecutive_agreement_worst"] <= vocab["exact_consecutive_agreement_mean"] <= 1
    slow, fast = vocab["rates"]
    assert (slow["rate"], fast["rate"]) == (2, 5) and slow["model_frames"] < fast["model_frames"]
    for row in (slow, fast):
        labelled = row["model_frames"] + row["propagated_frames"]
        assert row["labelled_share"] == pytest.approx(labelled / 20)
        assert 0 < row["agreement_frames"] <= 5 and 0 <= row["agreement_worst"] <= row["agreement_mean"] <= 1
        assert sum(row["refresh_reasons"].values()) == row["model_frames"]
        assert row["reuse_share"] == pytest.approx(row["refresh_reasons"].get("reuse", 0) / row["model_frames"])
        assert row["label_age_max"] >= row["label_age_mean"] >= 1 / row["rate"] - 1e-9  # a period at least
        assert 0 <= row["exact_agreement_over_label_age"] <= 1
    assert vocab["exact_agreement_over_time"]["0.00"] == 1.0
    assert vocab["exact_agreement_over_time"]["0.10"] == vocab["exact_consecutive_agreement_mean"]
    assert "| voc21 (21) | 2 |" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [(["--device-rate", "0"], "--device-rate"),
                                            (["--device-rate", "nan"], "--device-rate"),
                                            (["--device-rate", "1", "--reference-every", "0"], "--reference-every"),
                                            (["--device-rate", "1", "--precision"], "give one of them")])
def test_bench_device_rates_refuses_bad_flags(video_file, tmp_path, capsys, flags, message):
    assert main(["bench", "--model", "tiny", "--json", str(tmp_path / "r.json"), "--video", str(video_file),
                 *flags]) == 2
    assert message in capsys.readouterr().err
