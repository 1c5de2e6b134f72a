"""erf-average --protocol replknet against RepLKNet's published ERF scripts.

RepLKNet (Ding et al., CVPR 2022) ships erf/visualize_erf.py and erf/analyze_erf.py; a
figure made with DeformScope's --protocol replknet must be one that could sit next to
theirs. This test re-implements their arithmetic here, in plain PyTorch/numpy on the
same images and model:
  - preprocessing: PIL image -> transforms.Resize((S, S), BICUBIC) -> ToTensor ->
    Normalize(ImageNet mean, std);
  - per image: out = model(x); r = relu(out[:, :, h//2, w//2]).sum(); g = d r / d x;
    map = relu(g).sum over batch and channels; images with a NaN map are skipped;
    the maps are averaged (timm's AverageMeter);
  - analysis: data = log10(map + 1) / max; for t in 0.2, 0.3, 0.5, 0.99 the smallest
    centred square (side 2i+1) whose share exceeds t, and its area ratio.
and checks the CLI's erf_average.npy and result.json against it, at RepLKNet's own 1024 x
1024 and at a smaller size (downsampling and upsampling both), and that two shards merged
give the one-run numbers.

Usage: test_replknet_protocol.py CLI WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms
from torchvision.ops import DeformConv2d

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Block(nn.Module):
    """A residual block whose second conv is DCNv2 (offsets and mask from a conv)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.offset = nn.Conv2d(c, 27, 3, padding=1)
        self.dcn = DeformConv2d(c, c, 3, padding=1)
        nn.init.normal_(self.offset.weight, std=0.05)

    def forward(self, x):
        y = F.relu(self.conv1(x))
        om = self.offset(y)
        o, m = om[:, :18], torch.sigmoid(om[:, 18:])
        return F.relu(x + self.dcn(y, o, m))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.block = Block(8)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Conv2d(8, 6, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.block(x)
        x = F.relu(self.down(x))
        return self.head(x)


def their_transform(size):
    return transforms.Compose([transforms.Resize((size, size), interpolation=Image.BICUBIC),
                               transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def their_average(model, files, size):
    """visualize_erf.py's loop: one image at a time, NaN maps skipped, AverageMeter's mean."""
    t = their_transform(size)
    total, count = None, 0
    for f in files:
        samples = t(Image.open(f).convert("RGB")).unsqueeze(0)
        samples.requires_grad = True
        outputs = model(samples)
        h, w = outputs.shape[2], outputs.shape[3]
        central = F.relu(outputs[:, :, h // 2, w // 2]).sum()
        grad = torch.autograd.grad(central, samples)[0]
        m = F.relu(grad).sum((0, 1)).numpy()
        if np.isnan(np.sum(m)):
            continue
        total = m.astype(np.float64) if total is None else total + m
        count += 1
    return (total / count).astype(np.float32), count


def their_ratios(data):
    """analyze_erf.py: log10(1 + x), divided by its max, centred squares."""
    data = np.log10(data + 1)
    data = data / np.max(data)
    h, w = data.shape
    out = []
    for thresh in [0.2, 0.3, 0.5, 0.99]:
        found = None
        for i in range(1, h // 2):
            area = data[h // 2 - i:h // 2 + 1 + i, w // 2 - i:w // 2 + 1 + i]
            if np.sum(area) / np.sum(data) > thresh:
                found = (i * 2 + 1, (i * 2 + 1) / h * (i * 2 + 1) / w)
                break
        out.append(found)
    return out


def run(cli, *args):
    p = subprocess.run([cli, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def check(cli, work, model, model_path, files, images, size, extra, label):
    out = os.path.join(work, f"out_{label}")
    shutil.rmtree(out, ignore_errors=True)
    stdout = run(cli, "erf-average", "--model", model_path, "--images", images, "--out", out, "--layer", "head",
                 "--protocol", "replknet", "--no-figures", "--batch", "2", *extra)
    ours = np.load(os.path.join(out, "erf_average.npy"))
    doc = json.load(open(os.path.join(out, "result.json")))
    ref, count = their_average(model, files, size)
    assert ours.shape == ref.shape == (size, size), (label, ours.shape, ref.shape)
    assert doc["images"] == count, (label, doc["images"], count)
    assert doc["protocol"] == "replknet"
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    print(f"{label}: {count} images at {size} x {size}, max |ours - theirs| / max = {err:.2e}")
    assert err < 1e-4, f"{label}: the averaged map differs from RepLKNet's arithmetic by {err:.2e}"
    # Their ratios on their map, ours as result.json reports them (computed from our map).
    theirs = their_ratios(ref)
    mine = doc["replknet"]["area_ratios"]
    for t, found, got in zip([0.2, 0.3, 0.5, 0.99], theirs, mine):
        assert got["threshold"] == t
        if found is None:
            assert got["side_length"] is None, (label, t, got)
        else:
            assert got["side_length"] == found[0], (label, t, got, found)
            assert abs(got["area_ratio"] - found[1]) < 1e-12, (label, t, got, found)
        print(f"  threshold {t}: side {got['side_length']}, area ratio {got['area_ratio']} (theirs {found})")
    assert f"RepLKNet area ratio at threshold 0.2" in stdout
    return out


def main():
    cli, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    images = os.path.join(work, "images")
    os.makedirs(images)
    torch.manual_seed(3)
    rng = np.random.default_rng(7)
    files = []
    # Textured images of several sizes and aspect ratios (RepLKNet resizes without keeping the aspect).
    for k, (h, w) in enumerate([(300, 220), (160, 200), (97, 131), (256, 256), (75, 90)]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = 127 + 60 * np.sin(xx / (5 + k)) * np.cos(yy / (7 + k))
        img = np.clip(base[..., None] + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
        path = os.path.join(images, f"img{k}.png")
        Image.fromarray(img).save(path)
        files.append(path)
    files.sort()
    model = Net().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    scripted = torch.jit.script(model)
    model_path = os.path.join(work, "replknet_net.pt")
    scripted.save(model_path)

    # RepLKNet's own size (1024 x 1024, the default under --protocol replknet): every image grows.
    check(cli, work, scripted, model_path, files[:3], images, 1024, ["--limit", "3"], "default")
    # A smaller size: images shrink (Pillow's widened filter) and grow.
    one = check(cli, work, scripted, model_path, files, images, 120, ["--input-size", "120", "120"], "size120")

    # Two shards merged: exactly the one-run numbers.
    parts = []
    for k in (1, 2):
        d = os.path.join(work, f"shard{k}")
        shutil.rmtree(d, ignore_errors=True)
        run(cli, "erf-average", "--model", model_path, "--images", images, "--out", d, "--layer", "head",
            "--protocol", "replknet", "--no-figures", "--input-size", "120", "120", "--shard", f"{k}/2")
        parts.append(d)
    merged = os.path.join(work, "merged")
    shutil.rmtree(merged, ignore_errors=True)
    run(cli, "merge", "--inputs", *parts, "--out", merged, "--no-figures")
    a = np.load(os.path.join(one, "erf_average.npy")).astype(np.float64)
    b = np.load(os.path.join(merged, "erf_average.npy")).astype(np.float64)
    assert np.abs(a - b).max() <= 1e-6 * np.abs(a).max(), "merged shards differ from one run"
    ja = json.load(open(os.path.join(one, "result.json")))
    jb = json.load(open(os.path.join(merged, "result.json")))
    assert jb["protocol"] == "replknet" and ja["replknet"]["area_ratios"] == jb["replknet"]["area_ratios"], (ja, jb)
    print("2 shards merged = one run")

    # Two workers (one per device; here two CPU workers), their sums added: one run's average.
    w = os.path.join(work, "workers")
    shutil.rmtree(w, ignore_errors=True)
    run(cli, "erf-average", "--model", model_path, "--images", images, "--out", w, "--layer", "head",
        "--protocol", "replknet", "--no-figures", "--input-size", "120", "120", "--devices", "cpu,cpu")
    c = np.load(os.path.join(w, "erf_average.npy")).astype(np.float64)
    assert np.abs(a - c).max() <= 1e-6 * np.abs(a).max(), "two workers differ from one"
    jc = json.load(open(os.path.join(w, "result.json")))
    assert jc["images"] == ja["images"] and jc["replknet"]["area_ratios"] == ja["replknet"]["area_ratios"]
    print("2 workers = 1 worker")

    # The protocol fixes the response: asking for another is refused with exit code 2.
    p = subprocess.run([cli, "erf-average", "--model", model_path, "--images", images, "--out",
                        os.path.join(work, "bad"), "--protocol", "replknet", "--signed"], capture_output=True, text=True)
    assert p.returncode == 2 and "--protocol replknet" in p.stderr, (p.returncode, p.stderr)
    print("PASS")


if __name__ == "__main__":
    main()
