import numpy as np
import pytest
import torch

from dagan.errors import DaganError
from dagan.evaluation import lpips as lp

CONV_SHAPES = {  # torchvision alexnet().features
    0: (64, 3, 11, 11),
    3: (192, 64, 5, 5),
    6: (384, 192, 3, 3),
    8: (256, 384, 3, 3),
    10: (256, 256, 3, 3),
}


def random_files(folder, seed=0):
    """Random weights written as the lpips package's alex.pth and torchvision's AlexNet checkpoint."""
    g = torch.Generator().manual_seed(seed)
    lin = {f"lin{l}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for l, c in enumerate(lp.LPIPS_CHANNELS)}
    backbone = {}
    for index, shape in CONV_SHAPES.items():
        backbone[f"features.{index}.weight"] = torch.randn(shape, generator=g) * 0.05
        backbone[f"features.{index}.bias"] = torch.randn(shape[0], generator=g) * 0.05
    backbone["classifier.1.weight"] = torch.randn(8, 4, generator=g)  # ignored, as the real 4096×9216
    backbone["classifier.1.bias"] = torch.randn(8, generator=g)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(lin, folder / lp.LIN_FILENAME)
    torch.save(backbone, folder / lp.BACKBONE_FILENAME)
    return folder / lp.LIN_FILENAME, folder / lp.BACKBONE_FILENAME, lin, backbone


@pytest.fixture
def no_auto_weights(monkeypatch, tmp_path):
    """No env var, an empty torch hub and no lpips package: nothing can be found automatically."""
    monkeypatch.delenv(lp.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(lp, "_lpips_package_lin_file", lambda: None)


def test_parameter_names_match_torchvision_and_lpips():
    state = lp.LPIPS().state_dict()
    expected = {f"net.features.{i}.{p}" for i in CONV_SHAPES for p in ("weight", "bias")}
    expected |= {f"lin{l}.model.1.weight" for l in range(5)}
    assert set(state) == expected
    for index, shape in CONV_SHAPES.items():
        assert tuple(state[f"net.features.{index}.weight"].shape) == shape
    for l, c in enumerate(lp.LPIPS_CHANNELS):
        assert tuple(state[f"lin{l}.model.1.weight"].shape) == (1, c, 1, 1)


def test_feature_shapes():
    feats = lp.AlexNetFeatures()(torch.zeros(2, 3, 64, 64))
    assert [f.shape[1] for f in feats] == list(lp.LPIPS_CHANNELS)
    assert [tuple(f.shape[2:]) for f in feats] == [(15, 15), (7, 7), (3, 3), (3, 3), (3, 3)]


def test_load_explicit_paths(tmp_path):
    lin_path, bb_path, lin, backbone = random_files(tmp_path / "w")
    model = lp.load_lpips(lin_path, bb_path)
    state = model.state_dict()
    assert torch.equal(state["lin3.model.1.weight"], lin["lin3.model.1.weight"])
    assert torch.equal(state["net.features.6.weight"], backbone["features.6.weight"])
    assert not model.training
    again = lp.load_lpips(tmp_path / "w", tmp_path / "w")  # directories work too
    assert again is not model
    assert torch.equal(again.state_dict()["net.features.0.bias"], state["net.features.0.bias"])


def test_load_from_env_directory(tmp_path, monkeypatch, no_auto_weights):
    random_files(tmp_path / "w")
    monkeypatch.setenv(lp.ENV_VAR, str(tmp_path / "w"))
    assert lp.find_lpips_weights() == (tmp_path / "w" / lp.LIN_FILENAME, tmp_path / "w" / lp.BACKBONE_FILENAME)
    model, reason = lp.try_load_lpips()
    assert isinstance(model, lp.LPIPS) and reason is None


def test_env_file_with_backbone_in_torch_hub_cache(tmp_path, monkeypatch, no_auto_weights):
    lin_path, bb_path, _, _ = random_files(tmp_path / "w")
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    bb_path.rename(hub / lp.BACKBONE_FILENAME)
    monkeypatch.setenv(lp.ENV_VAR, str(lin_path))
    assert lp.find_lpips_weights() == (lin_path, hub / lp.BACKBONE_FILENAME)


def test_lpips_package_location(tmp_path, monkeypatch, no_auto_weights):
    lin_path, bb_path, _, _ = random_files(tmp_path / "pkg")
    monkeypatch.setattr(lp, "_lpips_package_lin_file", lambda: lin_path)
    assert lp.find_lpips_weights() == (lin_path, bb_path)


def test_identical_is_zero_and_symmetric(tmp_path):
    model = lp.load_lpips(*random_files(tmp_path)[:2])
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    x1 = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x0, x0), torch.zeros(2))
        d01, d10 = model(x0, x1), model(x1, x0)
    assert d01.shape == (2,)
    assert torch.all(d01 > 0)
    assert torch.allclose(d01, d10)
    img = np.random.default_rng(0).uniform(size=(64, 64, 3))
    assert lp.lpips_distance(model, img, img) == 0.0


def test_forward_bad_input():
    with pytest.raises(DaganError, match="B×3×H×W"):
        lp.LPIPS()(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 16, 16))


def test_unavailable_gives_reason(no_auto_weights):
    model, reason = lp.try_load_lpips()
    assert model is None
    assert lp.ENV_VAR in reason and lp.LIN_FILENAME in reason


def test_missing_backbone_gives_reason(tmp_path, monkeypatch, no_auto_weights):
    lin_path, bb_path, _, _ = random_files(tmp_path / "w")
    bb_path.unlink()
    monkeypatch.setenv(lp.ENV_VAR, str(tmp_path / "w"))
    model, reason = lp.try_load_lpips()
    assert model is None and lp.BACKBONE_FILENAME in reason


def test_env_pointing_nowhere_gives_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(lp.ENV_VAR, str(tmp_path / "nope"))
    model, reason = lp.try_load_lpips()
    assert model is None and "nope" in reason


def test_explicit_missing_path_raises(tmp_path):
    with pytest.raises(DaganError, match="not found"):
        lp.try_load_lpips(tmp_path / "missing.pth")


def test_malformed_files_raise(tmp_path):
    lin_path, bb_path, lin, backbone = random_files(tmp_path / "w")
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(DaganError, match="cannot read"):
        lp.load_lpips(bad, bb_path)
    torch.save({**lin, "lin5.model.1.weight": torch.zeros(1, 8, 1, 1)}, bad)
    with pytest.raises(DaganError, match="unexpected keys"):
        lp.load_lpips(bad, bb_path)
    torch.save({**backbone, "features.1.weight": torch.zeros(1)}, bad)
    with pytest.raises(DaganError, match="unexpected key"):
        lp.load_lpips(lin_path, bad)
    torch.save({k: v for k, v in backbone.items() if k != "features.10.bias"}, bad)
    with pytest.raises(DaganError, match="lacks"):
        lp.load_lpips(lin_path, bad)
    torch.save({**lin, "lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, bad)
    with pytest.raises(DaganError, match="shape"):
        lp.load_lpips(bad, bb_path)
    torch.save({"weights": [1, 2]}, bad)
    with pytest.raises(DaganError):
        lp.load_lpips(bad, bb_path)
