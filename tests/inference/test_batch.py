"""dagan batch: CSV and cross-product jobs, bad CSVs refused up front, failures isolated, resume, shards."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dagan.cli.main import main
from dagan.errors import DaganError
from dagan.inference.batch import Job, cross_jobs, parse_shard, read_jobs_csv, resolve_shard, shard_jobs
from dagan.inference.runtime import TorchRuntime
from dagan.io import probe_video
from helpers_media import make_clip

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def media(tmp_path_factory, crop_clip):
    """3 small photos (noise, already 'cropped') and 2 driving clips (6 and 4 frames)."""
    root = tmp_path_factory.mktemp("batch_media")
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name in ("ann", "bob", "cy"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "photos" / f"{name}.png")
    (root / "drivers").mkdir()
    (root / "drivers" / "talk.mp4").write_bytes(Path(crop_clip).read_bytes())
    make_clip(root / "drivers" / "nod.mp4", num_frames=4, size=(64, 64), audio=None)
    return root


def csv_file(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("source,output\na.png,x.mp4\n", "line 1: missing column 'driving'"),
    ("source,driving,colour\na.png,b.mp4,red\n", "line 1: unknown column 'colour'"),
    ("source,driving,output\na.png,b.mp4,x.mp4\nc.png,b.mp4,x.mp4\n", "line 3: output x.mp4 is the same as line 2"),
    ("source,driving\na.png,b.mp4\na.png,b.mp4\n", "line 3: output a__b.mp4 is the same as line 2"),
    ("source,driving,paste_back\na.png,b.mp4,maybe\n", "line 2: column paste_back: expected true or false"),
    ("source,driving,faces\na.png,b.mp4,0\n", "line 2: column faces: --faces numbers start at 1"),
    ("source,driving\na.png,\n", "line 2: source and driving must both be given"),
    ("source,driving,output\na.png,b.mp4,../up.mp4\n", "line 2: output '../up.mp4' must be a path inside OUTDIR"),
    ("source,driving\n", "lists no jobs"),
])
def test_bad_csv_is_refused_with_its_line(tmp_path, text, message):
    with pytest.raises(DaganError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_jobs_csv(csv_file(tmp_path / "jobs.csv", text))


def test_csv_options_and_default_names(tmp_path):
    jobs = read_jobs_csv(csv_file(tmp_path / "jobs.csv", "source,driving,paste-back,best_frame,output\n"
                                  "a.png,b.mp4,yes,auto,\nsub/c.png,/abs/d.npz,0,3,out/x.gif\nc.png,face.jpg,,,\n"))
    assert [j.output for j in jobs] == ["a__b.mp4", "out/x.gif", "c__face.png"]
    assert jobs[0].options.paste_back and jobs[0].options.best_frame == "auto" and jobs[1].options.best_frame == 3
    assert jobs[0].source == str(tmp_path / "a.png") and jobs[1].driving == "/abs/d.npz"
    assert [j.line for j in jobs] == [2, 3, 4]


@pytest.mark.parametrize("bad", ["2/2", "-1/3", "1", "a/b", "1/0", "1/2/3"])
def test_bad_shards(bad):
    with pytest.raises(DaganError, match="--shard"):
        parse_shard(bad)


def test_shards_are_disjoint_deterministic_and_complete():
    jobs = [Job(f"s{i}.png", "d.mp4", f"o{i}.mp4") for i in range(10)]
    parts = [shard_jobs(jobs, i, 3) for i in range(3)]
    assert sorted(j.output for p in parts for j in p) == sorted(j.output for j in jobs)
    assert sum(len(p) for p in parts) == 10 and parts == [shard_jobs(jobs, i, 3) for i in range(3)]
    assert resolve_shard("1/2", {"RANK": "1", "WORLD_SIZE": "2"}) == (3, 4)
    assert resolve_shard(None, {"RANK": "0", "WORLD_SIZE": "2"}) == (0, 2)
    assert resolve_shard(None, {}) == (0, 1)


def test_cross_product(media):
    jobs = cross_jobs(media / "photos", media / "drivers")
    assert len(jobs) == 6 and jobs[0].output == "ann__nod.mp4"
    assert len(cross_jobs(media / "photos", media / "drivers" / "talk.mp4")) == 3
    with pytest.raises(DaganError, match="holds no photos"):
        cross_jobs(media / "drivers", media / "drivers")


def test_batch_runs_isolates_failures_reuses_work_and_resumes(tiny_dir, media, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken.png").write_text("not an image")
    jobs = csv_file(tmp_path / "jobs.csv",
                    f"source,driving,output\n{media}/photos/ann.png,{media}/drivers/talk.mp4,a/talk.mp4\n"
                    f"broken.png,{media}/drivers/talk.mp4,\n{media}/photos/ann.png,{media}/drivers/nod.mp4,\n"
                    f"{media}/photos/bob.png,{media}/drivers/talk.mp4,b.gif\n")
    counts = {"prepare": 0, "driving": 0}
    prepare, keypoints = TorchRuntime.prepare_source, TorchRuntime.driving_keypoints

    def count(name, fn):
        def wrapped(self, x):
            counts[name] += 1
            return fn(self, x)
        return wrapped

    monkeypatch.setattr(TorchRuntime, "prepare_source", count("prepare", prepare))
    monkeypatch.setattr(TorchRuntime, "driving_keypoints", count("driving", keypoints))
    out = tmp_path / "out"
    argv = ["batch", str(jobs), "-o", str(out), "--model", str(tiny_dir), "--no-crop", "--batch-size", "4"]
    assert main(argv) == 1  # one job failed
    log = capsys.readouterr().out
    assert "job line 3 failed:" in log and len([ln for ln in log.splitlines() if "failed:" in ln]) == 1
    assert counts == {"prepare": 2, "driving": 3}  # ann and bob once; talk (2 batches) and nod (1) once each
    report = json.loads((out / "batch_report.json").read_text())["jobs"]
    assert {k: v["status"] for k, v in report.items()} == {
        "a/talk.mp4": "ok", "broken__talk.mp4": "failed", "ann__nod.mp4": "ok", "b.gif": "ok"}
    assert "broken.png" in report["broken__talk.mp4"]["error"] and report["b.gif"]["seconds"] > 0
    assert report["a/talk.mp4"]["outputs"] == ["a/talk.mp4"]  # relative to OUTDIR
    talk = probe_video(out / "a" / "talk.mp4")
    assert talk.num_frames == 6 and talk.has_audio  # the video's audio, though animated from its motion file
    assert probe_video(out / "ann__nod.mp4").num_frames == 4
    assert len(list((out / ".motion").glob("*.npz"))) == 2
    stamp = (out / "b.gif").stat().st_mtime_ns
    (tmp_path / "broken.png").unlink()
    Image.new("RGB", (64, 64), "grey").save(tmp_path / "broken.png")
    assert main(argv) == 0  # the rerun skips the finished jobs and retries the failed one
    report = json.loads((out / "batch_report.json").read_text())["jobs"]
    assert report["broken__talk.mp4"]["status"] == "ok" and report["b.gif"]["status"] == "skipped"
    assert (out / "b.gif").stat().st_mtime_ns == stamp
    assert not [p for p in out.rglob(".*") if p.is_file() and p.name != ".batch_report.json.lock"
                and p.parent.name != ".motion"]


def test_batch_cli_errors(media, tmp_path, capsys):
    assert main(["batch", "-o", str(tmp_path / "o")]) == 2
    assert "give JOBS.csv" in capsys.readouterr().err
    assert main(["batch", "--sources", str(media / "photos"), "--driving", str(media / "drivers"), "--shard", "3/3",
                 "-o", str(tmp_path / "o")]) == 2
    assert "need 0 ≤ I < N" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_torchrun_ranks_split_the_jobs(tiny_dir, media, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "dagan",
           "batch", "--sources", str(media / "photos"), "--driving", str(media / "drivers"), "-o", str(out),
           "--model", str(tiny_dir), "--no-crop", "--format", "gif"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "batch_report.json").read_text())["jobs"]
    expected = {j.output for j in cross_jobs(media / "photos", media / "drivers", suffix=".gif")}
    assert set(report) == expected and {p.name for p in out.glob("*.gif")} == expected
    by_shard = {}
    for name, entry in report.items():
        assert entry["status"] == "ok"
        by_shard.setdefault(entry["shard"], set()).add(name)
    assert set(by_shard) == {"0/2", "1/2"}
    assert not by_shard["0/2"] & by_shard["1/2"] and by_shard["0/2"] | by_shard["1/2"] == expected
    assert "shard 0/2: 3 of 6 jobs" in proc.stdout and "shard 1/2: 3 of 6 jobs" in proc.stdout
