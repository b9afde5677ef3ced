"""The whole workflow on small `dagan synth` clips, through the CLI:
synth → train-depth → evaluate-depth → train → animate → metrics → evaluate."""

import json

import numpy as np

from PIL import Image

from dagan.cli.main import main
from dagan.data.synth import load_truth
from dagan.evaluation.depth import flat_depth_baseline
from dagan.io import iter_frames, probe_video


def test_synth_train_animate_evaluate(tmp_path, capsys):
    data, depth_run, run = tmp_path / "data", tmp_path / "depth", tmp_path / "run"
    assert main(["synth", "-o", str(data), "--identities", "3", "--test-identities", "1", "--clips", "1",
                 "--frames", "6", "--size", "64", "--seed", "1"]) == 0
    assert main(["train-depth", "--config", "tiny", "--data", str(data), "--out", str(depth_run),
                 "--max-steps", "2"]) == 0
    assert main(["evaluate-depth", "--depth", str(depth_run / "model"), "--data", str(data), "--json"]) == 0
    depth = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    test_clips = sorted((data / "test").glob("*.mp4"))
    assert depth["frames"] == 6 * len(test_clips) and [c["clip"] for c in depth["clips"]] == [c.name for c in test_clips]
    truth = load_truth(test_clips[0])
    flat = flat_depth_baseline(truth["depth"], truth["mask"])
    assert all(abs(depth["flat_baseline"][k] - flat[k]) < 1e-9 for k in ("abs_rel", "delta_1_25", "pearson"))
    assert 0 < depth["model"]["abs_rel"] < 1 and 0 <= depth["model"]["delta_1_25"] <= 1
    assert -1 <= depth["model"]["pearson"] <= 1
    assert main(["train", "--config", "tiny", "--data", str(data), "--depth", str(depth_run / "model"),
                 "--out", str(run), "--max-steps", "2", "--set", "allow_random_vgg=true"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]

    clip = sorted((data / "test").glob("*.mp4"))[0]
    source = tmp_path / "source.png"
    Image.fromarray(next(iter_frames(clip))).save(source)
    out = tmp_path / "animated.mp4"
    assert main(["animate", "--quiet", "--model", str(run / "model"), "--source", str(source), "--driving", str(clip),
                 "--no-crop", "-o", str(out)]) == 0
    assert probe_video(out).num_frames == 6
    assert main(["metrics", "--pred", str(out), "--target", str(clip), "--json", "--no-lpips", "--size", "64"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # L1 is that of these very frames, in order (decoded here independently at the same size)
    pred, target = (np.stack(list(iter_frames(p))).astype(np.float64) / 255 for p in (out, clip))
    assert scores["num_frames"] == 6
    assert abs(scores["L1"] - np.abs(pred - target).mean()) < 1e-6, (scores["L1"], np.abs(pred - target).mean())
    assert main(["evaluate", "--model", str(run / "model"), "--data", str(data), "--size", "64", "--cross-pairs",
                 "0", "--no-lpips", "-o", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["reconstruction"]["num_frames"] == 6
