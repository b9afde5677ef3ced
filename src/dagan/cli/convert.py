"""Convert the original released DaGAN checkpoint and depth weights into a model directory."""

from pathlib import Path

from dagan.compat import from_original


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, help="DaGAN_vox_adv_256.pth.tar or SPADE_DaGAN_vox_adv_256.pth.tar")
    p.add_argument("--depth-encoder", required=True, help="depth/models/weights_19/encoder.pth")
    p.add_argument("--depth-decoder", required=True, help="depth/models/weights_19/depth.pth")
    p.add_argument("--generator", choices=["dagan", "spade"], default=None,
                   help="generator variant (default: detected from the checkpoint)")
    p.add_argument("--depth-layers", type=int, choices=[18, 50], default=18,
                   help="ResNet depth the depth files must be (18 for the released model)")
    p.add_argument("-o", "--output", required=True, help="output model directory")


def run(args):
    model = from_original(checkpoint=args.checkpoint, depth_encoder=args.depth_encoder,
                          depth_decoder=args.depth_decoder, generator=args.generator, depth_layers=args.depth_layers)
    out = Path(args.output)
    from dagan.cli.common import check_output_dir

    check_output_dir(out)
    model.save_pretrained(out, metadata={"source": {
        "checkpoint": Path(args.checkpoint).name, "depth_encoder": Path(args.depth_encoder).name,
        "depth_decoder": Path(args.depth_decoder).name, "license": "CC BY-NC 4.0 (original DaGAN weights)"}})
    c = model.config
    print(f"wrote {out} (generator={c.generator.kind}, num_kp={c.num_kp}, depth=ResNet-{c.depth.num_layers})")
    return 0
