#!/usr/bin/env python3
"""RoI analysis (`analyze --roi x0,y0,x1,y1 [--bin i,j]`), checked from outside.

The test writes three small detectors the way detection code writes them: a backbone
with a DCNv2 layer (torchvision's DeformConv2d) inside a residual block, and a RoI head
on its stride-4 features taking forward(image, rois):
  - roi_regular  (scripted): torchvision.ops.roi_align(aligned=True), the regular twin;
  - roi_legacy   (traced):   roi_align(aligned=False), torchvision's older box rule;
  - roi_dcn_v1   (traced):   DCNv1's deformable RoI pooling, offsets from an fc layer on a
                             regular RoI pooling (deformscope::deform_roi_pool, gamma 0.1);
  - roi_dcn_v2   (scripted): DCNv2's modulated form (offsets and a sigmoid mask per bin).
Every module is small and randomly initialised (offsets scaled so bins move visibly).
It then runs deformscope-cli and checks against this script's own arithmetic:
  - `info`: the RoI layers are read as roi_pool / deform_roi_pool with their bins,
    spatial scale and sampling ratio, and the offset branch as the offset source;
  - `--bin i,j`: the bin's reads (level 1 of the sampling trace) are exactly where mmcv's
    arithmetic puts them, moved by the bin's offset, each weighted Σ_c |∂r/∂bin| · m / reads;
  - without --bin: the node is the whole RoI, level 1 holds every bin's reads, result.json
    lists each bin's effective location, and the ERF is the gradient of the pooled features
    (autograd here); with --response class:K (K the class PyTorch predicts) the node is the
    head's output and the ERF that score's gradient;
  - --through deformable: every read inside the feature map spawns the DCN layer's 9 taps;
  - the saliency search runs (its masked batches give every image its RoI);
  - bad input (--bin off the grid or on a layer that is not RoI pooling, --roi for a model
    without a RoI head, an empty box) exits with 2 and names the problem.

Usage: test_roi_analysis.py CLI OPS_LIB WORKDIR
"""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision  # noqa: F401  (registers torchvision::roi_align / deform_conv2d)
from PIL import Image
from torch import nn
from torchvision.ops import DeformConv2d, roi_align

SIZE = 64
BINS = 4
SCALE = 0.25
RATIO = 2
GAMMA = 0.1
CLASSES = 3
BOX = (10.0, 14.0, 46.0, 50.0)  # x0, y0, x1, y1 (pixel edges)


def run(cli, *args, expect=0):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = subprocess.run([cli, *args], capture_output=True, text=True, env=env)
    if p.returncode != expect:
        sys.exit(f"FAIL: {' '.join(args)} exited {p.returncode} (expected {expect}):\n{p.stdout}\n{p.stderr}")
    return p


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)
    print("ok:", what)


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.offset = nn.Conv2d(8, 27, 3, 1, 1)
        self.dcn = DeformConv2d(8, 8, 3, 1, 1)
        self.down = nn.Conv2d(8, 16, 3, 2, 1)
        with torch.no_grad():
            self.offset.weight.mul_(4.0)

    def forward(self, x):
        x = F.relu(self.stem(x))
        om = self.offset(x)
        x = x + F.relu(self.dcn(x, om[:, :18], torch.sigmoid(om[:, 18:])))  # residual block
        return F.relu(self.down(x))


class RoiAlign(nn.Module):
    def __init__(self, aligned: bool = True):
        super().__init__()
        self.bins, self.scale, self.ratio, self.aligned = BINS, SCALE, RATIO, aligned

    def forward(self, f, rois):
        return roi_align(f, rois, [self.bins, self.bins], self.scale, self.ratio, self.aligned)


class DeformRoiPool(nn.Module):
    def __init__(self, modulated: bool):
        super().__init__()
        self.modulated = modulated
        self.bins, self.scale, self.ratio, self.gamma = BINS, SCALE, RATIO, GAMMA

    def forward(self, f, rois, offset, mask):
        return torch.ops.deformscope.deform_roi_pool(f, rois, offset, mask, self.bins, self.bins, self.scale,
                                                     self.ratio, self.gamma, self.modulated)


class PlainPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.bins, self.scale, self.ratio, self.gamma = BINS, SCALE, RATIO, GAMMA

    def forward(self, f, rois):
        e = torch.empty(0, dtype=f.dtype, device=f.device)
        return torch.ops.deformscope.deform_roi_pool(f, rois, e, e, self.bins, self.bins, self.scale, self.ratio,
                                                     self.gamma, False)


class RegularDetector(nn.Module):
    def __init__(self, aligned: bool = True):
        super().__init__()
        self.backbone = Backbone()
        self.pool = RoiAlign(aligned)
        self.fc = nn.Linear(16 * BINS * BINS, CLASSES)

    def forward(self, x, rois):
        return self.fc(self.pool(self.backbone(x), rois).flatten(1))


class DeformDetector(nn.Module):
    """DCNv1's head (modulated False) or DCNv2's (True)."""

    def __init__(self, modulated: bool):
        super().__init__()
        self.modulated = modulated
        self.bins = BINS
        self.backbone = Backbone()
        self.offset_pool = PlainPool()
        self.offset_fc = nn.Linear(16 * BINS * BINS, (3 if modulated else 2) * BINS * BINS)
        with torch.no_grad():
            self.offset_fc.weight.mul_(8.0)
        self.pool = DeformRoiPool(modulated)
        self.fc = nn.Linear(16 * BINS * BINS, CLASSES)

    def offsets(self, f, rois):
        o = self.offset_fc(self.offset_pool(f, rois).flatten(1)).view(rois.size(0), -1, self.bins, self.bins)
        offset = o[:, :2]
        mask = torch.sigmoid(o[:, 2:]) if self.modulated else torch.empty(0, dtype=f.dtype, device=f.device)
        return offset, mask

    def forward(self, x, rois):
        f = self.backbone(x)
        offset, mask = self.offsets(f, rois)
        return self.fc(self.pool(f, rois, offset, mask).flatten(1))


def detector(variant):
    if variant in ("regular", "legacy"):
        return RegularDetector(variant == "regular")
    return DeformDetector(variant == "dcn_v2")


class NoRoi(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()

    def forward(self, x):
        return self.backbone(x)


def save(module, path, scripted, example):
    meta = {"input_size": [SIZE, SIZE], "mean": [0, 0, 0], "std": [1, 1, 1], "suggested_layer": "pool",
            "class_names": ["a", "b", "c"]}
    m = torch.jit.script(module) if scripted else torch.jit.trace(module, example, check_trace=False)
    torch.jit.save(m, path, _extra_files={"deformscope.json": json.dumps(meta)})


def expected_reads(offset, mask, i, j, aligned=True):
    """(x, y) of bin (i, j)'s reads on the feature map (mmcv's arithmetic; aligned=False:
    torchvision's legacy rule, no half-pixel shift and at least one pixel), and m."""
    x1, y1, x2, y2 = (v * SCALE for v in BOX)
    shift = 0.5 if aligned else 0.0
    sx, sy = x1 - shift, y1 - shift
    rw, rh = (x2 - shift) - sx, (y2 - shift) - sy
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    bw, bh = rw / BINS, rh / BINS
    if offset is not None:
        sx += GAMMA * rw * float(offset[0, 0, i, j])
        sy += GAMMA * rh * float(offset[0, 1, i, j])
    m = float(mask[0, 0, i, j]) if mask is not None and mask.numel() else 1.0
    reads = []
    for iy in range(RATIO):
        for ix in range(RATIO):
            reads.append((sx + j * bw + (ix + 0.5) * bw / RATIO, sy + i * bh + (iy + 0.5) * bh / RATIO))
    return reads, m


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main():
    cli, ops_lib, work = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.ops.load_library(os.path.abspath(ops_lib))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    torch.manual_seed(7)
    rng = np.random.default_rng(3)
    pixels = (rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    pixels[20:44, 16:40] = [230, 40, 40]  # an object in the box
    image = os.path.join(work, "image.png")
    Image.fromarray(pixels).save(image)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).unsqueeze(0)
    rois = torch.tensor([[0.0, *BOX]])
    box = ",".join(f"{v:g}" for v in BOX)

    models = {}
    # legacy: roi_align(aligned=False), torchvision's older box rule, traced.
    for variant, scripted in (("regular", True), ("legacy", False), ("dcn_v1", False), ("dcn_v2", True)):
        torch.manual_seed(11)  # the same backbone in every variant
        m = detector(variant).eval()
        path = os.path.join(work, f"roi_{variant}.pt")
        save(m, path, scripted, (x, rois))
        models[variant] = (m, path)
    plain = os.path.join(work, "no_roi.pt")
    save(NoRoi().eval(), plain, True, None)

    for variant, (m, path) in models.items():
        info = json.loads(run(cli, "info", path, "--json").stdout)
        layers = {l["name"]: l for l in info["layers"]}
        pool = layers["pool"]
        plain_pool = variant in ("regular", "legacy")
        check(pool["roi"]["aligned"] == (variant != "legacy"), f"{variant}: aligned read as given")
        check(pool["kind"] == ("roi_pool" if plain_pool else "deform_roi_pool"),
              f"{variant}: pool read as {pool['kind']}")
        check(pool["roi"]["pooled_size"] == [BINS, BINS] and abs(pool["roi"]["spatial_scale"] - SCALE) < 1e-9
              and pool["roi"]["sampling_ratio"] == RATIO and pool["roi"]["box"] == [0, 0, SIZE, SIZE],
              f"{variant}: bins, scale, ratio and the default whole-image RoI in the layer graph")
        check(pool["inputs"] == ["backbone.down"], f"{variant}: the pool reads the backbone's last layer")
        if not plain_pool:
            check(pool["offset_source"] == "offset_pool" and layers["offset_pool"]["kind"] == "roi_pool",
                  f"{variant}: the offsets come from the fc on the regular RoI pooling offset_pool")
            check(pool["use_mask"] == (variant == "dcn_v2"), f"{variant}: modulated only for DCNv2")
        down = layers["backbone.down"]
        start, jump = down["start"], down["jump"]  # (y, x)

        with torch.no_grad():
            f = m.backbone(x)
            offset, mask = (None, None) if plain_pool else m.offsets(f, rois)
            logits = m(x, rois)

        # One bin, its own reads.
        out = os.path.join(work, f"{variant}_bin")
        run(cli, "analyze", "--model", path, "--image", image, "--roi", box, "--bin", "1,2", "--what", "sampling",
            "--levels", "1", "--out", out, "--no-figures")
        res = json.load(open(os.path.join(out, "result.json")))
        check(res["node"]["fy"] == 1 and res["node"]["fx"] == 2 and res["roi"]["bin"] == [1, 2],
              f"{variant}: --bin 1,2 is the node")
        rows = [r for r in read_csv(os.path.join(out, "sampling.csv")) if r["level"] == "1"]
        reads, mod = expected_reads(offset, mask, 1, 2, variant != "legacy")
        check(len(rows) == len(reads), f"{variant}: bin (1, 2) has {len(reads)} reads ({len(rows)})")
        worst = 0.0
        for r, (fx, fy) in zip(rows, reads):
            ex, ey = start[1] + fx * jump[1], start[0] + fy * jump[0]
            worst = max(worst, abs(float(r["x"]) - ex), abs(float(r["y"]) - ey))
            check(abs(float(r["weight"]) - 16 * mod / (RATIO * RATIO)) < 1e-4 * max(1.0, 16 * mod),
                  f"{variant}: read weight Σ_c|∂r/∂bin|·m/reads = {16 * mod / 4:.6f} ({r['weight']})")
            check(r["kind"] == pool["kind"], f"{variant}: reads belong to the pool")
        check(worst < 1e-4, f"{variant}: bin (1, 2)'s reads where mmcv's arithmetic puts them (worst {worst:.2e} px)")

        # The whole RoI: every bin; its response the pooled features the head reads.
        out = os.path.join(work, f"{variant}_roi")
        run(cli, "analyze", "--model", path, "--image", image, "--roi", box, "--what", "sampling,erf",
            "--levels", "2", "--through", "deformable", "--out", out, "--no-figures")
        res = json.load(open(os.path.join(out, "result.json")))
        check(res["node"]["response"] == "sum" and res["node"].get("all_bins") is True,
              f"{variant}: without --bin the node is the whole RoI")
        check(res["roi"]["bin"] is None and len(res["roi"]["bin_locations"]) == BINS * BINS,
              f"{variant}: every bin's effective location is listed")
        pts = read_csv(os.path.join(out, "sampling.csv"))
        level1 = [p for p in pts if p["level"] == "1"]
        check(len(level1) == BINS * BINS * RATIO * RATIO, f"{variant}: level 1 holds every bin's reads ({len(level1)})")
        H = W = SIZE // 4
        spawning = 0
        for p in level1:
            fy = (float(p["y"]) - start[0]) / jump[0]
            fx = (float(p["x"]) - start[1]) / jump[1]
            spawning += -1 < fy < H and -1 < fx < W
        level2 = [p for p in pts if p["level"] == "2"]
        check(len(level2) == 9 * spawning and all(p["layer"] == "backbone.dcn" for p in level2),
              f"{variant}: --through deformable: each read inside the map spawns the DCN's 9 taps "
              f"({len(level2)} = 9 x {spawning})")
        def pooled(inp):
            f = m.backbone(inp)
            if plain_pool:
                return m.pool(f, rois)
            o, mk = m.offsets(f, rois)
            return m.pool(f, rois, o, mk)

        def erf_of(response):
            xg = x.clone().requires_grad_(True)
            response(xg).backward()
            return xg.grad[0].abs().sum(0).numpy()

        def close(erf, ref):
            return float(np.abs(erf - ref).max() / max(np.abs(ref).max(), 1e-12))

        rel = close(np.load(os.path.join(out, "erf.npy")), erf_of(lambda inp: pooled(inp).sum()))
        check(rel < 1e-4, f"{variant}: the RoI's ERF is the gradient of its pooled features (relative {rel:.1e})")
        # The head's output: a class score reads every bin too.
        k = int(logits[0].argmax())
        out_k = os.path.join(work, f"{variant}_class")
        run(cli, "analyze", "--model", path, "--image", image, "--roi", box, "--response", f"class:{k}",
            "--what", "sampling,erf", "--levels", "1", "--out", out_k, "--no-figures")
        res_k = json.load(open(os.path.join(out_k, "result.json")))
        check(res_k["node"]["response"] == f"class:{k}" and res_k["roi"]["bin"] is None
              and res_k["sampling"]["points"] == BINS * BINS * RATIO * RATIO,
              f"{variant}: class:{k} is the head's output, every bin's reads")
        rel = close(np.load(os.path.join(out_k, "erf.npy")), erf_of(lambda inp: m(inp, rois)[0, k]))
        check(rel < 1e-4, f"{variant}: the ERF of class {k}'s score is PyTorch's gradient (relative {rel:.1e})")
        loc = {tuple(b["bin"]): b for b in res["roi"]["bin_locations"]}
        r0, _ = expected_reads(offset, mask, 0, 0, variant != "legacy")
        cx = np.mean([start[1] + fx * jump[1] for fx, _ in r0])
        cy = np.mean([start[0] + fy * jump[0] for _, fy in r0])
        got = loc[(0, 0)]["reads_centre_xy"]
        check(got is None or (abs(got[0] - cx) < 1e-3 and abs(got[1] - cy) < 1e-3),
              f"{variant}: bin (0, 0)'s reads centre ({cx:.3f}, {cy:.3f})")

    # Offsets really move the bins: the DCN heads' bin (1, 2) differs from the regular one's.
    a = read_csv(os.path.join(work, "regular_bin", "sampling.csv"))
    b = read_csv(os.path.join(work, "dcn_v2_bin", "sampling.csv"))
    shift = max(abs(float(p["x"]) - float(q["x"])) + abs(float(p["y"]) - float(q["y"])) for p, q in zip(a, b))
    check(shift > 0.5, f"the DCNv2 head's bins move ({shift:.2f} px) where the regular head's do not")

    # The saliency search of the head's output (masked batches: every image gets its RoI).
    out = os.path.join(work, "dcn_v2_saliency")
    run(cli, "analyze", "--model", models["dcn_v2"][1], "--image", image, "--roi", box, "--what", "saliency",
        "--forwards", "40", "--out", out, "--no-figures")
    res = json.load(open(os.path.join(out, "result.json")))
    check("saliency" in res and res["saliency"]["area_px"] > 0 and res["saliency"]["within_bound"], "the saliency region of the head's output")

    # Bad input.
    p = run(cli, "analyze", "--model", models["dcn_v2"][1], "--image", image, "--roi", box, "--bin", "4,0",
            "--out", os.path.join(work, "bad1"), expect=2)
    check("--bin 4,0" in p.stderr and "4 rows" in p.stderr, "--bin off the grid names the grid")
    p = run(cli, "analyze", "--model", models["dcn_v2"][1], "--image", image, "--bin", "0,0", "--layer", "backbone.down",
            "--out", os.path.join(work, "bad2"), expect=2)
    check("RoI pooling" in p.stderr and "pool" in p.stderr, "--bin on a conv layer lists the RoI pooling layers")
    p = run(cli, "analyze", "--model", plain, "--image", image, "--roi", box, "--out", os.path.join(work, "bad3"),
            expect=2)
    check("RoI head" in p.stderr and "no_roi.pt" in p.stderr, "--roi for a model without a RoI head")
    p = run(cli, "analyze", "--model", models["dcn_v2"][1], "--image", image, "--roi", "30,10,20,40",
            "--out", os.path.join(work, "bad4"), expect=2)
    check("--roi" in p.stderr and "x1 > x0" in p.stderr, "an empty --roi box")
    print("all RoI analysis checks passed")


if __name__ == "__main__":
    main()
