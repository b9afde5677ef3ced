"""Print a model's config, parameter counts per component, and the environment; or a photo's faces."""

import json
import platform
from pathlib import Path


def add_arguments(p):
    p.add_argument("model", nargs="?", default=None, help="model directory (default: the bundled demo model if any, "
                   "else the vox-256 architecture with random weights)")
    p.add_argument("--preset", default=None, help="describe a named preset instead (vox-256, vox-256-spade, tiny)")
    p.add_argument("--faces", default=None, metavar="PHOTO",
                   help="list the faces found in PHOTO, numbered left to right as `dagan animate --faces` uses them")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def list_faces(photo: str, as_json: bool) -> int:
    """Print every face in `photo`: its number (left to right), face box and the crop animate uses."""
    from dagan.inference.face import crop_box_from_face, detect_faces
    from dagan.inference.group import number_faces
    from dagan.io import read_image, to_uint8

    image = read_image(photo)
    h, w = image.shape[:2]
    boxes = number_faces(detect_faces(to_uint8(image)))
    largest = max(range(len(boxes)), key=lambda i: boxes[i].area) + 1 if boxes else None
    faces = [{"face": i, "box": [round(v, 1) for v in (b.x0, b.y0, b.x1, b.y1)],
              "crop": [round(v, 1) for v in crop_box_from_face(b, (w, h)).as_array().tolist()],
              "score": round(b.score, 3), "largest": i == largest} for i, b in enumerate(boxes, start=1)]
    if as_json:
        print(json.dumps({"photo": photo, "size": [w, h], "faces": faces}))
        return 0
    print(f"{photo}: {w}×{h}, {len(faces)} face{'s' if len(faces) != 1 else ''} (numbered left to right)")
    for f in faces:
        x0, y0, x1, y1 = f["box"]
        mark = "  (largest: the default of --faces)" if f["largest"] else ""
        print(f"  face {f['face']}: box x {x0:g}–{x1:g}, y {y0:g}–{y1:g} ({x1 - x0:g}×{y1 - y0:g} px), "
              f"score {f['score']:g}{mark}")
    return 0


def run(args):
    if args.faces:
        return list_faces(args.faces, args.json)
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
