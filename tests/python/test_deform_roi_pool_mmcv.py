#!/usr/bin/env python3
"""Cross-check the project's deform_roi_pool operator against mmcv's formula and torchvision.

Usage:
    python tests/python/test_deform_roi_pool_mmcv.py /path/to/libdeformscope_ops.so [unittest args]
    DEFORMSCOPE_OPS_LIB=/path/to/libdeformscope_ops.so python tests/python/test_deform_roi_pool_mmcv.py

mmcv itself is not installed here (its CUDA extension needs a GPU build), so
its kernels (mmcv/ops/csrc/common/cuda/deform_roi_pool_cuda_kernel.cuh with
common_cuda_helper.hpp's bilinear_interpolate, mmcv >= 1.0; the DCNv2 form is
mmcv.ops.ModulatedDeformRoIPoolPack's `deform_roi_pool(...) * mask`) are
restated below in plain Python, float64, one scalar at a time:

  * mmcv_forward: the forward kernel;
  * mmcv_backward: the backward kernel (grad_input by the four corner weights,
    grad_offset by its slope formula, both summed as its atomics would);
  * formula_autograd: the same forward written with differentiable torch
    scalars, so that autograd gives the exact gradient of the forward.

Checked on CPU (and CUDA when available), in float64 and float32, for plain
RoIAlign, DCNv1 offsets and DCNv2 offsets + mask, sampling_ratio 0/1/2,
several spatial scales, RoIs inside, across and far outside the map, size 0
and reversed, batches of several images:

  * forward == mmcv_forward;
  * every gradient (input, offset, mask) == autograd of formula_autograd, and
    the explicit _deform_roi_pool_backward op == autograd through the op;
  * grad_input == mmcv_backward's everywhere; grad_offset == mmcv_backward's
    for every bin whose reads all lie inside (0 < y < H-1, 0 < x < W-1). In the
    clamped bands mmcv's slope formula uses the unclamped coordinate and is not
    the derivative of its forward; the test checks that every difference lies
    in such a bin (our gradient is the exact one there: finite differences);
  * with no offsets (empty, or zeros) and no mask the op equals
    torchvision.ops.roi_align(aligned=True, same sampling_ratio), forward and
    input gradient: the coordinate convention (the -0.5, no minimum size);
  * torch.autograd.gradcheck on the op (input, offset, mask) in float64;
  * the registered schemas.
"""

import math
import os
import struct
import sys
import unittest

import torch
import torchvision  # noqa: F401  -- imported before the library, as in test_vs_torchvision.py
from torchvision.ops import roi_align

LIB_ENV = "DEFORMSCOPE_OPS_LIB"
LIB_PATH = None


def _looks_like_lib(arg):
    return (not arg.startswith("-")) and (
        os.path.isfile(arg) or arg.endswith((".so", ".dylib", ".dll", ".pyd")) or ".so." in arg
    )


def _resolve_lib_path(argv):
    """Take the library path from argv[1] (removing it) or from $DEFORMSCOPE_OPS_LIB."""
    if len(argv) > 1 and _looks_like_lib(argv[1]):
        return argv.pop(1)
    return os.environ.get(LIB_ENV)


def setUpModule():
    global LIB_PATH
    if LIB_PATH is None:
        LIB_PATH = os.environ.get(LIB_ENV)
    if not LIB_PATH or not os.path.isfile(LIB_PATH):
        raise RuntimeError(f"op library not found: {LIB_PATH!r} (pass it as the first argument or set {LIB_ENV})")
    torch.ops.load_library(os.path.abspath(LIB_PATH))
    for name in ("deform_roi_pool", "_deform_roi_pool_backward"):
        if not hasattr(torch.ops.deformscope, name):
            raise RuntimeError(f"{LIB_PATH} did not register torch.ops.deformscope.{name}")


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# --------------------------------------------------------------------------------------
# mmcv's formula, restated one scalar at a time (float64)
# --------------------------------------------------------------------------------------


def _ceilf(v):
    """mmcv's ceilf(): the quotient rounded to float first."""
    return math.ceil(struct.unpack("f", struct.pack("f", v))[0])


def _bin_layout(roi, scale, ph, pw, sr):
    """roi_start_w, roi_start_h, roi_width, roi_height, bin sizes and grids, as mmcv's kernel."""
    start_w = roi[1] * scale - 0.5
    start_h = roi[2] * scale - 0.5
    end_w = roi[3] * scale - 0.5
    end_h = roi[4] * scale - 0.5
    roi_w, roi_h = end_w - start_w, end_h - start_h
    bin_h, bin_w = roi_h / ph, roi_w / pw
    grid_h = sr if sr > 0 else _ceilf(roi_h / ph)
    grid_w = sr if sr > 0 else _ceilf(roi_w / pw)
    return start_w, start_h, roi_w, roi_h, bin_h, bin_w, grid_h, grid_w


def _read_layout(H, W, y, x):
    """bilinear_interpolate's range test and clamping: None, or (y_low, y_high, x_low, x_high, ly, lx)."""
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return None
    if y <= 0:
        y = 0.0
    if x <= 0:
        x = 0.0
    y_low, x_low = int(y), int(x)
    if y_low >= H - 1:
        y_high = y_low = H - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_high = x_low = W - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    return y_low, y_high, x_low, x_high, y - y_low, x - x_low


def _bins(rois, offset, ph, pw, scale, sr, gamma):
    """Yields (k, i, j, batch index, [(y, x) of every read], count, roi_w, roi_h)."""
    for k in range(rois.shape[0]):
        roi = [float(v) for v in rois[k]]
        start_w, start_h, roi_w, roi_h, bin_h, bin_w, grid_h, grid_w = _bin_layout(roi, scale, ph, pw, sr)
        for i in range(ph):
            for j in range(pw):
                sw, sh = start_w, start_h
                if offset is not None:
                    sw += gamma * roi_w * float(offset[k, 0, i, j])
                    sh += gamma * roi_h * float(offset[k, 1, i, j])
                reads = [(sh + i * bin_h + (iy + 0.5) * bin_h / grid_h, sw + j * bin_w + (ix + 0.5) * bin_w / grid_w)
                         for iy in range(max(grid_h, 0)) for ix in range(max(grid_w, 0))]
                count = max(grid_h * grid_w, 1)
                yield k, i, j, int(roi[0]), reads, count, roi_w, roi_h


def mmcv_forward(x, rois, offset, ph, pw, scale, sr, gamma):
    x = x.double().cpu()
    rois = rois.double().cpu()
    offset = None if offset is None or offset.numel() == 0 else offset.double().cpu()
    C, H, W = x.shape[1:]
    out = torch.zeros(rois.shape[0], C, ph, pw, dtype=torch.float64)
    for k, i, j, b, reads, count, _, _ in _bins(rois, offset, ph, pw, scale, sr, gamma):
        for c in range(C):
            plane = x[b, c]
            total = 0.0
            for y, xx in reads:
                r = _read_layout(H, W, y, xx)
                if r is None:
                    continue
                yl, yh, xl, xh, ly, lx = r
                hy, hx = 1.0 - ly, 1.0 - lx
                total += (hy * hx * float(plane[yl, xl]) + hy * lx * float(plane[yl, xh]) +
                          ly * hx * float(plane[yh, xl]) + ly * lx * float(plane[yh, xh]))
            out[k, c, i, j] = total / count
    return out


def mmcv_backward(grad, x, rois, offset, ph, pw, scale, sr, gamma):
    """mmcv's backward kernel: (grad_input, grad_offset or None, per-bin flag 'some read in a clamped band')."""
    x = x.double().cpu()
    rois = rois.double().cpu()
    grad = grad.double().cpu()
    offset = None if offset is None or offset.numel() == 0 else offset.double().cpu()
    C, H, W = x.shape[1:]
    grad_input = torch.zeros_like(x)
    grad_offset = None if offset is None else torch.zeros_like(offset)
    banded = torch.zeros(rois.shape[0], ph, pw, dtype=torch.bool)
    for k, i, j, b, reads, count, roi_w, roi_h in _bins(rois, offset, ph, pw, scale, sr, gamma):
        for y, xx in reads:
            if -1.0 <= y <= H and -1.0 <= xx <= W and not (0 < y < H - 1 and 0 < xx < W - 1):
                banded[k, i, j] = True
        for c in range(C):
            g = float(grad[k, c, i, j]) / count
            plane = x[b, c]
            for y, xx in reads:
                r = _read_layout(H, W, y, xx)
                if r is None:
                    continue
                yl, yh, xl, xh, ly, lx = r
                hy, hx = 1.0 - ly, 1.0 - lx
                for (py, px), w in (((yl, xl), hy * hx), ((yl, xh), hy * lx), ((yh, xl), ly * hx), ((yh, xh), ly * lx)):
                    grad_input[b, c, py, px] += g * w
                if grad_offset is not None:
                    # mmcv's slopes, with the UNclamped y and x (the kernel's own, not the clamped copies).
                    v00, v10 = float(plane[yl, xl]), float(plane[yl, xh])
                    v01, v11 = float(plane[yh, xl]), float(plane[yh, xh])
                    ogx = gamma * roi_w * g * (v11 * (y - yl) + v10 * (yh - y) + v01 * (yl - y) + v00 * (y - yh))
                    ogy = gamma * roi_h * g * (v11 * (xx - xl) + v01 * (xh - xx) + v10 * (xl - xx) + v00 * (xx - xh))
                    grad_offset[k, 0, i, j] += ogx
                    grad_offset[k, 1, i, j] += ogy
    return grad_input, grad_offset, banded


def formula_autograd(x, rois, offset, mask, ph, pw, scale, sr, gamma):
    """The forward with differentiable torch scalars (float64): autograd gives its exact gradients.
    A clamped coordinate is replaced by a constant, so the read does not move with it."""
    C, H, W = x.shape[1:]
    K = rois.shape[0]
    outs = []
    for k in range(K):
        roi = [float(v) for v in rois[k]]
        start_w, start_h, roi_w, roi_h, bin_h, bin_w, grid_h, grid_w = _bin_layout(roi, scale, ph, pw, sr)
        b = int(roi[0])
        rows = []
        for i in range(ph):
            cols = []
            for j in range(pw):
                sw = torch.tensor(start_w, dtype=torch.float64)
                sh = torch.tensor(start_h, dtype=torch.float64)
                if offset is not None:
                    sw = sw + gamma * roi_w * offset[k, 0, i, j]
                    sh = sh + gamma * roi_h * offset[k, 1, i, j]
                total = torch.zeros(C, dtype=torch.float64)
                for iy in range(max(grid_h, 0)):
                    for ix in range(max(grid_w, 0)):
                        y = sh + i * bin_h + (iy + 0.5) * bin_h / grid_h
                        xx = sw + j * bin_w + (ix + 0.5) * bin_w / grid_w
                        r = _read_layout(H, W, float(y.detach()), float(xx.detach()))
                        if r is None:
                            continue
                        yl, yh, xl, xh, _, _ = r
                        yv, xv = float(y.detach()), float(xx.detach())
                        yc = y if 0 < yv < H - 1 else torch.tensor(min(max(yv, 0.0), H - 1.0), dtype=torch.float64)
                        xc = xx if 0 < xv < W - 1 else torch.tensor(min(max(xv, 0.0), W - 1.0), dtype=torch.float64)
                        ly, lx = yc - yl, xc - xl
                        hy, hx = 1 - ly, 1 - lx
                        total = total + (hy * hx * x[b, :, yl, xl] + hy * lx * x[b, :, yl, xh] +
                                         ly * hx * x[b, :, yh, xl] + ly * lx * x[b, :, yh, xh])
                cols.append(total / max(grid_h * grid_w, 1))
            rows.append(torch.stack(cols, -1))
        outs.append(torch.stack(rows, -2))
    out = torch.stack(outs, 0) if outs else torch.zeros(0, C, ph, pw, dtype=torch.float64)
    if mask is not None:
        out = out * mask
    return out


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


class Case:
    def __init__(self, name, n=2, c=3, h=9, w=11, k=6, ph=3, pw=4, scale=0.5, sr=2, gamma=0.1,
                 offsets=False, mask=False, placement="partly", offset_scale=1.0, seed=0):
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def __repr__(self):
        return f"{self.name}[{ {k: v for k, v in self.__dict__.items() if k != 'name'} }]"

    def make(self, dtype=torch.float64, device="cpu"):
        g = torch.Generator().manual_seed(self.seed)
        u = lambda lo, hi: float(torch.rand((), generator=g, dtype=torch.float64)) * (hi - lo) + lo  # noqa: E731
        x = torch.randn(self.n, self.c, self.h, self.w, generator=g, dtype=torch.float64)
        rois = []
        for r in range(self.k):
            b = float(min(int(u(0, self.n)), self.n - 1))
            if self.placement == "inside":
                x1, y1 = u(0.5, 0.6 * self.w), u(0.5, 0.6 * self.h)
                x2, y2 = u(x1 + 0.5, self.w - 0.5), u(y1 + 0.5, self.h - 0.5)
            else:
                x1, y1 = u(-0.5 * self.w, 0.9 * self.w), u(-0.5 * self.h, 0.9 * self.h)
                x2, y2 = x1 + u(0.3, 1.2 * self.w), y1 + u(0.3, 1.2 * self.h)
            if self.placement == "mixed" and r == 0:
                x1, x2 = self.w + 5.0, self.w + 9.0  # far outside
            if self.placement == "mixed" and r == 1:
                x2 = x1  # size 0
            if self.placement == "mixed" and r == 2:
                x1, x2, y1, y2 = x2, x1, y2, y1  # reversed
            # Feature-map coordinates -> image coordinates (the op's input), undoing the -0.5.
            rois.append([b] + [(v + 0.5) / self.scale for v in (x1, y1, x2, y2)])
        rois = torch.tensor(rois, dtype=torch.float64).view(self.k, 5)
        offset = (torch.randn(self.k, 2, self.ph, self.pw, generator=g, dtype=torch.float64) * self.offset_scale
                  if self.offsets else torch.empty(0, dtype=torch.float64))
        mask = (torch.rand(self.k, 1, self.ph, self.pw, generator=g, dtype=torch.float64) * 2 - 0.5
                if self.mask else torch.empty(0, dtype=torch.float64))
        to = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return to(x), to(rois), to(offset), to(mask)

    def scalars(self):
        return (self.ph, self.pw, self.scale, self.sr, self.gamma, self.mask)


CASES = [
    Case("plain inside sr2", placement="inside", seed=1),
    Case("plain partly sr0", sr=0, seed=2),
    Case("plain mixed sr1 scale0.25", sr=1, scale=0.25, placement="mixed", seed=3),
    Case("dcnv1 partly sr2", offsets=True, seed=4),
    Case("dcnv1 mixed sr0", offsets=True, sr=0, placement="mixed", seed=5),
    Case("dcnv1 gamma0.5 large offsets", offsets=True, gamma=0.5, offset_scale=3.0, seed=6),
    Case("dcnv2 partly sr2", offsets=True, mask=True, seed=7),
    Case("dcnv2 mixed sr0 batch3", offsets=True, mask=True, sr=0, n=3, k=8, placement="mixed", seed=8),
    Case("dcnv2 7x7 scale1/16 sr0", offsets=True, mask=True, ph=7, pw=7, scale=1 / 16, sr=0, h=14, w=12, k=3, seed=9),
    Case("dcnv2 scale1 sr3 pooled2x5", offsets=True, mask=True, scale=1.0, sr=3, ph=2, pw=5, seed=10),
    Case("dcnv2 one-row map", offsets=True, mask=True, h=1, w=6, seed=11),
    Case("dcnv2 1x1 map sr0", offsets=True, mask=True, h=1, w=1, sr=0, seed=12),
]


def ours(x, rois, offset, mask, case):
    return torch.ops.deformscope.deform_roi_pool(x, rois, offset, mask, *case.scalars())


def close(testcase, a, b, atol, msg):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    testcase.assertEqual(a.shape, b.shape, msg)
    err = (a - b).abs().max().item() if a.numel() else 0.0
    testcase.assertLessEqual(err, atol, f"{msg}: max abs error {err:.3g} > {atol:g}")
    return err


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


class TestAgainstMmcvFormula(unittest.TestCase):
    def test_forward(self):
        for case in CASES:
            x, rois, offset, mask = case.make()
            ref = mmcv_forward(x, rois, offset, case.ph, case.pw, case.scale, case.sr, case.gamma)
            if case.mask:
                ref = ref * mask  # ModulatedDeformRoIPoolPack: deform_roi_pool(...) * mask
            for device in devices():
                with self.subTest(case=case.name, device=device):
                    t = [v.to(device) for v in (x, rois, offset, mask)]
                    close(self, ours(*t, case), ref, 1e-12, "float64 forward")
                    t32 = [v.float() for v in t]
                    # The same float32 values in float64: only the arithmetic differs.
                    ref32 = mmcv_forward(t32[0], t32[1], t32[2], case.ph, case.pw, case.scale, case.sr, case.gamma)
                    if case.mask:
                        ref32 = ref32 * t32[3].double().cpu()
                    close(self, ours(*t32, case), ref32, 2e-5, "float32 forward")

    def test_mask_is_mmcv_modulation(self):
        case = CASES[6]
        x, rois, offset, mask = case.make()
        unmodulated = torch.ops.deformscope.deform_roi_pool(x, rois, offset, torch.empty(0, dtype=x.dtype),
                                                            case.ph, case.pw, case.scale, case.sr, case.gamma, False)
        self.assertTrue(torch.equal(ours(x, rois, offset, mask, case), unmodulated * mask))

    def test_gradients_are_exact_derivatives(self):
        for case in CASES:
            x, rois, offset, mask = case.make()
            for device in devices():
                with self.subTest(case=case.name, device=device):
                    leaves = [x.clone().requires_grad_(), offset.clone().requires_grad_(case.offsets),
                              mask.clone().requires_grad_(case.mask)]
                    dev = [leaves[0].to(device), rois.to(device), leaves[1].to(device), leaves[2].to(device)]
                    out = ours(*dev, case)
                    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(case.seed + 100),
                                       dtype=torch.float64)
                    out.backward(grad.to(device))
                    ref_leaves = [x.clone().requires_grad_(), offset.clone().requires_grad_(case.offsets),
                                  mask.clone().requires_grad_(case.mask)]
                    ref = formula_autograd(ref_leaves[0], rois, ref_leaves[1] if case.offsets else None,
                                           ref_leaves[2] if case.mask else None,
                                           case.ph, case.pw, case.scale, case.sr, case.gamma)
                    close(self, out, ref, 1e-12, "forward (autograd formula)")
                    ref.backward(grad)
                    for name, a, b in zip(("input", "offset", "mask"), leaves, ref_leaves):
                        if not a.requires_grad:
                            self.assertIsNone(a.grad, f"{name} does not take part but got a gradient")
                            continue
                        expected = b.grad if b.grad is not None else torch.zeros_like(b)
                        close(self, a.grad, expected, 1e-11, f"grad {name}")
                    # The explicit backward op returns the same three gradients.
                    gi, go, gm = torch.ops.deformscope._deform_roi_pool_backward(
                        grad.to(device), x.to(device), rois.to(device), offset.to(device), mask.to(device),
                        *case.scalars())
                    close(self, gi, leaves[0].grad, 1e-12, "backward op: input")
                    if case.offsets:
                        close(self, go, leaves[1].grad, 1e-12, "backward op: offset")
                    if case.mask:
                        close(self, gm, leaves[2].grad, 1e-12, "backward op: mask")

    def test_against_mmcv_backward(self):
        """grad_input equals mmcv's everywhere; grad_offset wherever a bin's reads are all inside."""
        differing_bins = 0
        for case in CASES:
            if not case.offsets:
                continue
            x, rois, offset, mask = case.make()
            grad = torch.randn(case.k, case.c, case.ph, case.pw, generator=torch.Generator().manual_seed(case.seed),
                               dtype=torch.float64)
            # mmcv's kernel sees grad_output * mask (autograd of `d * mask`).
            g_mmcv = grad * mask if case.mask else grad
            mi, mo, banded = mmcv_backward(g_mmcv, x, rois, offset, case.ph, case.pw, case.scale, case.sr, case.gamma)
            gi, go, _ = torch.ops.deformscope._deform_roi_pool_backward(grad, x, rois, offset, mask, *case.scalars())
            with self.subTest(case=case.name):
                close(self, gi, mi, 1e-12, "grad_input vs mmcv")
                diff = (go - mo).abs().amax(dim=1) > 1e-10  # [K, ph, pw]
                self.assertFalse(bool((diff & ~banded).any()),
                                 "grad_offset differs from mmcv's in a bin whose reads all lie inside")
                close(self, go * (~banded).unsqueeze(1), mo * (~banded).unsqueeze(1), 1e-12, "grad_offset inside")
                differing_bins += int(diff.sum())
        # The cases do reach the bands, where mmcv's slope formula is not the derivative.
        self.assertGreater(differing_bins, 0)

    def test_inside_case_matches_mmcv_backward_exactly(self):
        case = Case("inside small offsets", offsets=True, mask=True, placement="inside", gamma=0.02, seed=20)
        x, rois, offset, mask = case.make()
        grad = torch.randn(case.k, case.c, case.ph, case.pw, generator=torch.Generator().manual_seed(3),
                           dtype=torch.float64)
        mi, mo, banded = mmcv_backward(grad * mask, x, rois, offset, case.ph, case.pw, case.scale, case.sr, case.gamma)
        gi, go, _ = torch.ops.deformscope._deform_roi_pool_backward(grad, x, rois, offset, mask, *case.scalars())
        self.assertFalse(bool(banded.any()), "the case was meant to keep every read inside")
        close(self, gi, mi, 1e-12, "grad_input")
        close(self, go, mo, 1e-12, "grad_offset")

    def test_gradcheck(self):
        case = Case("gradcheck", n=2, c=2, h=6, w=7, k=3, ph=2, pw=3, offsets=True, mask=True, gamma=0.3, seed=30)
        x, rois, offset, mask = case.make()
        # Every read away from the integers, where the bilinear slope jumps (and the clamps and range limits lie).
        nearest = min(min(abs(y - round(y)), abs(xx - round(xx)))
                      for *_, reads, _, _, _ in _bins(rois, offset, case.ph, case.pw, case.scale, case.sr, case.gamma)
                      for y, xx in reads)
        self.assertGreater(nearest, 1e-4)
        fn = lambda a, o, m: ours(a, rois, o, m, case)  # noqa: E731
        self.assertTrue(torch.autograd.gradcheck(fn, (x.requires_grad_(), offset.requires_grad_(),
                                                      mask.requires_grad_()), eps=1e-6, atol=1e-7))


class TestAgainstTorchvisionRoiAlign(unittest.TestCase):
    """No offsets and no mask is RoIAlign with aligned=True: pins mmcv's coordinate convention."""

    def test_roi_align(self):
        for case in CASES:
            for sr in (0, 1, 2):
                x, rois, _, _ = case.make()
                for device in devices():
                    for dtype, atol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
                        with self.subTest(case=case.name, sr=sr, device=device, dtype=dtype):
                            a = x.to(device, dtype).requires_grad_()
                            r = rois.to(device, dtype)
                            tv = roi_align(a, r, (case.ph, case.pw), spatial_scale=case.scale, sampling_ratio=sr,
                                           aligned=True)
                            empty = torch.empty(0, device=device, dtype=dtype)
                            zeros = torch.zeros(case.k, 2, case.ph, case.pw, device=device, dtype=dtype)
                            args = (case.ph, case.pw, case.scale, sr, case.gamma, False)
                            got = torch.ops.deformscope.deform_roi_pool(a, r, empty, empty, *args)
                            close(self, got, tv, atol, "forward, no offsets")
                            close(self, torch.ops.deformscope.deform_roi_pool(a, r, zeros, empty, *args), tv, atol,
                                  "forward, zero offsets")
                            grad = torch.randn_like(tv)
                            (g_tv,) = torch.autograd.grad(tv, a, grad)
                            (g_ours,) = torch.autograd.grad(got, a, grad)
                            close(self, g_ours, g_tv, atol, "input gradient")


class TestRegistration(unittest.TestCase):
    def test_schemas(self):
        self.assertEqual(
            str(torch.ops.deformscope.deform_roi_pool.default._schema),
            "deformscope::deform_roi_pool(Tensor input, Tensor rois, Tensor offset, Tensor mask, int pooled_height, "
            "int pooled_width, float spatial_scale, int sampling_ratio, float gamma, bool use_mask) -> Tensor")
        self.assertEqual(
            str(torch.ops.deformscope._deform_roi_pool_backward.default._schema),
            "deformscope::_deform_roi_pool_backward(Tensor grad, Tensor input, Tensor rois, Tensor offset, "
            "Tensor mask, int pooled_height, int pooled_width, float spatial_scale, int sampling_ratio, "
            "float gamma, bool use_mask) -> (Tensor, Tensor, Tensor)")

    def test_bad_arguments_raise_clear_errors(self):
        x, rois, offset, mask = CASES[6].make()
        with self.assertRaisesRegex(RuntimeError, r"rois must have shape \[K, 5\]"):
            torch.ops.deformscope.deform_roi_pool(x, rois[:, :4], offset, mask, 3, 4, 0.5, 2, 0.1, True)
        with self.assertRaisesRegex(RuntimeError, r"offset must have shape \[K, 2, pooled_height, pooled_width\]"):
            torch.ops.deformscope.deform_roi_pool(x, rois, offset, mask, 4, 3, 0.5, 2, 0.1, False)
        with self.assertRaisesRegex(RuntimeError, r"pooled size .* must be positive"):
            torch.ops.deformscope.deform_roi_pool(x, rois, offset, mask, 0, 4, 0.5, 2, 0.1, True)


if __name__ == "__main__":
    LIB_PATH = _resolve_lib_path(sys.argv)
    if not LIB_PATH:
        sys.stderr.write(f"usage: {sys.argv[0]} /path/to/libdeformscope_ops.so [unittest args]\n"
                         f"       (or set {LIB_ENV})\n")
        sys.exit(2)
    unittest.main()
