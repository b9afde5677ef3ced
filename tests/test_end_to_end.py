"""The whole workflow on small `dagan synth` clips, through the CLI:
synth → train-depth → evaluate-depth → train → animate → metrics → evaluate."""

import json

from PIL import Image

from dagan.cli.main import main
from dagan.io import iter_frames, probe_video


def test_synth_train_animate_evaluate(tmp_path, capsys):
    data, depth_run, run = tmp_path / "data", tmp_path / "depth", tmp_path / "run"
    assert main(["synth", "-o", str(data), "--identities", "3", "--test-identities", "1", "--clips", "1",
                 "--frames", "6", "--size", "64", "--seed", "1"]) == 0
    assert main(["train-depth", "--config", "tiny", "--data", str(data), "--out", str(depth_run),
                 "--max-steps", "2"]) == 0
    assert main(["evaluate-depth", "--depth", str(depth_run / "model"), "--data", str(data), "--json"]) == 0
    capsys.readouterr()
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
    assert main(["metrics", "--pred", str(out), "--target", str(clip), "--json", "--no-lpips"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["num_frames"] == 6 and 0 < scores["L1"] < 1
    assert main(["evaluate", "--model", str(run / "model"), "--data", str(data), "--size", "64", "--cross-pairs",
                 "0", "--no-lpips", "-o", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["reconstruction"]["num_frames"] == 6
