"""Writes one network that uses 43 of the 81 ONNX operators DeformScope translates, exported
at several opsets by both of torch.onnx's exporters, and onnxruntime's output for each.

`OpsNet` chains convolutions (grouped, dilated, transposed), batch norm, the activations
(ReLU, LeakyReLU, HardSigmoid, HardSwish, Clip, Sigmoid, GELU), Split/Concat/Slice/Pad
(reflect and constant), max and average pools, nearest and bilinear Resize, an attention
block (Reshape, Transpose, MatMul, Softmax), a squeeze-excite gate (GlobalAveragePool,
Flatten, Gemm, Unsqueeze), a grid_sample on an affine grid (opset 16+), a DCNv2 (opset
19+), layer norm (a LayerNormalization node at opset 17+) and Where/Sqrt/Abs/Pow/ReduceMean.
Input x [1, 3, 32, 32].

Usage: make_onnx_ops.py OUTDIR   (needs onnx, onnxscript and onnxruntime)

Written into OUTDIR:
  ops_input.npy           x
  ops_eager.npy           the eager module's output (for each file: the module built for its opset)
  ops_<name>.onnx         opset11 / opset13 / opset17 (TorchScript-based exporter), opset19 (the same, with
                          DeformConv), opset22 (torch.onnx.export(dynamo=True), with DeformConv)
  ops_<name>_ort.npy      onnxruntime's output for x
  ops_<name>_eager.npy    PyTorch's output for x
  ops_<name>.pt           the same module traced to TorchScript (the layer list to compare with)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision  # noqa: F401
from torch import Tensor
from torchvision.ops import DeformConv2d


class OpsNet(nn.Module):
    def __init__(self, grid: bool, dcn: bool) -> None:
        super().__init__()
        self.grid, self.dcn_on = grid, dcn
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4)
        self.deconv = nn.ConvTranspose2d(12, 12, 4, stride=2, padding=1)
        self.fc = nn.Linear(12, 12)
        self.offset = nn.Conv2d(12, 18, 3, padding=1)
        self.mask = nn.Conv2d(12, 9, 3, padding=1)
        self.dcn = DeformConv2d(12, 12, 3, padding=1)
        self.head = nn.Conv2d(12, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn1(self.conv1(x)))
        b = F.leaky_relu(self.grouped(a), 0.1)
        c = torch.clamp(F.hardsigmoid(b) * F.hardswish(a) * 6.0, 0.0, 6.0)
        s1, s2 = c.chunk(2, dim=1)
        d = torch.cat([s2, s1 * 2.0 - 1.0, s1 / 3.0], 1)
        d = F.pad(d[:, :, 1:-1, 1:-1], (1, 1, 1, 1), mode="reflect")
        d = F.pad(d, (0, 0, 0, 0), value=0.5)
        e = F.max_pool2d(d, 3, 2, 1) + F.avg_pool2d(d, 2, 2, count_include_pad=False)
        g = F.interpolate(e, scale_factor=2.0, mode="nearest") + \
            F.interpolate(e, size=(32, 32), mode="bilinear", align_corners=False) + self.deconv(e)
        t = g.reshape(1, 12, 32 * 32).transpose(1, 2)
        att = torch.softmax(torch.matmul(t, t.transpose(1, 2)) * (12 ** -0.5), dim=-1)
        h = torch.matmul(att, t).transpose(1, 2).reshape(1, 12, 32, 32)
        gate = torch.sigmoid(self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)))
        h = h * gate.unsqueeze(-1).unsqueeze(-1)
        if self.grid:
            theta = torch.tensor([[[0.9, 0.1, 0.05], [-0.1, 0.9, 0.0]]])
            grid = F.affine_grid(theta, [1, 12, 32, 32], align_corners=False)
            h = F.grid_sample(h, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.dcn_on:
            h = h + self.dcn(h, self.offset(h), torch.sigmoid(self.mask(h)))
        ln = F.layer_norm(h.permute(0, 2, 3, 1), (12,)).permute(0, 3, 1, 2)
        out = self.head(F.gelu(ln) + torch.sqrt(h.abs() + 1.0) - h.pow(2.0).mean(dim=1, keepdim=True))
        return torch.where(out > 0, out, out * 0.5)


def make(grid: bool, dcn: bool) -> OpsNet:
    torch.manual_seed(3)
    net = OpsNet(grid, dcn)
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-0.2, 0.2)
        net.bn1.running_var.uniform_(0.5, 1.5)
        net.offset.weight.normal_(0, 0.1)
        net.offset.bias.uniform_(-1.0, 1.0)
    return net.eval()


def write(out: str) -> list:
    import onnx
    import onnxruntime
    from onnxscript import opset22
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sample_models"))
    from export_onnx import deform_conv_symbolic, deform_conv_translation

    os.makedirs(out, exist_ok=True)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    np.save(os.path.join(out, "ops_input.npy"), x.numpy())
    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", deform_conv_symbolic, 19)
    written = []
    for name, opset, dynamo in (("opset11", 11, False), ("opset13", 13, False), ("opset17", 17, False),
                                ("opset19", 19, False), ("opset22", 22, True)):
        net = make(grid=opset >= 16, dcn=opset >= 19)
        path = os.path.join(out, f"ops_{name}.onnx")
        if dynamo:
            table = {torch.ops.torchvision.deform_conv2d.default: deform_conv_translation(opset22)}
            program = torch.onnx.export(net, (x,), dynamo=True, opset_version=opset, custom_translation_table=table,
                                        verbose=False)
            onnx.save_model(program.model_proto, path)
        else:
            torch.onnx.export(net, (x,), path, dynamo=False, opset_version=opset, input_names=["x"])
        with torch.no_grad():
            np.save(os.path.join(out, f"ops_{name}_eager.npy"), net(x).numpy())
            torch.jit.save(torch.jit.trace(net, (x,)), os.path.join(out, f"ops_{name}.pt"))
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        np.save(os.path.join(out, f"ops_{name}_ort.npy"),
                session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        written.append(name)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print("wrote", ", ".join(write(sys.argv[1])))
