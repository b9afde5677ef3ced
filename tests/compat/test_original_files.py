"""Strict loading of original files: the manifest maps completely; mix-ups get clear messages."""

import pytest
import torch

import dagan
from dagan.compat import original_to_ours
from dagan.compat.original import translate
from dagan.config import get_preset
from dagan.models import DaGAN, PoseNetwork, build_discriminator
from dagan.models.depth import DepthNetwork
from reference import manifest, write_original_files

COMPONENT = {"generator": "generator", "generator_spade": "generator", "kp_detector": "kp_detector",
             "discriminator": "discriminator", "depth_encoder_r18": "depth_encoder",
             "depth_decoder_r18": "depth_decoder", "depth_encoder_r50": "depth_encoder",
             "depth_decoder_r50": "depth_decoder", "pose_encoder_r18": "pose_encoder", "pose_decoder": "pose_decoder"}


def targets():
    cfg = get_preset("vox-256")
    model, spade, r50, pose = DaGAN(cfg), DaGAN(get_preset("vox-256-spade")), DepthNetwork(50), PoseNetwork(18)
    return {"generator": model.generator, "generator_spade": spade.generator, "kp_detector": model.keypoint_detector,
            "discriminator": build_discriminator(cfg), "depth_encoder_r18": model.depth.encoder,
            "depth_decoder_r18": model.depth.decoder, "depth_encoder_r50": r50.encoder,
            "depth_decoder_r50": r50.decoder, "pose_encoder_r18": pose.encoder, "pose_decoder": pose.decoder}


def test_all_ten_networks_map_completely():
    models = manifest()["models"]
    mods = targets()
    assert set(models) == set(mods)
    for name, module in mods.items():
        original = {k: torch.zeros(shape) for k, shape, _, _ in models[name]["state_dict"]}
        ours = original_to_ours(COMPONENT[name], original)
        own = module.state_dict()
        assert set(ours) == set(own), name
        assert all(tuple(ours[k].shape) == tuple(own[k].shape) for k in own), name
        assert models[name]["num_parameters"] == sum(p.numel() for p in module.parameters()) + (
            1000 * 512 + 1000 if "encoder" in name and name.endswith("r18") else
            1000 * 2048 + 1000 if "encoder" in name else 0), name


def test_unknown_key_is_an_error():
    with pytest.raises(dagan.DaganError, match="not in the original layout"):
        translate({"kp.weight": 1, "extra.thing": 2}, [(r"kp\.weight", "x")])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_original_files(tmp_path_factory.mktemp("orig"), "A")


def load(files, **kw):
    args = dict(checkpoint=files["checkpoint"], depth_encoder=files["depth_encoder"],
                depth_decoder=files["depth_decoder"])
    args.update(kw)
    return dagan.from_original(**args)


def test_loads_with_ddp_prefix_and_detects_variant(files):
    model = load(files)
    assert model.config.num_kp == 15 and model.config.generator.kind == "dagan" and not model.training
    assert load(files, checkpoint=files["spade_checkpoint"]).config.generator.kind == "spade"


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(checkpoint="depth_encoder"), "is a depth encoder file"),
        (dict(checkpoint="depth_decoder"), "is a depth decoder file"),
        (dict(depth_encoder="checkpoint"), "is a DaGAN checkpoint"),
        (dict(depth_encoder="depth_decoder"), "is a depth decoder file"),
        (dict(depth_decoder="depth_encoder"), "is a depth encoder file"),
        (dict(depth_encoder="depth_encoder_r50", depth_decoder="depth_decoder_r50"), "is a ResNet-50"),
        (dict(depth_decoder="depth_decoder_r50"), "belongs to a ResNet-50"),
    ],
)
def test_mix_ups_name_the_problem(files, change, message):
    kw = {k: files[v] for k, v in change.items()}
    with pytest.raises(dagan.DaganError, match=message):
        load(files, **kw)


def test_wrong_generator_variant(files):
    with pytest.raises(dagan.DaganError, match="holds the 'spade' generator"):
        load(files, checkpoint=files["spade_checkpoint"], generator="dagan")
    with pytest.raises(dagan.DaganError, match="holds the 'dagan' generator"):
        load(files, generator="spade")


def test_resnet50_depth_when_asked(files):
    model = load(files, depth_encoder=files["depth_encoder_r50"], depth_decoder=files["depth_decoder_r50"],
                 depth_layers=None)
    assert model.config.depth.num_layers == 50


def test_missing_truncated_and_foreign_files(files, tmp_path):
    with pytest.raises(dagan.DaganError, match="does not exist"):
        load(files, checkpoint=tmp_path / "missing.pth.tar")
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(files["checkpoint"].read_bytes()[:4096])
    with pytest.raises(dagan.DaganError, match="truncated or not a PyTorch checkpoint"):
        load(files, checkpoint=truncated)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(dagan.DaganError, match="truncated or not a PyTorch checkpoint"):
        load(files, depth_encoder=text)
    other = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(dagan.DaganError, match="not a DaGAN or depth-network file"):
        load(files, checkpoint=other)
    bad_shape = tmp_path / "bad.pth.tar"
    ckpt = torch.load(files["checkpoint"], weights_only=True)
    ckpt["generator"]["module.final.weight"] = torch.zeros(3, 64, 5, 5)
    torch.save(ckpt, bad_shape)
    with pytest.raises(dagan.DaganError, match="wrong shape"):
        load(files, checkpoint=bad_shape)


def test_pickled_code_is_refused(files, tmp_path):
    evil = tmp_path / "evil.pth.tar"
    torch.save({"generator": {}, "kp_detector": {}, "obj": PoseNetwork}, evil)
    with pytest.raises(dagan.DaganError, match="cannot read"):
        load(files, checkpoint=evil)
