import gc
import warnings
from fractions import Fraction

import av
import numpy as np
import pytest
from helpers_media import audio_seconds, make_clip, pattern
from PIL import Image

from dagan.errors import DaganError
from dagan.io.video import (
    FrameDirWriter,
    GifWriter,
    VideoDecodeWarning,
    VideoWriter,
    apply_display_matrix,
    display_orientation,
    iter_frames,
    iter_frames_with_preview,
    open_writer,
    probe_video,
)


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def _frames(n, w=64, h=48):
    return [pattern(i, w, h) for i in range(n)]


def _count_video_frames(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# ---------------------------------------------------------------- probing and reading


def test_probe_and_read_plain_clip(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", num_frames=12, size=(64, 48), fps=25)
    info = probe_video(clip)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == 25.0 and info.frame_rate == Fraction(25)
    assert info.num_frames == 12 and not info.frames_estimated
    assert info.rotation == 0 and not info.mirrored
    assert info.has_audio and info.audio_codec == "aac"
    assert info.duration == pytest.approx(12 / 25)
    frames = list(iter_frames(clip))
    assert len(frames) == 12
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert np.abs(frames[5].astype(int) - pattern(5, 64, 48)).mean() < 3


def test_ntsc_rate_is_exact(tmp_path):
    clip = make_clip(tmp_path / "ntsc.mp4", num_frames=6, fps=Fraction(30000, 1001), audio=None)
    info = probe_video(clip)
    assert info.frame_rate == Fraction(30000, 1001)
    assert info.fps == pytest.approx(29.97, abs=1e-3)
    assert not info.has_audio and info.audio_codec is None


def test_mkv_without_frame_count_is_estimated(tmp_path):
    clip = make_clip(tmp_path / "c.mkv", num_frames=10, fps=25, audio=None)
    info = probe_video(clip)
    assert info.frames_estimated
    assert info.num_frames == 10
    assert len(list(iter_frames(clip))) == 10


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotated_clip_comes_out_upright(tmp_path, degrees):
    """PyAV's display rotation is counter-clockwise; upright = the stored frame turned that way."""
    clip = make_clip(tmp_path / "r.mp4", num_frames=3, size=(64, 48), rotation=degrees, audio=None)
    info = probe_video(clip)
    assert info.rotation == (-degrees) % 360  # reported clockwise, like the legacy `rotate` tag
    expected = np.rot90(pattern(0, 64, 48), k=degrees // 90)
    assert (info.height, info.width) == expected.shape[:2]
    first = next(iter_frames(clip))
    assert first.shape == expected.shape
    assert np.abs(first.astype(int) - expected).mean() < 3
    stored = next(iter_frames(clip, rotate=False))
    assert stored.shape == (48, 64, 3)


def test_frames_with_preview_are_reduced_from_the_same_picture(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", num_frames=3, size=(160, 96), audio=None)
    pairs = list(iter_frames_with_preview(clip, 80))
    assert len(pairs) == 3
    for (full, small), reference in zip(pairs, iter_frames(clip), strict=True):
        np.testing.assert_array_equal(full, reference)
        assert small.shape == (48, 80, 3) and small.dtype == np.uint8
        resized = np.asarray(Image.fromarray(reference).resize((80, 48), Image.Resampling.BILINEAR))
        assert np.abs(small.astype(int) - resized).mean() < 4
    full, small = next(iter_frames_with_preview(clip, 160))  # small enough already: one array
    assert small is full
    with pytest.raises(ValueError, match="max_side"):
        iter_frames_with_preview(clip, 4)


def test_gray_previews_are_the_reduced_luma(tmp_path):
    clip = make_clip(tmp_path / "g.mp4", num_frames=2, size=(160, 96), rotation=90, audio=None)
    for (full, small), (_, rgb_small) in zip(iter_frames_with_preview(clip, 80, gray=True),
                                             iter_frames_with_preview(clip, 80), strict=True):
        assert full.shape == (160, 96, 3) and small.shape == (80, 48) and small.dtype == np.uint8  # upright
        luma = rgb_small.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        assert np.abs(small - luma).mean() < 4
    full, small = next(iter_frames_with_preview(clip, 400, gray=True))  # not reduced: still the luma
    assert small.shape == full.shape[:2]


def test_frames_with_preview_are_both_upright(tmp_path):
    clip = make_clip(tmp_path / "r.mp4", num_frames=2, size=(64, 48), rotation=90, audio=None)
    full, small = next(iter_frames_with_preview(clip, 32))
    expected = np.rot90(pattern(0, 64, 48), k=1)
    assert full.shape == expected.shape and small.shape == (32, 24, 3)
    assert np.abs(full.astype(int) - expected).mean() < 3
    resized = np.asarray(Image.fromarray(full).resize((24, 32), Image.Resampling.BILINEAR))
    assert np.abs(small.astype(int) - resized).mean() < 8


def _side_data_cycles() -> int:
    """How many frames are kept alive only by their side-data container (left for the garbage collector)."""
    return sum(type(o).__name__ == "SideDataContainer" for o in gc.get_objects())


def test_reading_the_display_matrix_leaves_no_cycle_for_later(tmp_path):
    """The frame whose side data was read is freed at once, not by a later (fork-unsafe) collection."""
    clip = make_clip(tmp_path / "r.mp4", num_frames=4, size=(64, 48), rotation=90, audio=None)
    gc.collect()
    gc.disable()  # only the decoder's own, deterministic collection may free it
    try:
        info = probe_video(clip)
        assert info.rotation == 270 and _side_data_cycles() == 0
        for frames in (iter_frames(clip), iter_frames_with_preview(clip, 32, gray=True),
                       iter_frames_with_preview(clip, 32, gray=True, planar=True)):
            next(frames)
            assert _side_data_cycles() == 0
            frames.close()
    finally:
        gc.enable()


def _matrix(a, b, c, d):
    one = 1 << 16
    return [a * one, b * one, 0, c * one, d * one, 0, 0, 0, 1 << 30]


@pytest.mark.parametrize(
    ("abcd", "expected"),
    [
        ((1, 0, 0, 1), lambda m: m),
        ((0, -1, 1, 0), lambda m: np.rot90(m, 1)),  # 90° counter-clockwise
        ((0, 1, -1, 0), lambda m: np.rot90(m, -1)),  # 90° clockwise (portrait phone clip)
        ((-1, 0, 0, -1), lambda m: np.rot90(m, 2)),
        ((-1, 0, 0, 1), lambda m: m[:, ::-1]),  # mirror
        ((1, 0, 0, -1), lambda m: m[::-1]),
        ((0, 1, 1, 0), lambda m: m.swapaxes(0, 1)),  # transpose
        ((0, -1, -1, 0), lambda m: np.rot90(m, 2).swapaxes(0, 1)),  # anti-transpose
    ],
)
def test_display_matrix_all_eight_orientations(abcd, expected):
    """Display point (x', y') = (a·x + c·y, b·x + d·y) in y-down image coordinates."""
    img = np.arange(3 * 5 * 2).reshape(3, 5, 2)
    # Check the formula pointwise: the pixel right of the origin moves where (a, b) says, the pixel
    # below it where (c, d) says, with the three operations applied by hand in their stated order.
    a, b, c, d = abcd
    transpose, flip_x, flip_y = display_orientation(_matrix(*abcd))
    assert transpose == (a == 0)
    marks = np.zeros((3, 5), int)
    marks[0, 0], marks[0, 1], marks[1, 0] = 1, 2, 3  # origin, its right and its lower neighbour
    shown = marks.swapaxes(0, 1) if transpose else marks
    shown = shown[:, ::-1] if flip_x else shown
    shown = shown[::-1] if flip_y else shown
    (y0, x0), (y1, x1), (y2, x2) = (np.argwhere(shown == m)[0].tolist() for m in (1, 2, 3))
    assert (x1 - x0, y1 - y0) == (a, b), f"flip_x={flip_x}, flip_y={flip_y}: x̂ goes to {(x1 - x0, y1 - y0)}"
    assert (x2 - x0, y2 - y0) == (c, d), f"flip_x={flip_x}, flip_y={flip_y}: ŷ goes to {(x2 - x0, y2 - y0)}"
    assert np.array_equal(apply_display_matrix(img, _matrix(*abcd)), expected(img))


def test_display_matrix_none_is_identity():
    img = np.zeros((2, 3, 3))
    assert apply_display_matrix(img, None) is img


def test_iter_frames_validates_eagerly(tmp_path):
    with pytest.raises(DaganError, match="not found"):
        iter_frames(tmp_path / "missing.mp4")  # raised on the call, not on first next()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("zero.mp4", b"", "empty"),
        ("text.mp4", b"this is not a video, just some text\n" * 20, "not a readable video"),
    ],
)
def test_unreadable_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    for fn in (probe_video, iter_frames):
        with pytest.raises(DaganError, match=f"{message}.*{name}|{name}.*{message}"):
            fn(tmp_path / name)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DaganError, match="video not found.*nope.mp4"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(DaganError, match="directory"):
        probe_video(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    clip = make_clip(tmp_path / "a.m4a", video=False, audio_seconds=0.3)
    with pytest.raises(DaganError, match="no video stream.*a.m4a"):
        probe_video(clip)


def test_truncated_without_index_is_an_error(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", num_frames=20, audio=None)  # moov at the end
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(DaganError, match="cut.mp4"):
        iter_frames(tmp_path / "cut.mp4")


def test_truncated_faststart_keeps_decoded_frames_with_warning(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", num_frames=30, size=(96, 64), audio=None, faststart=True)
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(VideoDecodeWarning, match=r"cut.mp4.*30 frames.*only \d+"):
        frames = list(iter_frames(tmp_path / "cut.mp4"))
    assert 0 < len(frames) < 30


def test_decoder_error_mid_stream_keeps_earlier_frames(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "c.mp4", num_frames=8, audio=None)
    real_open = av.open

    class BreaksAfterThree:
        """Decoding the packet that would give the fourth frame raises (as a corrupt packet does)."""

        def __init__(self, container):
            self._c, self.decoded = container, 0

        def __getattr__(self, name):
            return getattr(self._c, name)

        def demux(self, *args, **kwargs):
            for packet in self._c.demux(*args, **kwargs):
                yield Packet(packet, self)

    class Packet:
        def __init__(self, packet, owner):
            self._p, self._owner = packet, owner

        def decode(self):
            frames = self._p.decode()
            if self._owner.decoded + len(frames) > 3:
                raise av.InvalidDataError(22, "Invalid data found when processing input")
            self._owner.decoded += len(frames)
            return frames

    monkeypatch.setattr(av, "open", lambda *a, **k: BreaksAfterThree(real_open(*a, **k)))
    with pytest.warns(VideoDecodeWarning, match=r"c.mp4: decoding failed at frame 3 \(Invalid data"):
        frames = list(iter_frames(clip))
    assert len(frames) == 3


def test_truncated_before_first_frame_is_an_error(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", num_frames=30, size=(96, 64), audio=None, faststart=True)
    data = clip.read_bytes()
    header = data.index(b"mdat") + 200  # index intact, almost no frame data
    (tmp_path / "cut.mp4").write_bytes(data[:header])
    with pytest.raises(DaganError, match="frame 0 of .*cut.mp4"):
        list(iter_frames(tmp_path / "cut.mp4"))


# ---------------------------------------------------------------- writing


def test_round_trip_frames_fps_and_copied_audio(tmp_path):
    src = make_clip(tmp_path / "src.mp4", num_frames=40, fps=25, audio_seconds=2.0)  # audio longer
    out = tmp_path / "out.mp4"
    rate = Fraction(30000, 1001)
    with VideoWriter(out, 29.97, (64, 48), audio_from=src) as writer:
        assert writer.writes_audio
        assert not out.exists()  # only the temp file exists while writing
        for frame in _frames(15):
            writer.write(frame)
    info = probe_video(out)
    assert info.num_frames == 15 == _count_video_frames(out)
    assert info.frame_rate == rate
    assert info.has_audio and info.audio_codec == "aac"
    video_seconds = float(15 / rate)
    assert video_seconds - 1e-3 <= audio_seconds(out) <= video_seconds + 1024 / 16000 + 1e-3  # copy: packet granularity
    assert _leftovers(tmp_path) == []
    frames = list(iter_frames(out))
    assert np.abs(frames[7].astype(int) - pattern(7, 64, 48)).mean() < 3


def test_non_aac_audio_is_reencoded_and_trimmed_exactly(tmp_path):
    src = make_clip(tmp_path / "src.mkv", num_frames=25, audio="pcm_s16le", audio_seconds=1.5)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 25, (64, 48), audio_from=src) as writer:
        for frame in _frames(10):
            writer.write(frame)
    info = probe_video(out)
    assert info.audio_codec == "aac" and info.num_frames == 10
    assert audio_seconds(out) == pytest.approx(0.4, abs=1e-3)
    # The tone survives re-encoding: decoded audio has the source's loudness (sine at 0.3 → RMS 0.21).
    with av.open(str(out)) as c:
        samples = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    assert 0.15 < np.sqrt(np.mean(samples[2048:5000] ** 2)) < 0.25


def test_audio_source_without_audio_gives_silent_output(tmp_path):
    src = make_clip(tmp_path / "silent.mp4", num_frames=5, audio=None)
    with VideoWriter(tmp_path / "out.mp4", 25, (64, 48), audio_from=src) as writer:
        assert not writer.writes_audio
        for frame in _frames(5):
            writer.write(frame)
    assert not probe_video(tmp_path / "out.mp4").has_audio


@pytest.mark.parametrize(("size", "one_thread"), [((64, 48), True), ((320, 240), False)])
def test_small_frames_are_encoded_by_one_x264_thread(tmp_path, size, one_thread):
    """x264's threads cost CPU the networks need without speeding up frames this small (writers.py)."""
    with VideoWriter(tmp_path / "t.mp4", 25, size) as writer:
        assert (writer._video.codec_context.options.get("threads") == "1") is one_thread
        writer.write(np.zeros((size[1], size[0], 3), np.uint8))
    assert probe_video(tmp_path / "t.mp4").num_frames == 1


def test_float_frames_are_accepted(tmp_path):
    with VideoWriter(tmp_path / "f.mp4", 10, (64, 48)) as writer:
        for frame in _frames(3):
            writer.write(frame.astype(np.float32) / 255)
    assert probe_video(tmp_path / "f.mp4").num_frames == 3
    # the pixels survive: float [0, 1] is scaled to 0…255 (a writer making black frames fails here)
    for got, want in zip(iter_frames(tmp_path / "f.mp4"), _frames(3), strict=True):
        error = float(np.abs(got.astype(int) - want).mean())
        assert error < 3, f"decoded frame differs from the written one by {error:.1f} grey levels on average"


def test_odd_size_and_bad_frames_are_programming_errors(tmp_path):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", 25, (63, 48))
    assert list(tmp_path.iterdir()) == []
    with VideoWriter(tmp_path / "w.mp4", 25, (64, 48)) as writer:
        with pytest.raises(ValueError, match="shape"):
            writer.write(np.zeros((48, 63, 3), np.uint8))
        writer.write(_frames(1)[0])


@pytest.mark.parametrize("kind", ["missing_parent", "parent_is_file"])
def test_unwritable_output_fails_before_any_work(tmp_path, kind):
    target = tmp_path / "no_dir" / "out.mp4"
    if kind == "parent_is_file":
        (tmp_path / "no_dir").write_text("x")
    for suffix in (".mp4", ".gif", ""):
        with pytest.raises(DaganError, match="cannot write"):
            open_writer(target.with_suffix(suffix), 25, (64, 48))


def test_exception_in_block_keeps_existing_output(tmp_path):
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 25, (64, 48)) as writer:
        for frame in _frames(4):
            writer.write(frame)
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, 25, (64, 48), audio_from=make_clip(tmp_path / "s.mp4")) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError("boom")
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_zero_frames_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(DaganError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4", 25, (64, 48)):
            pass
    assert list(tmp_path.iterdir()) == []


def test_bad_audio_source(tmp_path):
    with pytest.raises(DaganError, match="audio source not found"):
        VideoWriter(tmp_path / "o.mp4", 25, (64, 48), audio_from=tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_text("junk")
    with pytest.raises(DaganError, match="cannot read audio.*junk.mp4"):
        VideoWriter(tmp_path / "o.mp4", 25, (64, 48), audio_from=tmp_path / "junk.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


def test_gif_output(tmp_path):
    frames = _frames(6) + [_frames(6)[-1]] * 3  # identical frames at the end must be kept
    with open_writer(tmp_path / "a.gif", 30, (64, 48), audio_from=make_clip(tmp_path / "s.mp4")) as writer:
        assert isinstance(writer, GifWriter) and not writer.writes_audio
        for frame in frames:
            writer.write(frame)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 9 and im.size == (64, 48)
        durations = []
        for i, expected in enumerate(frames):
            im.seek(i)
            durations.append(im.info["duration"])
            assert np.abs(np.asarray(im.convert("RGB")).astype(int) - expected).mean() < 3, i
    assert sum(durations) == 300  # 9 frames at 30 fps, despite GIF's 10 ms ticks
    assert set(durations) <= {30, 40}


def test_gif_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with open_writer(tmp_path / "a.gif", 10, (64, 48)) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_png_directory_output(tmp_path):
    target = tmp_path / "frames"
    with open_writer(target, 25, (64, 48), audio_from=make_clip(tmp_path / "s.mp4")) as writer:
        assert isinstance(writer, FrameDirWriter) and not writer.writes_audio
        for frame in _frames(3):
            writer.write(frame)
        assert not target.exists()
    assert sorted(p.name for p in target.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert np.array_equal(np.asarray(Image.open(target / "000002.png")), pattern(2, 64, 48))
    with pytest.raises(DaganError, match="not empty"):
        open_writer(target, 25, (64, 48))
    (tmp_path / "empty").mkdir()
    with open_writer(tmp_path / "empty", 25, (64, 48)) as writer:  # an existing empty dir is fine
        writer.write(_frames(1)[0])
    assert (tmp_path / "empty" / "000000.png").is_file()


def test_png_directory_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with open_writer(tmp_path / "frames", 25, (64, 48)) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_open_writer_dispatch_and_unknown_suffix(tmp_path):
    with pytest.raises(DaganError, match="unsupported output type '.avi'"):
        open_writer(tmp_path / "a.avi", 25, (64, 48))
    writer = open_writer(tmp_path / "a.MOV", 25, (64, 48))
    assert isinstance(writer, VideoWriter)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_no_warnings_on_clean_files(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", num_frames=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(iter_frames(clip))) == 5
