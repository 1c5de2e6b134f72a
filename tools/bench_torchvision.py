#!/usr/bin/env python3
"""Benchmark the project's deform_conv2d against torchvision's and against conv2d.

Usage:
    python tools/bench_torchvision.py --lib build/core/ops/libdeformscope_ops.so \
        [--device cpu|cuda] [--shapes small,large|tiny] [--repeat N] [--json out.json] \
        [--deterministic on|off] [--threads N]

For each named shape it times, in one process,
  fwd      forward only (under torch.no_grad()),
  fwd+bwd  forward + backward of out.sum() w.r.t. input, weight, offset, mask, bias
           (conv2d: input, weight, bias),
for (a) torch.ops.deformscope.deform_conv2d, (b) torch.ops.torchvision.deform_conv2d
(torchvision is imported before the library is loaded, so this is torchvision's own
kernel), and (c) torch.nn.functional.conv2d of the same shape. One warm-up run, then
the median of --repeat runs (default: 5 for small/tiny, 3 for large), with
torch.cuda.synchronize() around each timed run on CUDA. Prints a Markdown table;
--json writes the same numbers. Progress goes to stderr.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision  # noqa: F401  -- import BEFORE loading the library (keeps torchvision's kernels)

# Names are fixed; the C++ benchmark uses the same ones.
SHAPES = {
    "tiny": dict(n=2, cin=8, cout=8, h=16, w=16, k=3, stride=1, pad=1, dil=1, groups=1, offset_groups=1,
                 use_mask=True, repeat=5),
    "small": dict(n=1, cin=64, cout=64, h=64, w=64, k=3, stride=1, pad=1, dil=1, groups=1, offset_groups=1,
                  use_mask=True, repeat=5),
    "large": dict(n=8, cin=256, cout=256, h=64, w=64, k=3, stride=1, pad=1, dil=1, groups=1,
                  offset_groups=1, use_mask=True, repeat=3),
}
SEED = 0


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical CPUs)"


def make_tensors(s, device):
    g = torch.Generator().manual_seed(SEED)
    k = s["k"]
    ho = (s["h"] + 2 * s["pad"] - s["dil"] * (k - 1) - 1) // s["stride"] + 1
    wo = (s["w"] + 2 * s["pad"] - s["dil"] * (k - 1) - 1) // s["stride"] + 1
    K = k * k
    og = s["offset_groups"]
    x = torch.randn(s["n"], s["cin"], s["h"], s["w"], generator=g)
    w = torch.randn(s["cout"], s["cin"] // s["groups"], k, k, generator=g) / ((s["cin"] // s["groups"]) * K) ** 0.5
    off = torch.randn(s["n"], 2 * og * K, ho, wo, generator=g) * 2
    if s["use_mask"]:
        m = torch.sigmoid(torch.randn(s["n"], og * K, ho, wo, generator=g))
    else:
        m = torch.zeros(s["n"], 1)
    b = torch.randn(s["cout"], generator=g)
    return [t.to(device) for t in (x, w, off, m, b)]


def scalars(s):
    return (s["stride"], s["stride"], s["pad"], s["pad"], s["dil"], s["dil"], s["groups"], s["offset_groups"],
            s["use_mask"])


def make_runners(s, tensors):
    """{impl: {pass: callable}} -- each callable does one complete pass."""
    x, w, off, m, b = tensors
    sc = scalars(s)
    ours = torch.ops.deformscope.deform_conv2d
    tv = torch.ops.torchvision.deform_conv2d

    grad_leaves = [t.detach().clone().requires_grad_(i != 3 or s["use_mask"]) for i, t in enumerate(tensors)]
    conv_leaves = [t.detach().clone().requires_grad_(True) for t in (x, w, b)]

    def deform_fwd(op):
        def run():
            with torch.no_grad():
                return op(x, w, off, m, b, *sc)
        return run

    def deform_fwd_bwd(op):
        leaves = [t for t in grad_leaves if t.requires_grad]

        def run():
            out = op(*grad_leaves, *sc)
            return torch.autograd.grad(out.sum(), leaves)
        return run

    conv_kw = dict(stride=s["stride"], padding=s["pad"], dilation=s["dil"], groups=s["groups"])

    def conv_fwd():
        with torch.no_grad():
            return F.conv2d(x, w, b, **conv_kw)

    def conv_fwd_bwd():
        xi, wi, bi = conv_leaves
        out = F.conv2d(xi, wi, bi, **conv_kw)
        return torch.autograd.grad(out.sum(), conv_leaves)

    return {
        "ours": {"fwd": deform_fwd(ours), "fwd+bwd": deform_fwd_bwd(ours)},
        "torchvision": {"fwd": deform_fwd(tv), "fwd+bwd": deform_fwd_bwd(tv)},
        "conv2d": {"fwd": conv_fwd, "fwd+bwd": conv_fwd_bwd},
    }


def time_ms(fn, repeat, device, label):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    log(f"{label}: warm-up {1e3 * (time.perf_counter() - t0):.2f} ms")
    samples = []
    for r in range(repeat):
        sync()
        t0 = time.perf_counter()
        res = fn()
        sync()
        samples.append(1e3 * (time.perf_counter() - t0))
        del res
        log(f"{label}: run {r + 1}/{repeat} {samples[-1]:.2f} ms")
    return statistics.median(samples), samples


def fwd_check(tensors, s):
    """max |ours - torchvision| of the forward, so the table compares like with like."""
    with torch.no_grad():
        a = torch.ops.deformscope.deform_conv2d(*tensors, *scalars(s))
        t = torch.ops.torchvision.deform_conv2d(*tensors, *scalars(s))
        return (a.double() - t.double()).abs().max().item(), t.abs().max().item()


def fmt(v, digits=2):
    return "n/a" if v is None else f"{v:.{digits}f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lib", default=os.environ.get("DEFORMSCOPE_OPS_LIB"),
                   help="path to libdeformscope_ops.so (default: $DEFORMSCOPE_OPS_LIB)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--shapes", default="small,large",
                   help=f"comma-separated shape names from {sorted(SHAPES)} (default: small,large)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed runs per measurement (default: 5 small/tiny, 3 large)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--deterministic", default="on", choices=["on", "off"],
                   help="deterministic backward for the project's op (default: on)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args(argv)

    if not args.lib:
        p.error("--lib is required (or set DEFORMSCOPE_OPS_LIB)")
    if not os.path.isfile(args.lib):
        p.error(f"library not found: {args.lib}")
    shapes = [n.strip() for n in args.shapes.split(",") if n.strip()]
    unknown = [n for n in shapes if n not in SHAPES]
    if unknown or not shapes:
        p.error(f"unknown shape(s) {unknown}; choose from {sorted(SHAPES)}")
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)

    if not hasattr(torch.ops.torchvision, "deform_conv2d"):
        sys.exit("torchvision's C++ ops are not available after `import torchvision`; cannot compare")
    torch.ops.load_library(os.path.abspath(args.lib))
    deterministic = args.deterministic == "on"
    prev = torch.ops.deformscope.set_deterministic_backward(deterministic)

    device = torch.device(args.device)
    info = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "device_name": device_name(device),
        "deterministic_backward": deterministic,
        "lib": os.path.abspath(args.lib),
        "dtype": "float32",
    }
    print("# deform_conv2d benchmark: deformscope vs torchvision vs conv2d\n")
    print(f"- torch {info['torch']}, torchvision {info['torchvision']}")
    print(f"- device: {args.device} ({info['device_name']}), threads: {info['threads']}")
    print(f"- deterministic backward (deformscope): {args.deterministic} (previous setting: "
          f"{'on' if prev else 'off'})")
    print(f"- dtype float32; warm-up 1, median of --repeat runs; fwd under no_grad; "
          f"fwd+bwd = grad of out.sum() w.r.t. all inputs")
    print(f"- lib: {info['lib']}\n")
    sys.stdout.flush()

    results = []
    for name in shapes:
        s = SHAPES[name]
        repeat = args.repeat or s["repeat"]
        log(f"shape {name}: {s} (repeat {repeat})")
        tensors = make_tensors(s, device)
        diff, ref_scale = fwd_check(tensors, s)
        log(f"shape {name}: forward max |ours - torchvision| = {diff:.3e} (max |out| = {ref_scale:.3e})")
        runners = make_runners(s, tensors)
        for pass_name in ("fwd", "fwd+bwd"):
            row = {"shape": name, "pass": pass_name, "repeat": repeat,
                   "dims": {k: v for k, v in s.items() if k != "repeat"},
                   "fwd_max_abs_diff_vs_torchvision": diff}
            for impl in ("ours", "torchvision", "conv2d"):
                med, samples = time_ms(runners[impl][pass_name], repeat, device, f"{name} {pass_name} {impl}")
                row[f"{impl}_ms"] = med
                row[f"{impl}_samples_ms"] = samples
            row["torchvision_over_ours"] = row["torchvision_ms"] / row["ours_ms"]
            row["ours_over_conv2d"] = row["ours_ms"] / row["conv2d_ms"]
            results.append(row)
        del runners, tensors
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print("| shape | pass | ours ms | torchvision ms | conv2d ms | torchvision/ours | ours/conv2d |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['shape']} | {r['pass']} | {fmt(r['ours_ms'])} | {fmt(r['torchvision_ms'])} | "
              f"{fmt(r['conv2d_ms'])} | {fmt(r['torchvision_over_ours'])}x | {fmt(r['ours_over_conv2d'])}x |")
    print("\ntorchvision/ours > 1 means ours is faster; ours/conv2d is the cost over a plain conv.")
    checked = {}
    for r in results:
        checked[r["shape"]] = r["fwd_max_abs_diff_vs_torchvision"]
    print("forward max |ours - torchvision|: " + ", ".join(f"{k} {v:.2e}" for k, v in checked.items()))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({**info, "results": results}, f, indent=2)
        log(f"wrote {args.json}")

    torch.ops.deformscope.set_deterministic_backward(bool(prev))
    return 0


if __name__ == "__main__":
    sys.exit(main())
