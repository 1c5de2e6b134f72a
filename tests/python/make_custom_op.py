"""Writes a model whose deformable layer is a lab's own custom TorchScript operator.

Usage: make_custom_op.py OUTDIR OPS_LIBRARY TESTLAB_LIBRARY

Mirrors how mmcv / DCNv4 models reach users: the deformable convolution is a
custom op (here testlab::planar_dcn, tests/support/testlab_ops.cpp: planar
offsets, stride/padding/dilation as int[2] arguments), so DeformScope must be
told how to read it. Writes into OUTDIR:
  custom_op.pt                 scripted; its deformscope.json declares the op with an adapter
  custom_op.deformscope.json   the side file naming the library that defines the op
  custom_op_expect.json, custom_op_input.npy, custom_op_erf.npy
                               what PyTorch computes for one node (tests/core/analysis/tst_samplers.cpp)
  undeclared_op.pt             the same model without an adapter (an unrecognised sampler)
  undeclared_op.deformscope.json  naming the library only
"""
import copy
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

NODE = {"layer": "head", "y": 13, "x": 18, "channel": 1}
ADAPTER = {"op": "testlab::planar_dcn", "input": 0, "weight": 1, "offset": 2, "mask": 3,
           "offset_layout": "planar", "stride": 4, "padding": 5, "dilation": 6}


class LabDcn(nn.Module):
    """A DCNv2 block calling the lab's custom op, inside a residual block."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = nn.Conv2d(8, 18, 3, padding=1)
        self.mask = nn.Conv2d(8, 9, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(8, 8, 3, 3) * 0.2)
        nn.init.normal_(self.offset.weight, 0.0, 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset(x)
        mask = torch.sigmoid(self.mask(x))
        y = torch.ops.testlab.planar_dcn(x, self.weight, offset, mask, [1, 1], [1, 1], [1, 1])
        return x + torch.relu(y)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = LabDcn()
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(torch.relu(self.stem(x))))


def expected(net: Net, x: torch.Tensor) -> dict:
    """Level-1 points of the lab's layer at the node, and the ERF, by autograd."""
    net = net.double()
    x = x.double().requires_grad_(True)
    feats = torch.relu(net.stem(x))
    offset = net.block.offset(feats)
    offset.retain_grad()
    mask = torch.sigmoid(net.block.mask(feats))
    y = torch.ops.testlab.planar_dcn(feats, net.block.weight, offset, mask, [1, 1], [1, 1], [1, 1])
    out = net.head(feats + torch.relu(y))
    r = out[0, NODE["channel"], NODE["y"], NODE["x"]]
    r.backward()
    points = []
    yy, xx = NODE["y"], NODE["x"]
    for k in range(9):
        dy, dx = offset[0, k, yy, xx].item(), offset[0, k + 9, yy, xx].item()
        gy, gx = offset.grad[0, k, yy, xx].item(), offset.grad[0, k + 9, yy, xx].item()
        points.append({"row": 0, "point": k, "level": 0, "y": yy - 1 + k // 3 + dy, "x": xx - 1 + k % 3 + dx,
                       "weight": float(np.hypot(gy, gx)), "clamped": False})
    return {"points": points, "erf": x.grad[0].abs().sum(0).numpy()}


def main() -> None:
    out, ops_lib, lab_lib = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    torch.ops.load_library(ops_lib)
    torch.ops.load_library(lab_lib)
    torch.manual_seed(5)
    net = Net().eval()
    x = torch.randn(1, 3, 32, 32)
    scripted = torch.jit.script(net)
    assert torch.allclose(scripted(x), net(x), atol=1e-5)
    meta = {"input_size": [32, 32], "custom_ops": [ADAPTER]}
    torch.jit.save(scripted, os.path.join(out, "custom_op.pt"), _extra_files={"deformscope.json": json.dumps(meta)})
    torch.jit.save(scripted, os.path.join(out, "undeclared_op.pt"),
                   _extra_files={"deformscope.json": json.dumps({"input_size": [32, 32]})})
    for name in ("custom_op", "undeclared_op"):
        with open(os.path.join(out, name + ".deformscope.json"), "w") as fh:
            json.dump({"libraries": [lab_lib]}, fh)
    e = expected(copy.deepcopy(net), x)
    np.save(os.path.join(out, "custom_op_input.npy"), x.numpy())
    np.save(os.path.join(out, "custom_op_erf.npy"), e["erf"])
    with open(os.path.join(out, "custom_op_expect.json"), "w") as fh:
        json.dump({"model": "custom_op.pt", "input": "custom_op_input.npy", "erf": "custom_op_erf.npy",
                   "kind": "dcn_v2", "node": NODE, "levels": 1, "points": e["points"]}, fh, indent=1)
    print(f"wrote custom_op.pt and undeclared_op.pt to {out}")


if __name__ == "__main__":
    main()
