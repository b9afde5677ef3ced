"""Print a model's config, parameter counts per component, and the environment."""

import json
import platform
from pathlib import Path


def add_arguments(p):
    p.add_argument("model", nargs="?", default=None, help="model directory (default: the bundled demo model if any, "
                   "else the vox-256 architecture with random weights)")
    p.add_argument("--preset", default=None, help="describe a named preset instead (vox-256, vox-256-spade, tiny)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args):
    import torch

    import dagan
    from dagan.config import get_preset
    from dagan.models import DaGAN, build_discriminator

    from dagan import assets

    if args.model:
        model = DaGAN.from_pretrained(args.model)
        where = str(Path(args.model))
    elif args.preset is None and (assets.DEMO_MODEL / "config.json").is_file():
        model, where = assets.resolve_model(None)
    else:
        name = args.preset or "vox-256"
        model = DaGAN(get_preset(name))
        where = f"preset {name} (architecture only, random weights)"
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    counts["discriminator (training only)"] = sum(p.numel() for p in build_discriminator(model.config).parameters())
    env = {
        "dagan": dagan.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps({"model": where, "config": model.config.to_dict(), "parameters": counts, "environment": env}))
        return 0
    print(f"model: {where}")
    print("config:")
    print("  " + json.dumps(model.config.to_dict(), indent=2).replace("\n", "\n  "))
    print("parameters:")
    for name, n in counts.items():
        print(f"  {name:32s} {n:>12,d}")
    print("environment:")
    for k, v in env.items():
        print(f"  {k:10s} {v}")
    return 0
