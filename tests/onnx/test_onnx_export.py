"""`dagan export`: the graph contract (opset, domains, 4-D GridSample, dynamic batch, checker),
config.json, atomic writes, and every bad input as one clear line."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dagan.cli.main import main
from dagan.config import get_preset
from dagan.errors import DaganError
from dagan.inference.runtime import Runtime
from dagan.models import DaGAN
from dagan.assets import DEMO_MODEL
from dagan.onnx import DEFAULT_OPSET, OnnxModel, export_onnx, is_onnx_dir
from dagan.onnx import export as onnx_export
from dagan.onnx.graphs import build_graphs, graph_specs
from dagan.onnx.runtime import execution_providers


def test_graphs_meet_the_deployment_contract(demo_export):
    doc = json.loads((demo_export / "config.json").read_text())
    assert doc["format"] == "dagan-onnx" and doc["opset"] >= 16
    assert set(doc["graphs"]) == {"keypoints", "source", "generate"}
    grid_samples = 0
    for name, entry in doc["graphs"].items():
        model = onnx.load(str(demo_export / entry["file"]))
        onnx.checker.check_model(model, full_check=True)
        assert {(o.domain, o.version) for o in model.opset_import} == {("", doc["opset"])}
        assert not model.functions
        assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
        assert not {"Inverse", "Det"} & {n.op_type for n in model.graph.node}
        inferred = onnx.shape_inference.infer_shapes(model)
        ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in inferred.graph.value_info}
        for node in model.graph.node:
            if node.op_type == "GridSample":
                grid_samples += 1
                assert ranks[node.input[0]] == 4 and ranks[node.input[1]] == 4
        assert [i.name for i in model.graph.input] == [s["name"] for s in entry["inputs"]]
        assert [o.name for o in model.graph.output] == [s["name"] for s in entry["outputs"]]
        for spec, value in zip(entry["inputs"], model.graph.input):
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            assert dims == spec["shape"], (name, spec["name"], dims)
            assert spec["dtype"] == "float32" and len(spec["range"]) == 2
    assert grid_samples == 2  # the sparse motions and the feature warp (the image warp feeds only SPADE)


def test_batch_axis_is_dynamic(demo_export):
    session = ort.InferenceSession(str(demo_export / "keypoints.onnx"), providers=["CPUExecutionProvider"])
    frames = np.random.default_rng(0).random((3, 3, 128, 128), dtype=np.float32)
    one = session.run(None, {"frames": frames[:1]})
    three = session.run(None, {"frames": frames})
    assert three[0].shape == (3, 1, 128, 128) and three[1].shape == (3, 10, 2) and three[2].shape == (3, 10, 2, 2)
    for a, b in zip(one, three):
        np.testing.assert_allclose(a[0], b[0], atol=1e-5)


def test_export_cli_refuses_an_existing_directory_and_replaces_it_with_force(cli_export, tmp_path):
    out = Path(cli_export["out"])
    assert cli_export["refused"] == 2 and "already exists; pass --force" in cli_export["refused_err"]
    assert cli_export["refused_err"].count("\n") == 1 and cli_export["kept"] == "mine"
    assert cli_export["forced"] == 0 and not (out / "keep.txt").exists() and is_onnx_dir(out)
    assert [p.name for p in Path(cli_export["root"]).iterdir()] == ["demo"]  # no temporary or old directory left
    # the export is deterministic: one graph exported again is the same bytes (a whole export is tens of seconds)
    model = DaGAN.from_pretrained(DEMO_MODEL)
    again = tmp_path / "keypoints.onnx"
    onnx_export.export_graph(build_graphs(model)["keypoints"], graph_specs(model)["keypoints"], again, DEFAULT_OPSET)
    graphs = json.loads((out / "config.json").read_text())["graphs"]
    assert onnx_export.sha256(again) == graphs["keypoints"]["sha256"]


@pytest.mark.parametrize("args,message", [
    (["--opset", "13"], "--opset 13 is not supported"),
    (["--opset", "17"], "--opset 17 is not supported"),
    (["--format", "tflite"], "--format 'tflite' is not supported"),
])
def test_unsupported_options_are_one_line_and_write_nothing(args, message, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["export", "--model", "preset:tiny", "-o", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_exporting_an_onnx_directory_is_refused(demo_export, tmp_path, capsys):
    assert main(["export", "--model", str(demo_export), "-o", str(tmp_path / "again")]) == 2
    assert "already an ONNX model directory" in capsys.readouterr().err


def test_a_failed_export_leaves_nothing_and_keeps_the_old_directory(monkeypatch, tmp_path):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "old.txt").write_text("old")
    calls = []

    def fail_on_second(module, specs, path, opset):  # the first graph is half-written, the second interrupted
        calls.append(path.name)
        path.write_bytes(b"partial")
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "export_graph", fail_on_second)
    monkeypatch.setattr(onnx_export, "check_graph", lambda path, opset: None)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(DaGAN(get_preset("tiny")).eval(), out, force=True)
    assert calls == ["keypoints.onnx", "source.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["exported"] and (out / "old.txt").read_text() == "old"


def test_a_graph_that_breaks_the_contract_is_refused(tmp_path):
    """check_graph catches a non-default domain and a 5-D GridSample (TensorRT and OpenVINO lack it)."""
    from onnx import TensorProto, helper

    def save(node, x_shape, grid_shape, domain_opset=()):
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
                                                helper.make_tensor_value_info("grid", TensorProto.FLOAT, grid_shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, x_shape)])
        opsets = [helper.make_opsetid("", 20), *domain_opset]
        path = tmp_path / f"{node.op_type}{len(x_shape)}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
        return path

    onnx_export.check_graph(save(helper.make_node("GridSample", ["x", "grid"], ["y"]), ["b", 3, 8, 8], ["b", 8, 8, 2]),
                            20)
    five = save(helper.make_node("GridSample", ["x", "grid"], ["y"]), ["b", 3, 4, 8, 8], ["b", 4, 8, 8, 3])
    with pytest.raises(DaganError, match="not 4-D"):
        onnx_export.check_graph(five, 20)
    foreign = save(helper.make_node("Inverse", ["x"], ["y"], domain="com.microsoft"), ["b", 2, 2], ["b", 2, 2],
                   [helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(DaganError, match="non-default operators"):
        onnx_export.check_graph(foreign, 20)
    with pytest.raises(DaganError, match="opset"):
        onnx_export.check_graph(five, 18)


@pytest.mark.parametrize("damage", ["missing", "truncated", "swapped", "other-config", "bad-json"])
def test_a_damaged_onnx_directory_is_one_line_naming_the_file(damage, demo_export, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(demo_export, broken)
    config = broken / "config.json"
    if damage == "missing":
        (broken / "generate.onnx").unlink()
        expected = "missing generate.onnx"
    elif damage == "truncated":
        data = (broken / "keypoints.onnx").read_bytes()
        (broken / "keypoints.onnx").write_bytes(data[: len(data) // 2])
        expected = "keypoints.onnx has"
    elif damage == "swapped":  # same size is not enough: the hash must match
        data = bytearray((broken / "source.onnx").read_bytes())
        data[-1] ^= 1
        (broken / "source.onnx").write_bytes(bytes(data))
        expected = "source.onnx does not match the sha256"
    elif damage == "other-config":
        doc = json.loads(config.read_text())
        doc["model"]["image_size"] = 256
        config.write_text(json.dumps(doc))
        expected = "a different config"
    else:
        config.write_text(config.read_text()[:100])
        expected = "config.json is not valid JSON"
    with pytest.raises(DaganError, match=expected.replace("(", r"\(")):
        OnnxModel(broken)
    assert main(["animate", "--quiet", "--model", str(broken), "-o", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_devices_and_precisions(demo_export):
    model = OnnxModel(demo_export)
    with pytest.raises(DaganError, match="onnxruntime-gpu"):
        execution_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(DaganError, match="onnxruntime-gpu"):
        execution_providers("tensorrt:1", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(DaganError, match="unknown device 'mps'"):
        model.make_runtime("mps", "fp32")
    with pytest.raises(DaganError, match="run in fp32"):
        model.make_runtime("cpu", "bf16")
    assert execution_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert execution_providers("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == \
        [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert execution_providers("tensorrt", ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                            "CPUExecutionProvider"])[:2] == \
        [("TensorrtExecutionProvider", {"device_id": 0}), ("CUDAExecutionProvider", {"device_id": 0})]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(DaganError, match="install onnxruntime-gpu"):
            model.make_runtime("cuda", "fp32")
    runtime = model.make_runtime("cpu", "fp32", threads=1, optimization="basic")
    assert runtime.providers == ["CPUExecutionProvider"] and runtime.device == torch.device("cpu")
    assert isinstance(runtime, Runtime)
    with pytest.raises(DaganError, match="must have shape"):
        runtime.driving_keypoints(torch.rand(1, 3, 64, 64))
    with pytest.raises(DaganError, match="must be in"):
        runtime.driving_keypoints(torch.full((1, 3, 128, 128), 2.0))
