"""Writes ONNX files (.onnx) of the sample models, after the C++ recipe — and shows how
to export a model with deformable convolutions to ONNX so DeformScope reads it.

ONNX has a DeformConv operator since opset 19 (the same offset layout as
torchvision's deform_conv2d), but torch.onnx has no translation of its own for
torchvision::deform_conv2d. Two are given here, one per exporter:

  deform_conv_translation(opset)   torch.onnx.export(..., dynamo=True,
                                   custom_translation_table={torch.ops.torchvision.deform_conv2d.default:
                                                             deform_conv_translation(onnxscript.opset22)})
  deform_conv_symbolic             torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d",
                                                                          deform_conv_symbolic, 19)
                                   then torch.onnx.export(..., dynamo=False, opset_version=19)

The recipe writes TorchScript; torch.onnx's TorchScript-based exporter takes a
ScriptModule as it is, so each file is exported with the second translation at
opset 19, its deformscope.json in the model's metadata_props. The script checks
that onnxruntime gives the TorchScript model's output back on a random image.

Usage: export_onnx.py MODEL.pt [MODEL.pt ...]    (writes MODEL.onnx next to each;
needs onnx, onnxscript and onnxruntime: tools/bootstrap puts them in the venv)
"""
import json
import sys

import torch
import torchvision  # noqa: F401  (registers torchvision::deform_conv2d)


def deform_conv_translation(opset):
    """torchvision::deform_conv2d as ONNX DeformConv, for torch.onnx.export's custom_translation_table."""

    def deform_conv2d(input, weight, offset, mask, bias, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                      dil_h: int, dil_w: int, n_weight_grps: int, n_offset_grps: int, use_mask: bool):
        attrs = dict(dilations=[dil_h, dil_w], group=n_weight_grps, offset_group=n_offset_grps,
                     pads=[pad_h, pad_w, pad_h, pad_w], strides=[stride_h, stride_w])
        if use_mask:
            return opset.DeformConv(input, weight, offset, bias, mask, **attrs)
        return opset.DeformConv(input, weight, offset, bias, **attrs)

    return deform_conv2d


def deform_conv_symbolic(g, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                         n_weight_grps, n_offset_grps, use_mask):
    """The same for torch.onnx's TorchScript-based exporter (dynamo=False), opset 19 or later."""
    from torch.onnx.symbolic_helper import _get_const
    ints = [_get_const(v, "i", "arg") for v in (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, n_weight_grps,
                                                  n_offset_grps)]
    sh, sw, ph, pw, dh, dw, groups, offset_groups = ints
    inputs = [input, weight, offset, bias] + ([mask] if _get_const(use_mask, "b", "use_mask") else [])
    return g.op("DeformConv", *inputs, strides_i=[sh, sw], pads_i=[ph, pw, ph, pw], dilations_i=[dh, dw],
                group_i=groups, offset_group_i=offset_groups)


def export(path: str) -> str:
    import onnx
    import onnxruntime

    extra = {"deformscope.json": ""}
    module = torch.jit.load(path, _extra_files=extra)
    meta = extra["deformscope.json"]
    if isinstance(meta, bytes):
        meta = meta.decode("utf-8")
    size = json.loads(meta).get("input_size", [128, 128]) if meta else [128, 128]
    x = torch.rand(1, 3, size[0], size[1], generator=torch.Generator().manual_seed(0))
    out = path[:-3] + ".onnx" if path.endswith(".pt") else path + ".onnx"
    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", deform_conv_symbolic, 19)
    torch.onnx.export(module, (x,), out, dynamo=False, opset_version=19, input_names=["x"])
    model = onnx.load(out)
    if meta:
        model.metadata_props.add(key="deformscope.json", value=meta)
    onnx.save_model(model, out)
    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    with torch.no_grad():
        expected = module(x)
    err = (got - expected).abs().max().item()
    assert err < 1e-4, f"{out}: onnxruntime's output differs from the TorchScript model's by {err}"
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    for path in argv[1:]:
        print("wrote", export(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
