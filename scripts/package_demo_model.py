"""Copy a trained model directory into the package as the bundled demo model (weights in float16).

    python scripts/package_demo_model.py RUN/model --description "..."
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TARGET = Path(__file__).resolve().parents[1] / "src" / "dagan" / "assets" / "demo_model"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--description", required=True)
    p.add_argument("--card", default="docs/demo_model.md")
    args = p.parse_args()
    src = Path(args.model)
    state = load_file(str(src / "model.safetensors"))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    doc = json.loads((src / "config.json").read_text())
    doc["description"] = args.description
    doc["model_card"] = args.card
    doc["weights_dtype"] = "float16 (loaded into float32 parameters)"
    tmp = TARGET.with_name(TARGET.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(half, str(tmp / "model.safetensors"), metadata={"format": "dagan", "version": "1"})
    (tmp / "config.json").write_text(json.dumps(doc, indent=2) + "\n")
    shutil.rmtree(TARGET, ignore_errors=True)
    tmp.replace(TARGET)
    size = (TARGET / "model.safetensors").stat().st_size / 2**20
    print(f"wrote {TARGET} ({size:.1f} MiB, {sum(v.numel() for v in state.values()):,} values)")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
