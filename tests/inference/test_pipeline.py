"""`dagan animate` end to end with a tiny model: outputs, motion modes, and every bad input."""

import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import dagan
from dagan.cli.main import main
from dagan.config import get_preset
from dagan.geometry import Keypoints
from dagan.inference.pipeline import AnimateOptions, AnimationPipeline, autocast_context, resolve_device
from dagan.inference.profile import STAGES
from dagan.io import iter_frames, probe_video
from dagan.models import DaGAN
from helpers_media import audio_seconds, face_on_background, make_clip

ASSETS = Path(dagan.__file__).parent / "assets"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 frames at 30000/1001 fps with AAC audio (already-cropped content, used with --no-crop)."""
    return make_clip(tmp_path_factory.mktemp("clip") / "drive.mp4", num_frames=12, size=(64, 64),
                     fps=Fraction(30000, 1001))


def run(*args):
    return main(["animate", "--quiet", *map(str, args)])


def test_frames_fps_and_audio_preserved(tiny_dir, clip, tmp_path):
    out = tmp_path / "out.mp4"
    assert run("--model", tiny_dir, "--source", ASSETS / "sample_source.png", "--driving", clip, "--no-crop",
               "-o", out) == 0
    info = probe_video(out)
    assert info.num_frames == 12 and info.frame_rate == Fraction(30000, 1001)
    assert (info.width, info.height) == (64, 64)
    assert info.has_audio and abs(audio_seconds(out) - audio_seconds(clip)) < 0.05
    assert run("--model", tiny_dir, "--source", ASSETS / "sample_source.png", "--driving", clip, "--no-crop",
               "--no-audio", "-o", tmp_path / "silent.mp4") == 0
    assert not probe_video(tmp_path / "silent.mp4").has_audio


def test_bundled_samples_with_face_crop_and_paste_back(tiny_dir, tmp_path, capsys):
    out = tmp_path / "pasted.mp4"
    assert run("--model", tiny_dir, "--paste-back", "-o", out) == 0
    photo = Image.open(ASSETS / "sample_source.png")
    w, h = photo.size
    info = probe_video(out)
    assert (info.width, info.height) == (w - w % 2, h - h % 2)
    assert info.num_frames == probe_video(ASSETS / "sample_driving.mp4").num_frames
    assert "with the driving audio" in capsys.readouterr().out


def test_side_by_side_and_other_formats(tiny_dir, clip, tmp_path):
    src = ASSETS / "sample_source.png"
    assert run("--model", tiny_dir, "--source", src, "--driving", clip, "--no-crop", "--side-by-side",
               "-o", tmp_path / "sbs.mp4") == 0
    assert (probe_video(tmp_path / "sbs.mp4").width, probe_video(tmp_path / "sbs.mp4").height) == (320, 64)
    assert run("--model", tiny_dir, "--source", src, "--driving", clip, "--no-crop", "-o", tmp_path / "a.gif") == 0
    assert Image.open(tmp_path / "a.gif").n_frames == 12
    assert run("--model", tiny_dir, "--source", src, "--driving", clip, "--no-crop", "-o", tmp_path / "frames/") == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 12


def _normalised_keypoints(model_dir, clip, tmp_path, **options):
    """Run the pipeline and record the source and the normalised driving keypoints per frame."""
    pipe = AnimationPipeline(DaGAN.from_pretrained(model_dir), device="cpu", progress=False)
    seen = []
    model = pipe.runtime.model  # the runtime's inference form of the loaded model
    generate = model.generate

    def recording(state, kp, **kw):
        seen.append(kp)
        return generate(state, kp, **kw)

    model.generate = recording
    raw = []
    detect = model.detect_keypoints
    model.detect_keypoints = lambda *a, **kw: raw.append(detect(*a, **kw)) or raw[-1]
    pipe.run(ASSETS / "sample_source.png", clip, tmp_path / "o.mp4",
             AnimateOptions(crop=False, audio=False, batch_size=4, **options))
    source_kp = raw[0]  # the first detection is the source's (prepare_source)
    driving = Keypoints.cat(raw[1:] if options.get("best_frame") is None else raw[2:])
    return source_kp, Keypoints.cat(seen), driving


def test_relative_absolute_and_best_frame(tiny_dir, clip, tmp_path):
    src, rel, drv = _normalised_keypoints(tiny_dir, clip, tmp_path)
    assert rel.value.shape[0] == 12 and drv.value.shape[0] == 12
    # relative: the initial (first) driving frame maps exactly onto the source keypoints
    torch.testing.assert_close(rel.value[0], src.value[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(rel.jacobian[0], src.jacobian[0], atol=1e-5, rtol=0)
    assert not torch.allclose(rel.value[5], src.value[0], atol=1e-4)
    # absolute: the driving keypoints are used as they are
    _, absolute, drv_abs = _normalised_keypoints(tiny_dir, clip, tmp_path, relative=False)
    torch.testing.assert_close(absolute.value, drv_abs.value)
    # best frame N: frame N is the initial frame
    src_b, best, _ = _normalised_keypoints(tiny_dir, clip, tmp_path, best_frame=5)
    torch.testing.assert_close(best.value[5], src_b.value[0], atol=1e-6, rtol=0)
    assert not torch.allclose(best.value[0], src_b.value[0], atol=1e-4)


def test_best_frame_auto_on_bundled_samples(tiny_dir, tmp_path, capsys, monkeypatch):
    import dagan.inference.driving as pipeline  # where the best-frame search lives

    found = []  # landmarks of every crop the search looks at: the source's first, then each driving frame
    detect = pipeline.crop_landmarks
    monkeypatch.setattr(pipeline, "crop_landmarks", lambda crop: found.append(detect(crop)) or found[-1])
    assert run("--model", tiny_dir, "--best-frame", "auto", "--smooth-keypoints", "1", "-o", tmp_path / "b.mp4") == 0
    chosen = int(capsys.readouterr().out.split("best driving frame:")[1].split()[0])
    source, driving = found[0], found[1:]
    assert len(driving) == probe_video(ASSETS / "sample_driving.mp4").num_frames
    target = pipeline.normalized_landmarks(source)
    distance = [np.inf if lm is None else float(((pipeline.normalized_landmarks(lm) - target) ** 2).sum())
                for lm in driving]
    assert chosen == int(np.argmin(distance)), (chosen, int(np.argmin(distance)))
    assert chosen != 0 and min(distance) < distance[0]  # the search matters on this sample


def test_smooth_keypoints_lowers_jitter(tiny_dir, clip, tmp_path):
    """--smooth-keypoints (One-Euro): frame-to-frame change of the keypoints used, well below unsmoothed."""
    def jitter(kp):
        return float((kp.value[1:] - kp.value[:-1]).abs().mean())

    _, raw, _ = _normalised_keypoints(tiny_dir, clip, tmp_path)
    _, smooth, _ = _normalised_keypoints(tiny_dir, clip, tmp_path, smooth_keypoints=1.0)
    assert smooth.value.shape == raw.value.shape
    assert jitter(smooth) < 0.5 * jitter(raw), (jitter(smooth), jitter(raw))


def test_device_and_precision_choices():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(dagan.DaganError, match="fp16 is not supported on CPU"):
        autocast_context(torch.device("cpu"), "fp16")
    if not torch.cuda.is_available():
        with pytest.raises(dagan.DaganError, match="no CUDA device"):
            resolve_device("cuda")


def test_bf16_on_cpu_runs(tiny_dir, clip, tmp_path):
    pipe = AnimationPipeline(DaGAN.from_pretrained(tiny_dir), device="cpu", precision="bf16", progress=False)
    result = pipe.run(ASSETS / "sample_source.png", clip, tmp_path / "bf16/", AnimateOptions(crop=False))
    assert result.frames == 12
    # against fp32 on the same frames (PNG output: lossless): bf16's 8 mantissa bits allow a few
    # grey level; bound 0.006 mean, 0.02 max (measured 0.0027 and 0.0039, AVX2 too), not bit-identical
    pipe = AnimationPipeline(DaGAN.from_pretrained(tiny_dir), device="cpu", precision="fp32", progress=False)
    pipe.run(ASSETS / "sample_source.png", clip, tmp_path / "fp32/", AnimateOptions(crop=False))
    low, full = (np.stack([np.asarray(Image.open(p), np.float32) / 255 for p in sorted((tmp_path / d).glob("*.png"))])
                 for d in ("bf16", "fp32"))
    assert low.shape == full.shape == (12, 64, 64, 3)
    error = np.abs(low - full)
    assert 0 < error.mean() < 0.006 and error.max() < 0.02, (error.mean(), error.max())


# ---------------------------------------------------------------------------------------- bad input
def _blank_video(path, frames=6):
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    return path


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, clip):
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.png").write_text("not an image")
    Image.fromarray(np.full((80, 80, 3), 200, np.uint8)).save(d / "blank.png")
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    full = clip.read_bytes()
    (d / "truncated.mp4").write_bytes(full[: len(full) // 8])
    _blank_video(d / "noface.mp4")
    make_clip(d / "audio_only.mp4", video=False)
    (d / "model_empty").mkdir()
    return d


@pytest.mark.parametrize(
    "case, message",
    [
        (dict(source="missing.png"), "not found"),
        (dict(source="notes.png"), "notes.png"),
        (dict(source="blank.png"), "no face found in"),
        (dict(driving="missing.mp4"), "not found"),
        (dict(driving="empty.mp4"), "empty.mp4"),
        (dict(driving="garbage.mp4"), "garbage.mp4"),
        (dict(driving="truncated.mp4"), "truncated.mp4"),
        (dict(driving="noface.mp4"), "no face found"),
        (dict(driving="audio_only.mp4"), "audio_only.mp4"),
        (dict(model="model_empty"), "no config.json"),
        (dict(model="model_missing"), "does not exist"),
        (dict(output="nodir/out.mp4"), "does not exist"),
        (dict(output="out.xyz"), "unsupported"),
        (dict(best_frame="999"), "outside"),
        (dict(best_frame="soon"), "--best-frame"),
    ],
)
def test_bad_inputs(tiny_dir, bad_inputs, tmp_path, capsys, case, message):
    d = bad_inputs
    source = d / case["source"] if "source" in case else ASSETS / "sample_source.png"
    driving = d / case["driving"] if "driving" in case else ASSETS / "sample_driving.mp4"
    model = d / case["model"] if "model" in case else tiny_dir
    output = tmp_path / case.get("output", "out.mp4")
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"precious")
    args = ["--model", model, "--source", source, "--driving", driving, "-o", output]
    if "best_frame" in case:
        args += ["--best-frame", case["best_frame"]]
    rc = run(*args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert existing.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"], "a failed run left files behind"


def test_incompatible_model_directory(tmp_path, capsys):
    DaGAN(get_preset("tiny")).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 100)
    assert run("--model", tmp_path / "m", "-o", tmp_path / "o.mp4") == 2
    assert "cannot read" in capsys.readouterr().err


def test_unwritable_output(tiny_dir, tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        target = Path("/proc/dagan-test.mp4")  # root can write anywhere else; /proc refuses
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "o.mp4"
    assert run("--model", tiny_dir, "-o", target) == 2
    assert "cannot write" in capsys.readouterr().err


def _face_video(path, centres, size=(360, 300)):
    """A video of the test face at the given centres on a plain background."""
    frames = [face_on_background(x, y, size) for x, y in centres]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"crf": "10"})
        s.width, s.height, s.pix_fmt = *size, "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
    return frames


def test_face_crop_follows_the_face(tiny_dir, tmp_path):
    """Driving faces moving across a wide frame are cropped so the face stays centred."""
    path = tmp_path / "moving.mp4"
    frames = _face_video(path, [(120 + 12 * i, 150) for i in range(8)])
    pipe = AnimationPipeline(DaGAN.from_pretrained(tiny_dir), device="cpu", progress=False)
    for detect_every in (1, 4):
        crops = list(pipe._driving_crops(str(path), True, detect_every, []))
        assert len(crops) == 8
        # the crop content should stay nearly the same while the face moves 84 px across the frame
        assert np.abs(crops[0] - crops[-1]).mean() < 0.08
        whole = [np.asarray(Image.fromarray(f).resize((64, 64))) / 255 for f in (frames[0], frames[-1])]
        assert np.abs(whole[0] - whole[1]).mean() > np.abs(crops[0] - crops[-1]).mean()


def _profile_rows(text):
    rows = {}
    for line in text.splitlines():
        for name in STAGES + ("wall",):
            if line.startswith(name + " "):
                seconds, per_frame, share = line[len(name):].split()
                rows[name] = (float(seconds), float(per_frame), int(share.rstrip("%")))
    return rows


def test_profile_table(tiny_dir, tmp_path, capsys):
    path = tmp_path / "moving.mp4"
    _face_video(path, [(120 + 6 * i, 150) for i in range(12)])
    assert run("--model", tiny_dir, "--driving", path, "--profile", "--detect-every", "5", "--no-audio",
               "--paste-back", "--overlap", "on", "-o", tmp_path / "o.mp4") == 0
    text = capsys.readouterr().out
    rows = _profile_rows(text)
    assert set(rows) == set(STAGES) | {"wall"}, text
    wall = rows["wall"][0]
    assert wall > 0 and rows["wall"][2] == 100
    for name in STAGES:
        seconds, per_frame, share = rows[name]
        assert per_frame > 0, f"{name} was not timed:\n{text}"
        assert 0 <= share <= 100 and seconds <= wall + 0.01
        assert per_frame == pytest.approx(1000 * seconds / 12, abs=0.5)  # seconds are printed to 0.01
    busy = int(text.split("networks busy ")[1].split("%")[0])
    assert 0 < busy <= 100
    per_frame = {name: rows[name][1] for name in ("depth+keypoints", "generator", "wall")}  # printed to 0.1 ms
    from_rows = 100 * (per_frame["depth+keypoints"] + per_frame["generator"]) / per_frame["wall"]
    assert abs(busy - from_rows) <= 0.5 + 100 * 0.15 / per_frame["wall"]  # busy's rounding + the rows'
    assert "(12 frames" in text and "face detector ran on" in text
    runs = int(text.split("face detector ran on ")[1].split()[0])
    assert 3 <= runs < 12  # every 5th frame, plus any re-detection after a lost track


def test_detect_every_flag(tiny_dir, tmp_path, capsys):
    from dagan.cli.animate import DEFAULT_DETECT_EVERY

    assert DEFAULT_DETECT_EVERY == AnimateOptions.detect_every
    assert run("--model", tiny_dir, "--detect-every", "0", "-o", tmp_path / "o.mp4") == 2
    err = capsys.readouterr().err
    assert "--detect-every must be at least 1" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ stopping: errors, Ctrl-C, SIGTERM
def _dagan_threads():
    return [t for t in threading.enumerate() if t.name.startswith("dagan-")]


def test_failures_on_any_thread_stop_the_workers_and_leave_nothing(tiny_dir, clip, bad_inputs, tmp_path):
    pipe = AnimationPipeline(DaGAN.from_pretrained(tiny_dir), device="cpu", progress=False, overlap=True)
    out = tmp_path / "o.mp4"
    out.write_bytes(b"precious")
    generate, calls = pipe.runtime.generate, []

    def interrupted(state, kp):  # Ctrl-C while the networks run (main thread)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(state, kp)

    pipe.runtime.generate = interrupted
    with pytest.raises(KeyboardInterrupt):
        pipe.run(ASSETS / "sample_source.png", clip, out, AnimateOptions(crop=False, batch_size=2))
    pipe.runtime.generate = generate

    def broken_writer(written):  # an error on the compose/encode thread
        if written == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        pipe.run(ASSETS / "sample_source.png", clip, out, AnimateOptions(crop=False, batch_size=2),
                 on_progress=broken_writer)
    with pytest.raises(dagan.DaganError, match="no face found"):  # an error on the reading thread
        pipe.run(ASSETS / "sample_source.png", bad_inputs / "noface.mp4", out, AnimateOptions())
    assert not _dagan_threads()
    assert out.read_bytes() == b"precious" and [p.name for p in tmp_path.iterdir()] == ["o.mp4"]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """Long enough that a run is still encoding when it is signalled."""
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", num_frames=1500, size=(64, 64), audio=None)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signalled_run_leaves_nothing_and_keeps_the_existing_output(tiny_dir, long_clip, tmp_path, sig, code, word):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"precious")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(dagan.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "dagan.cli.main", "animate", "--quiet", "--model", str(tiny_dir), "--source",
           str(ASSETS / "sample_source.png"), "--driving", str(long_clip), "--no-crop", "--batch-size", "2",
           "--overlap", "on", "-o", str(out)]
    # SIGINT at its default, as in a terminal: a parent started in the background (`cmd &` in a
    # script) passes SIGINT on ignored, and Python then never turns it into KeyboardInterrupt.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(1200):  # until the run is writing (its temp file exists), at most ~2 minutes
            if proc.poll() is not None or any(p.name.endswith(".part.mp4") for p in tmp_path.iterdir()):
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        time.sleep(1.0)  # let frames flow through the background reader and writer
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert word in err and "Traceback" not in err, err
    assert out.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["o.mp4"], "the killed run left files behind"


def test_demo_defaults_use_the_bundled_model_and_samples(tmp_path, capsys):
    """What `make demo` runs: no model, source or driving given."""
    out = tmp_path / "demo.mp4"
    assert main(["animate", "--quiet", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bundled demo model" in text and "UNTRAINED" not in text
    info, drv = probe_video(out), probe_video(ASSETS / "sample_driving.mp4")
    assert (info.num_frames, info.frame_rate, info.has_audio) == (drv.num_frames, drv.frame_rate, True)
    assert (info.width, info.height) == (128, 128)
    frames = np.stack(list(iter_frames(out))).astype(np.float32)
    assert frames.std(axis=0).mean() > 1.0  # the face moves: not a still image
    assert main(["info", "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["config"]["image_size"] == 128


def test_compile_flag_reaches_the_runtime(tiny_dir, tmp_path, capsys, monkeypatch):
    from dagan.inference import optimize

    monkeypatch.setattr(optimize.shutil, "which", lambda name: None)  # no C++ compiler
    assert run("--model", tiny_dir, "--compile", "-o", tmp_path / "o.mp4") == 2
    err = capsys.readouterr().err
    assert "--compile needs a C++ compiler" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_compile_failure_is_one_line_and_leaves_nothing(tiny_dir, tmp_path, capsys, monkeypatch):
    import torch._dynamo.exc

    from dagan.inference import optimize

    class FailsToCompile(torch.nn.Module):  # what torch.compile's wrapper does when Inductor fails
        def __init__(self, module):
            super().__init__()
            self.inner = module  # keeps the parameters, as the real wrapper does

        def forward(self, *args, **kwargs):
            raise torch._dynamo.exc.TorchDynamoException("InductorError: KeyError: 'buf1'\nlong internal trace")

    monkeypatch.setattr(optimize, "check_compiler", lambda: None)
    monkeypatch.setattr(optimize.torch, "compile", lambda module, dynamic: FailsToCompile(module))
    assert run("--model", tiny_dir, "--compile", "--no-audio", "-o", tmp_path / "o.mp4") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--compile failed" in err and "KeyError: 'buf1'" in err and "without --compile" in err
    assert list(tmp_path.iterdir()) == []


def test_overlap_choice(tiny_dir, tmp_path, capsys):
    model = DaGAN.from_pretrained(tiny_dir)
    assert AnimationPipeline(model, device="cpu").overlap is True
    assert AnimationPipeline(model, device="cpu", overlap=False).overlap is False
    assert run("--model", tiny_dir, "--overlap", "off", "--profile", "--no-audio", "-o", tmp_path / "o.mp4") == 0
    text = capsys.readouterr().out
    assert "networks busy" in text and "background thread" not in text  # all stages ran on one thread
