"""Writes the .pt2 fuzzer's seed corpus (tests/fuzz/corpus/pt2/): small programs saved by
torch.export.save, as the harness reads them — each record of the archive after a line
"==> NAME <==" (tests/fuzz/fuzz_pt2.cpp). Programs: a conv + batch norm + ReLU with a
grid_sample and a reduction (parameters, buffers, lifted constants, several operators),
and one with a dynamic height and width (symbolic sizes).
Usage: python tests/fuzz/make_pt2_seeds.py  (the project's venv: torch)"""
import os
import tempfile
import zipfile

import torch
from torch import nn

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pt2")
os.makedirs(out, exist_ok=True)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.register_buffer("grid", torch.zeros(1, 4, 4, 2))

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        s = nn.functional.grid_sample(y, self.grid + 0.25, align_corners=False)
        return s + y.mean() * torch.tensor(2.0)


def write(name, program):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "seed.pt2")
        torch.export.save(program, path)
        with zipfile.ZipFile(path) as z, open(os.path.join(out, name), "wb") as f:
            for info in z.infolist():
                record = info.filename.split("/", 1)[1]
                if record.startswith("data/sample_inputs") or record.startswith(".data/serialization_id"):
                    continue  # not read by DeformScope: left out to keep the seed small
                f.write(b"==> " + record.encode() + b" <==\n" + z.read(info) + b"\n")


torch.manual_seed(0)
net = Net().eval()
x = torch.rand(1, 1, 4, 4)
write("static.txt", torch.export.export(net, (x,)))


class Dyn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return nn.functional.interpolate(self.conv(x), size=(x.shape[2] * 2, x.shape[3] * 2), mode="bilinear")


h = torch.export.Dim("h", min=2, max=64)
write("dynamic.txt", torch.export.export(Dyn().eval(), (torch.rand(1, 1, 8, 8),), dynamic_shapes={"x": {2: h, 3: h}}))
print("wrote", sorted(os.listdir(out)), [os.path.getsize(os.path.join(out, n)) for n in sorted(os.listdir(out))])
