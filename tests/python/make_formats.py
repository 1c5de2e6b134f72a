"""Writes one network in the formats DeformScope opens, and damaged archives.

The network (`FormatNet`) has the deformable layers people export: a DCNv1 and a
DCNv2 (torchvision's DeformConv2d, each in a residual block with batch norm) and a
flow warp (F.grid_sample on a meshgrid + predicted flow), then a 1x1 `head`.
Input x [1, 3, 40, 48]; DeformScope's tests compare what it reads from each file.

Usage: make_formats.py OUTDIR

Written into OUTDIR:
  net.pt                 TorchScript (torch.jit.script), with a deformscope.json extra file
  net.pt2                torch.export.save of the same module, deformscope.json as an extra file
  dynamic.pt2            the same module exported with a dynamic height and width (16 to 128)
  net_input.npy          x, float32 [1, 3, 40, 48]
  net_output.npy         the eager module's output for x, float32 [1, 4, 40, 48]
  bad_truncated.pt2      net.pt2 cut to its first half
  bad_not_an_archive.pt2 text
  bad_newer_schema.pt2   net.pt2 with models/model.json's schema major raised to 99
  bad_huge_size.pt2, bad_float_dtype.pt2  a weight whose extent overflows 64 bits; a dtype code 1e30
  bad_unregistered.pt2   a model calling torchvision's roi_pool (an operator DeformScope does not register;
                         it provides roi_align)
  net.onnx               torch.onnx.export (the torch.export-based exporter), opset 22; torchvision's
                         deform_conv2d written as ONNX DeformConv by a translation function (the exporter has
                         none of its own); deformscope.json in metadata_props
  net_opset19.onnx       the TorchScript-based exporter (dynamo=False), opset 19, DeformConv from a registered
                         symbolic; node names "/layer1/layer1.0/dcn/DeformConv"
  nometa.onnx            net.onnx without metadata (its input size comes from the graph's input)
  dynamic.onnx           net.onnx exported with a dynamic height and width (Shape/Gather/... computed at run time)
  external.onnx          net.onnx with its weights in external.onnx.data (as models over 2 GB are saved)
  net_ort_output.npy     onnxruntime's output of net.onnx for x (a second reference)
  bad_truncated.onnx     net.onnx cut to its first half
  bad_not_onnx.onnx      a protobuf that is not an ONNX model (a FileDescriptorProto)
  bad_newer_opset.onnx   net.onnx claiming opset 23
  bad_unsupported.onnx   a graph with a TopK node (an operator DeformScope does not translate)
  bad_missing_data.onnx  external.onnx's graph without its .data file
  bad_escaping_data.onnx, bad_absolute_data.onnx  external data named outside the model's folder
  bad_overflow_dims.onnx an initialiser whose dimensions' product overflows 64 bits
  ops_*                  make_onnx_ops.py's network at opsets 11, 13, 17, 19 and 22, with onnxruntime's outputs
  formats_expect.json    what the tests check: node, layer names and kinds
The ONNX files need onnx, onnxscript and onnxruntime (tools/bootstrap installs them in the venv);
without them only the TorchScript and .pt2 files are written and formats_expect.json says "onnx": false.
"""
import json
import os
import sys
import zipfile
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision  # noqa: F401  (registers torchvision::deform_conv2d)
from torch import Tensor
from torchvision.ops import DeformConv2d, roi_pool

H, W = 40, 48
METADATA = {"input_size": [H, W], "suggested_layer": "head", "description": "formats test network"}


class DeformBlock(nn.Module):
    """x + relu(bn(dcn(x))): offsets (and a sigmoid mask for DCNv2) from 3x3 convs."""

    def __init__(self, channels: int, modulated: bool) -> None:
        super().__init__()
        self.modulated = modulated
        self.offset = nn.Conv2d(channels, 18, 3, padding=1)
        self.mask = nn.Conv2d(channels, 9, 3, padding=1)
        self.dcn = DeformConv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        offset = self.offset(x)
        if self.modulated:
            y = self.dcn(x, offset, torch.sigmoid(self.mask(x)))
        else:
            y = self.dcn(x, offset)
        return x + F.relu(self.bn(y))


class FlowWarp(nn.Module):
    """BasicVSR's flow_warp: grid = base grid + flow, normalised, grid_sample(align_corners=True)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.flow = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        flow = self.flow(x).permute(0, 2, 3, 1) * 2.0
        gy, gx = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                                torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
        grid = torch.stack((gx, gy), 2)[None] + flow
        gx_n = 2.0 * grid[..., 0] / max(w - 1, 1) - 1.0
        gy_n = 2.0 * grid[..., 1] / max(h - 1, 1) - 1.0
        return F.grid_sample(x, torch.stack((gx_n, gy_n), 3), mode="bilinear", padding_mode="zeros",
                             align_corners=True)


class FormatNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(DeformBlock(8, modulated=False), DeformBlock(8, modulated=True))
        self.warp = FlowWarp(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.warp(self.layer1(F.relu(self.stem(x)))))


class RoiNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        boxes = torch.tensor([[0.0, 2.0, 2.0, 20.0, 20.0]], dtype=x.dtype)
        return roi_pool(self.stem(x), boxes, [7, 7])


def make() -> FormatNet:
    torch.manual_seed(11)
    net = FormatNet()
    with torch.no_grad():
        for block in net.layer1:
            # Offsets of a few pixels that vary over the map, as a trained DCN's do.
            block.offset.weight.normal_(0, 0.3)
            block.offset.bias.uniform_(-1.5, 1.5)
            block.bn.running_mean.uniform_(-0.2, 0.2)
            block.bn.running_var.uniform_(0.5, 1.5)
        net.warp.flow.weight.normal_(0, 0.2)
    return net.eval()


def rewrite(src: str, dst: str, edit) -> None:
    """Copies the zip archive src to dst, passing each member through edit(name, data)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info, edit(info.filename, zin.read(info.filename)))


def write_onnx(net: nn.Module, x: Tensor, meta: str, out: str) -> bool:
    try:
        import onnx
        import onnxruntime
        from google.protobuf import descriptor_pb2
        from onnxscript import opset22
    except ImportError:
        return False
    # The DeformConv translations users copy (sample_models/export_onnx.py).
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sample_models"))
    from export_onnx import deform_conv_symbolic, deform_conv_translation
    table = {torch.ops.torchvision.deform_conv2d.default: deform_conv_translation(opset22)}

    def with_metadata(model):
        model.metadata_props.add(key="deformscope.json", value=meta)
        return model

    path = os.path.join(out, "net.onnx")
    program = torch.onnx.export(net, (x,), dynamo=True, opset_version=22, custom_translation_table=table,
                                verbose=False)
    onnx.save_model(program.model_proto, os.path.join(out, "nometa.onnx"))
    onnx.save_model(with_metadata(program.model_proto), path)
    dim_h = torch.export.Dim("h", min=16, max=128)
    dim_w = torch.export.Dim("w", min=16, max=128)
    dynamic = torch.onnx.export(net, (x,), dynamo=True, opset_version=22, custom_translation_table=table,
                                dynamic_shapes={"x": {2: dim_h, 3: dim_w}}, verbose=False)
    onnx.save_model(dynamic.model_proto, os.path.join(out, "dynamic.onnx"))
    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", deform_conv_symbolic, 19)
    legacy = os.path.join(out, "net_opset19.onnx")
    torch.onnx.export(net, (x,), legacy, dynamo=False, opset_version=19, input_names=["x"])
    onnx.save_model(with_metadata(onnx.load(legacy)), legacy)
    onnx.save_model(onnx.load(path), os.path.join(out, "external.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="external.onnx.data", size_threshold=0)

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    np.save(os.path.join(out, "net_ort_output.npy"), session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])

    data = open(path, "rb").read()
    with open(os.path.join(out, "bad_truncated.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(os.path.join(out, "bad_not_onnx.onnx"), "wb") as f:
        f.write(descriptor_pb2.FileDescriptorProto(name="not_a_model.proto", package="example").SerializeToString())
    newer = onnx.load(path)
    newer.opset_import[0].version = 23
    onnx.save_model(newer, os.path.join(out, "bad_newer_opset.onnx"))
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Conv", ["x", "w"], ["y"], name="stem", pads=[1, 1, 1, 1]),
         h.make_node("TopK", ["y", "k"], ["values", "indices"], name="pick", axis=1)],
        "topk", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, H, W])],
        [h.make_tensor_value_info("values", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w"),
         onnx.numpy_helper.from_array(np.array([2], np.int64), "k")])
    onnx.save_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 19)]),
                    os.path.join(out, "bad_unsupported.onnx"))
    missing = onnx.load(os.path.join(out, "external.onnx"), load_external_data=False)
    for t in missing.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "bad_missing_data.onnx.data"
    onnx.save_model(missing, os.path.join(out, "bad_missing_data.onnx"))
    # External data named outside the model's folder: refused, never read (ONNX's rule).
    for name, location in (("bad_escaping_data.onnx", "../external.onnx.data"),
                           ("bad_absolute_data.onnx", os.path.abspath(os.path.join(out, "external.onnx.data")))):
        escaping = onnx.load(os.path.join(out, "external.onnx"), load_external_data=False)
        for t in escaping.graph.initializer:
            for entry in t.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save_model(escaping, os.path.join(out, name))
    # Dimensions whose product overflows 64 bits: the old reader wrapped to 0 elements.
    wrap = onnx.load(os.path.join(out, "net.onnx"))
    first = wrap.graph.initializer[0]
    first.ClearField("raw_data")
    first.ClearField("float_data")
    first.dims[:] = [2 ** 32, 2 ** 32]
    onnx.save_model(wrap, os.path.join(out, "bad_overflow_dims.onnx"))
    # 43 of the translated operators, at five opsets (tests/python/make_onnx_ops.py).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_onnx_ops
    make_onnx_ops.write(out)
    return True


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    net = make()
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = net(x)
    np.save(os.path.join(out, "net_input.npy"), x.numpy())
    np.save(os.path.join(out, "net_output.npy"), y.numpy())
    meta = json.dumps(METADATA)

    scripted = torch.jit.script(net)
    torch.jit.save(scripted, os.path.join(out, "net.pt"), _extra_files={"deformscope.json": meta})
    program = torch.export.export(net, (x,))
    pt2 = os.path.join(out, "net.pt2")
    torch.export.save(program, pt2, extra_files={"deformscope.json": meta})
    # Each file gives the eager output back (the exporter's own check of what the tests compare).
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(os.path.join(out, "net.pt"))(x), y, atol=1e-5)
        assert torch.allclose(torch.export.load(pt2).module()(x), y, atol=1e-5)

    data = open(pt2, "rb").read()
    with open(os.path.join(out, "bad_truncated.pt2"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(os.path.join(out, "bad_not_an_archive.pt2"), "w") as f:
        f.write("this is not a torch.export archive\n")

    def newer(name: str, content: bytes) -> bytes:
        if name.endswith("models/model.json"):
            program_json = json.loads(content)
            program_json["schema_version"]["major"] = 99
            return json.dumps(program_json).encode()
        return content
    rewrite(pt2, os.path.join(out, "bad_newer_schema.pt2"), newer)

    # Damaged weight descriptions (what tests/fuzz/fuzz_pt2.cpp probes): a size whose extent
    # overflows 64 bits, and a dtype code that is not a whole number.
    def weights_edit(change):
        def edit(name: str, content: bytes) -> bytes:
            if name.endswith("data/weights/model_weights_config.json"):
                config = json.loads(content)
                change(next(iter(config["config"].values()))["tensor_meta"])
                return json.dumps(config).encode()
            return content
        return edit

    def huge(meta):
        meta["sizes"][0] = {"as_int": 2 ** 62}
        meta["strides"][0] = {"as_int": 4}

    def float_dtype(meta):
        meta["dtype"] = 1e30
    rewrite(pt2, os.path.join(out, "bad_huge_size.pt2"), weights_edit(huge))
    rewrite(pt2, os.path.join(out, "bad_float_dtype.pt2"), weights_edit(float_dtype))

    dim_h = torch.export.Dim("h", min=16, max=128)
    dim_w = torch.export.Dim("w", min=16, max=128)
    dynamic = torch.export.export(net, (x,), dynamic_shapes={"x": {2: dim_h, 3: dim_w}})
    torch.export.save(dynamic, os.path.join(out, "dynamic.pt2"))
    torch.export.save(torch.export.export(RoiNet().eval(), (x,)), os.path.join(out, "bad_unregistered.pt2"))

    onnx_written = write_onnx(net, x, meta, out)

    expect = {
        "onnx": onnx_written,
        "input_size": [H, W],
        "node": {"layer": "head", "y": 17, "x": 29, "channel": 2},
        "layers": {"stem": "conv", "layer1.0.dcn": "dcn_v1", "layer1.1.dcn": "dcn_v2", "head": "conv"},
        "flow_warp_layer_kind": "flow_warp",
    }
    with open(os.path.join(out, "formats_expect.json"), "w") as f:
        json.dump(expect, f, indent=1)
    print(f"wrote {out}: net.pt, net.pt2, dynamic.pt2 and 4 damaged or unsupported archives" +
          (", and the ONNX files" if onnx_written else "; no ONNX files (onnx, onnxscript or onnxruntime missing)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
