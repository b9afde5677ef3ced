"""`dagan synth` → `dagan pairs` / `dagan evaluate` / `dagan evaluate-depth` end to end on small synthetic clips."""

import json

import numpy as np
import pytest
import torch

from dagan.cli.main import main
from dagan.config import get_preset
from dagan.data.synth import load_truth
from dagan.evaluation.landmarks import detect_landmarks
from dagan.io import iter_frames
from dagan.models import DaGAN


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    assert main(["synth", "-o", str(root), "--identities", "4", "--test-identities", "2", "--clips", "1", "--frames", "4", "--size", "128",
                 "--seed", "3"]) == 0
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("model")
    DaGAN(get_preset("tiny")).save_pretrained(d)
    return d


def test_dlib_landmarks_agree_with_synthetic_ground_truth(synth):
    errors = []
    for clip in sorted((synth / "train").glob("*.mp4")):
        truth = load_truth(clip)
        for frame, gt in zip(iter_frames(clip), truth["landmarks"]):
            lm = detect_landmarks(frame)
            if lm is not None:
                errors.append(np.abs(lm + 0.5 - gt).mean())
    assert len(errors) >= 4
    assert float(np.median(errors)) < 4.0  # pixels at 128²: the detector agrees with the rendered truth


def test_pairs_are_reproducible(synth, tmp_path):
    for name, seed in (("a.csv", 1), ("b.csv", 1), ("c.csv", 2)):
        assert main(["pairs", str(synth), "-o", str(tmp_path / name), "--num-pairs", "8", "--seed", str(seed)]) == 0
    a, b, c = ((tmp_path / n).read_text() for n in ("a.csv", "b.csv", "c.csv"))
    assert a == b and a != c
    assert a.splitlines()[0] == "source,driving,frame" and len(a.splitlines()) == 9


def test_evaluate_both_protocols(synth, tiny_model, tmp_path, capsys):
    assert main(["pairs", str(synth), "-o", str(tmp_path / "p.csv"), "--num-pairs", "3"]) == 0
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(synth), "--protocol", "pairs", "--pairs",
                 str(tmp_path / "p.csv"), "--cross-pairs", "1", "--size", "64", "--no-lpips", "-o",
                 str(tmp_path / "pairs.json")]) == 0
    report = json.loads((tmp_path / "pairs.json").read_text())
    rec = report["reconstruction"]
    assert rec["num_pairs"] == 3 and len(rec["per_pair"]) == 3
    assert set(rec["metrics"]) == {"L1", "PSNR", "SSIM", "LPIPS", "AKD", "AED"}
    assert rec["metrics"]["L1"] == pytest.approx(np.mean([r["L1"] for r in rec["per_pair"]]), abs=1e-12)
    assert rec["metrics"]["LPIPS"] is None
    assert report["cross_identity"]["num_pairs"] == 1
    assert (tmp_path / "pairs.md").read_text().startswith("# Evaluation")

    assert main(["evaluate", "--model", str(tiny_model), "--data", str(synth), "--protocol", "video",
                 "--cross-pairs", "0", "--size", "64", "--no-lpips", "--plots", "-o", str(tmp_path / "v.json")]) == 0
    rec = json.loads((tmp_path / "v.json").read_text())["reconstruction"]
    test_clips = sorted(p.name for p in (synth / "test").glob("*.mp4"))
    assert [v["video"] for v in rec["per_video"]] == test_clips
    assert all(v["frames"] == 4 and len(v["per_frame"]) == 4 for v in rec["per_video"])
    assert len(list(tmp_path.glob("v_*.png"))) == len(test_clips)


@pytest.mark.parametrize("stand_in", ["driving", "source"])
def test_evaluate_pairs_against_reference_predictions(synth, tiny_model, tmp_path, monkeypatch, stand_in):
    """Bounds for the L1 a model can get: predicting the driving frame itself scores 0 (the right
    target is compared), the no-motion copy of the source scores the source-to-driving L1."""
    import dagan.evaluation.protocols as protocols

    monkeypatch.setattr(protocols, "reconstruct", lambda model, source, driving: locals()[stand_in].clone())
    assert main(["pairs", str(synth), "-o", str(tmp_path / "p.csv"), "--num-pairs", "3"]) == 0
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(synth), "--protocol", "pairs", "--pairs",
                 str(tmp_path / "p.csv"), "--cross-pairs", "0", "--size", "64", "--no-lpips", "-o",
                 str(tmp_path / "r.json")]) == 0
    rec = json.loads((tmp_path / "r.json").read_text())["reconstruction"]["metrics"]
    if stand_in == "driving":
        assert rec["L1"] == 0 and rec["SSIM"] == pytest.approx(1), rec
    else:
        from dagan.data.pairs import EvaluationPairs
        from dagan.evaluation.metrics import l1, prepare

        pairs = EvaluationPairs.read_csv(tmp_path / "p.csv", synth)
        copy = np.mean([l1(prepare(pairs[i]["source"].permute(1, 2, 0).numpy(), 64),
                           prepare(pairs[i]["driving"].permute(1, 2, 0).numpy(), 64)) for i in range(len(pairs))])
        assert rec["L1"] == pytest.approx(copy, abs=2e-3) and rec["L1"] > 0.005, (rec["L1"], copy)


def test_evaluate_errors(synth, tiny_model, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "none"), "-o",
                 str(tmp_path / "r.json")]) == 2
    assert "has no test/ folder" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(synth), "--protocol", "pairs", "--pairs",
                 str(tmp_path / "missing.csv"), "-o", str(tmp_path / "r.json")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_evaluate_depth_against_flat_baseline(synth, tmp_path, capsys):
    from dagan.models.depth import DepthNetwork
    from dagan.training.export import save_depth

    torch.manual_seed(0)
    save_depth(tmp_path / "depth", DepthNetwork(18), get_preset("tiny"))
    assert main(["evaluate-depth", "--depth", str(tmp_path / "depth"), "--data", str(synth), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["model"]) == {"abs_rel", "abs_rel_affine", "delta_1_25", "pearson"}
    assert report["flat_baseline"]["pearson"] == 0.0
    assert report["frames"] == 4 * len(list((synth / "test").glob("*.mp4")))


class TruthDepth(torch.nn.Module):
    """A stand-in depth network answering each frame with its rendered ground truth, as the
    sigmoid disparity that `disp_to_depth` (min 0.1, max 100) turns back into that depth."""

    def __init__(self, split_dir):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # evaluate_depth reads the device from a parameter
        self.truth = {}
        for clip in sorted(split_dir.glob("*.mp4")):
            for frame, depth in zip(iter_frames(clip), load_truth(clip)["depth"], strict=True):
                disp = np.where(depth > 0, (1 / np.maximum(depth, 1e-9) - 0.01) / 9.99, 0.5)
                self.truth[frame.tobytes()] = torch.from_numpy(disp.astype(np.float32))

    def forward(self, x):  # B×3×H×W in [0, 1] → [B×1×H×W]
        frames = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [torch.stack([self.truth[f.tobytes()] for f in frames])[:, None]]


def test_evaluate_depth_true_depth_is_perfect_and_beats_flat(synth, tmp_path, capsys, monkeypatch):
    import dagan.training.export

    monkeypatch.setattr(dagan.training.export, "load_depth", lambda *a, **kw: TruthDepth(synth / "test"))
    assert main(["evaluate-depth", "--depth", str(tmp_path / "truth"), "--data", str(synth), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    model, flat = report["model"], report["flat_baseline"]
    assert model["abs_rel"] < 1e-5 and model["abs_rel_affine"] < 1e-5, model
    assert model["delta_1_25"] == 1.0 and model["pearson"] > 1 - 1e-6, model
    assert flat["abs_rel"] > 10 * 1e-5 and flat["abs_rel_affine"] > 10 * 1e-5 and flat["pearson"] == 0.0, flat


def test_affine_abs_rel():
    from dagan.evaluation.depth import affine_abs_rel

    rng = np.random.default_rng(0)
    gt = 0.7 + 0.05 * rng.random((2, 8, 8))
    mask = np.ones_like(gt, dtype=bool)
    assert affine_abs_rel(3.0 * gt - 1.0, gt, mask) < 1e-9  # any scale and shift of the truth is exact
    flat = affine_abs_rel(np.ones_like(gt), gt, mask)
    expected = np.mean([np.mean(np.abs(g.mean() - g) / g) for g in gt])
    assert abs(flat - expected) < 1e-9
    assert affine_abs_rel(gt + 0.01 * rng.random(gt.shape), gt, mask) < flat
