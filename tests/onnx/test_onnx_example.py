"""The docs' minimal onnxruntime example runs with only onnxruntime and numpy, and matches PyTorch."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from dagan.assets import DEMO_MODEL, sample_driving, sample_source
from dagan.inference.face import Box, crop_and_resize
from dagan.io import iter_frames, read_image
from dagan.models import DaGAN
from onnx_helpers import assert_parity

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploying.md"
# Run the example with these unimportable, then list what it did import.
GUARD = """
import sys
BLOCKED = {"dagan", "torch", "scipy", "PIL", "av", "skimage", "cv2"}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the example must run without it")
sys.meta_path.insert(0, Block())
code = open(sys.argv.pop(1)).read()
exec(compile(code, "example", "exec"), {"__name__": "__main__"})
print("IMPORTED", sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)))
"""


def example_code() -> str:
    section = DOC.read_text().split("## A minimal onnxruntime example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_example_needs_only_onnxruntime_and_numpy(demo_export, tmp_path):
    size = 128
    source = crop_and_resize(read_image(sample_source()), Box(0, 0, *read_image(sample_source()).shape[1::-1]), size)
    frames = [f for _, f in zip(range(4), iter_frames(sample_driving()))]
    driving = [crop_and_resize(f, Box(0, 0, f.shape[1], f.shape[0]), size) for f in frames]
    src = np.ascontiguousarray(source.transpose(2, 0, 1)[None], dtype=np.float32)
    drv = np.ascontiguousarray(np.stack(driving).transpose(0, 3, 1, 2), dtype=np.float32)
    np.save(tmp_path / "source.npy", src)
    np.save(tmp_path / "driving.npy", drv)
    code = example_code()
    assert len(code.strip().splitlines()) <= 32
    (tmp_path / "example.py").write_text(code)
    result = subprocess.run([sys.executable, "-I", "-c", GUARD, str(tmp_path / "example.py"), str(demo_export),
                             str(tmp_path / "source.npy"), str(tmp_path / "driving.npy"), str(tmp_path / "out.npy")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = result.stdout.split("IMPORTED", 1)[1]
    assert "onnxruntime" in imported and "numpy" in imported
    assert not {"dagan", "torch", "scipy"} & set(eval(imported))
    out = np.load(tmp_path / "out.npy")
    with torch.no_grad():
        reference = DaGAN.from_pretrained(DEMO_MODEL).animate(torch.from_numpy(src), torch.from_numpy(drv))
    assert out.shape == (4, 3, size, size)
    assert_parity(out, reference, "example vs DaGAN.animate", image=True)
