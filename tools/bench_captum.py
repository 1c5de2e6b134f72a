"""Saliency search vs Captum's Occlusion, in one run, on the sample models.

For each model and input size: our error-bounded saliency search (deformscope-cli
analyze --what saliency, its own search time and forward count from result.json),
then Captum's Occlusion (sliding window, zero baseline, batched perturbations) on
the same model, image and node response, timed in this process. Both answer
"which image regions does this node need"; Occlusion gives a map, ours a bounded
mask. Printed as a Markdown table with time and forward-pass ratios.

usage: bench_captum.py --cli PATH --image PNG --models A.pt B.pt ... [--sizes 256]
                       [--window 16] [--stride 8] [--per-eval 16] [--layer block3]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision  # registers torchvision::deform_conv2d, which the sample models call
from PIL import Image

try:
    from captum.attr import Occlusion
except ImportError:  # tools/bench_analyses installs it
    sys.exit("captum is not installed: pip install captum")

TRUNK = ["stem", "down1", "conv2", "down2", "conv3", "down3", "block1", "block2", "block3"]


def layer_output(net, x, layer):
    """The sample network up to `layer`, returning that layer's conv output before its ReLU
    (the tensor deformscope captures as the layer's output)."""
    for name in TRUNK:
        m = getattr(net, name)
        if name == layer:
            if hasattr(m, "offset"):
                om = m.offset(x)
                if om.shape[1] == 27:
                    return torchvision.ops.deform_conv2d(x, om[:, :18], m.weight, m.bias, padding=1,
                                                         mask=torch.sigmoid(om[:, 18:]))
                return torchvision.ops.deform_conv2d(x, om, m.weight, m.bias, padding=1)
            stride = 2 if name.startswith("down") else 1
            return F.conv2d(x, m.weight, m.bias, stride=stride, padding=1)
        x = m(x)
    raise SystemExit(f"no layer {layer}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--sizes", default="256")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--per-eval", type=int, default=16)
    ap.add_argument("--layer", default="block3")
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; Occlusion window {args.window}, "
          f"stride {args.stride}, {args.per_eval} perturbations per forward; node: {args.layer} at the image "
          f"centre, response = sum over channels")
    print()
    print("| model | input | ours: search s | ours: forwards | ours: area | ours: error | Captum Occlusion s "
          "| Captum forwards | time ratio (Captum / ours) | forward ratio (Captum / ours) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in [int(s) for s in args.sizes.split(",")]:
        img = Image.open(args.image).convert("RGB")
        x0 = torch.from_numpy(np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0)
        x = ((x0.permute(2, 0, 1) - 0.5) / 0.25).unsqueeze(0).contiguous()
        for path in args.models:
            name = os.path.splitext(os.path.basename(path))[0]
            with tempfile.TemporaryDirectory() as out:
                w0, h0 = img.size
                run = subprocess.run([args.cli, "analyze", "--model", path, "--image", args.image, "--what", "saliency",
                                      "--input-size", str(size), str(size), "--no-figures", "--no-object",
                                      "--pixel", f"{(w0 - 1) / 2},{(h0 - 1) / 2}", "--layer", args.layer,
                                      "--out", out], capture_output=True, text=True)
                if run.returncode not in (0, 1):
                    sys.exit(run.stderr)
                with open(os.path.join(out, "result.json")) as f:
                    res = json.load(f)
            sal = res["saliency"]
            fy, fx = res["node"]["fy"], res["node"]["fx"]

            net = torch.jit.load(path).eval()
            calls = [0]

            def forward(batch):
                calls[0] += batch.shape[0]
                return layer_output(net, batch, args.layer)[:, :, fy, fx].sum(1)

            occ = Occlusion(forward)
            forward(x)  # warm-up
            calls[0] = 0
            t = time.perf_counter()
            occ.attribute(x, sliding_window_shapes=(3, args.window, args.window),
                          strides=(3, args.stride, args.stride), baselines=0.0,
                          perturbations_per_eval=args.per_eval)
            captum_s = time.perf_counter() - t
            print(f"| {name} | {size}x{size} | {sal['seconds']:.2f} | {sal['forwards']} | "
                  f"{sal['area_fraction']:.3f} | {sal['error']:.3f} | {captum_s:.2f} | {calls[0]} | "
                  f"{captum_s / sal['seconds']:.2f} | {calls[0] / sal['forwards']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
