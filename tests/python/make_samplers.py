"""Writes the sampler test models that DeformScope's C++ tests check against.

Each model reads its stem features at fractional positions ("samplers"), written
the way real code writes them. Every model takes x [1, 3, 32, 32] through
`stem` (3x3 conv, 8 channels) + ReLU, the sampler, and a 1x1 `head` conv (4
channels); the checked node is head output channel 1 at (y, x) = (13, 18).

Usage: make_samplers.py OUTDIR

Models written into OUTDIR (TorchScript, each with a deformscope.json extra file):
  flow_warp.pt            BasicVSR / EDVR `flow_warp`: meshgrid base grid + flow, grid_sample(align_corners=True); scripted
  flow_warp_traced.pt     the same network, torch.jit.trace
  dcn_v3.pt               InternImage `dcnv3_core_pytorch`: G=2 groups x 9 points, grid_sample + softmax mask; scripted
  deform_attn.pt          Deformable DETR `ms_deform_attn_core_pytorch`: 2 levels, 2 heads, 4 points; scripted
  affine_sampler.pt       spatial transformer: fixed affine_grid (20 deg, scale 0.8) + grid_sample(border); scripted
  gather_dcn.pt           the seed article's pure-PyTorch DeformConv2d (floor/clamp/4 gathers), DCNv1; traced
  gather_dcn_v2.pt        the same DeformConv2d with modulation=True (DCNv2); traced
  gather_dcn_scripted.pt  the same DeformConv2d (modulation=True) with TorchScript-only changes; scripted
  unrecognised.pt         hand-written nearest-neighbour sampler (round + one flat gather); traced
For every model NAME above (without .pt):
  NAME_input.npy          the input x, float32 [1, 3, 32, 32]
  NAME_erf.npy            float64 [32, 32]: sum over colours of |d r / d x| for the node r
  NAME_expect.json        model, input, erf, expected sampler kind, node, levels and the node's reads
and samplers_manifest.json: {"models": [NAME, ...]}.

The expected values are computed in float64 on an eager copy of the very module
that was exported; the script then loads each exported file back and asserts it
matches the eager model, and that the read positions agree with an independent
computation from the offsets/flow/theta.
"""
import copy
import json
import math
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

INPUT_HW = 32
NODE: Dict[str, Any] = {"layer": "head", "y": 13, "x": 18, "channel": 1}
METADATA = json.dumps({"input_size": [INPUT_HW, INPUT_HW]})
OUTPUT_TOLERANCE = 1e-5  # exported model vs eager model, float32
READ_TOLERANCE = 1e-9    # read positions vs their independent computation, float64


# ----------------------------------------------------------------------------
# 1. flow_warp (BasicVSR / EDVR)
# ----------------------------------------------------------------------------

def flow_warp(x: Tensor, flow: Tensor) -> Tensor:
    """Warps x [N, C, H, W] by flow [N, H, W, 2] (pixels, (x, y) order), BasicVSR-style.

    Each output pixel reads x at (its own position + its flow); align_corners=True,
    so the normalised coordinate of pixel g is 2 * g / (size - 1) - 1.
    """
    _, _, h, w = x.size()
    grid_y, grid_x = torch.meshgrid(
        torch.arange(0, h, dtype=x.dtype, device=x.device),
        torch.arange(0, w, dtype=x.dtype, device=x.device),
        indexing="ij")
    grid = torch.stack((grid_x, grid_y), 2)  # [H, W, 2], (x, y)
    grid_flow = grid + flow                  # [N, H, W, 2]
    grid_flow_x = 2.0 * grid_flow[:, :, :, 0] / max(w - 1, 1) - 1.0
    grid_flow_y = 2.0 * grid_flow[:, :, :, 1] / max(h - 1, 1) - 1.0
    grid_flow = torch.stack((grid_flow_x, grid_flow_y), dim=3)
    return F.grid_sample(x, grid_flow, mode="bilinear", padding_mode="zeros", align_corners=True)


class FlowWarpNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.flow = nn.Conv2d(8, 2, 3, padding=1)
        self.head = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.flow.weight.normal_(0, 0.2)  # with the x3 below: flows of one to a few pixels

    def forward(self, x: Tensor) -> Tensor:
        feat = F.relu(self.stem(x))
        flow = self.flow(feat).permute(0, 2, 3, 1) * 3.0  # [N, H, W, 2], (x, y), pixels
        return self.head(flow_warp(feat, flow))


# ----------------------------------------------------------------------------
# 2. DCNv3 (InternImage's pure-PyTorch core)
# ----------------------------------------------------------------------------

def dcnv3_reference_points(h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Pixel centres of an H x W map (stride 1, pad 1: output (y, x) is centred on input (y, x)),
    normalised to [0, 1] as (pix + 0.5) / size: [1, H, W, 1, 2], (x, y)."""
    ref_y, ref_x = torch.meshgrid(
        torch.arange(h, dtype=dtype, device=device) + 0.5,
        torch.arange(w, dtype=dtype, device=device) + 0.5,
        indexing="ij")
    ref = torch.stack((ref_x / w, ref_y / h), -1)
    return ref.reshape(1, h, w, 1, 2)


def dcnv3_kernel_grid(h: int, w: int, kernel: int, group: int,
                      dtype: torch.dtype, device: torch.device) -> Tensor:
    """The kernel's regular positions (dilation 1), normalised by the map size: [1, 1, 1, G*P, 2].

    InternImage's point order: meshgrid(xs, ys), so point p has x = p // kernel - kernel // 2
    and y = p % kernel - kernel // 2 (x outer); the same grid is repeated for every group.
    """
    half = kernel // 2
    taps = torch.arange(-half, half + 1, dtype=dtype, device=device)
    grid_x, grid_y = torch.meshgrid(taps, taps, indexing="ij")
    grid = torch.stack((grid_x / w, grid_y / h), -1).reshape(-1, 1, 2)  # [P, 1, 2]
    grid = grid.repeat(1, group, 1).permute(1, 0, 2)                     # [G, P, 2]
    return grid.reshape(1, 1, 1, group * kernel * kernel, 2)


def dcnv3_core(value: Tensor, offset: Tensor, mask: Tensor, kernel: int, group: int) -> Tensor:
    """value [N, C, H, W]; offset [N, H, W, G*P*2] ((x, y) pixels per group and point);
    mask [N, H, W, G*P] (already softmaxed per group). Returns [N, C, H, W]."""
    n, c, h, w = value.shape
    points = kernel * kernel
    ref = dcnv3_reference_points(h, w, value.dtype, value.device)
    grid = dcnv3_kernel_grid(h, w, kernel, group, value.dtype, value.device)
    spatial_norm = torch.tensor([w, h], dtype=value.dtype, device=value.device)
    spatial_norm = spatial_norm.reshape(1, 1, 1, 2).repeat(1, 1, 1, group * points)
    # Sampling locations in [0, 1] (align_corners=False convention), then in [-1, 1].
    locations = (ref + grid).repeat(n, 1, 1, 1, 1).flatten(3, 4) + offset / spatial_norm
    sampling_grids = 2 * locations - 1
    value_ = value.reshape(n * group, c // group, h, w)
    grid_ = sampling_grids.view(n, h * w, group, points, 2).transpose(1, 2).flatten(0, 1)  # [N*G, HW, P, 2]
    sampled = F.grid_sample(value_, grid_, mode="bilinear", padding_mode="zeros",
                            align_corners=False)                                        # [N*G, C/G, HW, P]
    mask_ = mask.view(n, h * w, group, points).transpose(1, 2).reshape(n * group, 1, h * w, points)
    out = (sampled * mask_).sum(-1).view(n, c, h * w)
    return out.view(n, c, h, w)


class DCNv3Net(nn.Module):
    def __init__(self, group: int = 2, kernel: int = 3) -> None:
        super().__init__()
        self.group = group
        self.kernel = kernel
        points = kernel * kernel
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.input_proj = nn.Conv2d(8, 8, 1)
        self.offset = nn.Conv2d(8, group * points * 2, 3, padding=1)
        self.mask = nn.Conv2d(8, group * points, 3, padding=1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        feat = F.relu(self.stem(x))
        n, _, h, w = feat.shape
        value = self.input_proj(feat)
        offset = self.offset(feat).permute(0, 2, 3, 1)  # channels last, as InternImage's Linear gives
        mask = self.mask(feat).permute(0, 2, 3, 1).reshape(n, h, w, self.group, -1)
        mask = F.softmax(mask, -1).reshape(n, h, w, -1)
        return self.head(dcnv3_core(value, offset, mask, self.kernel, self.group))


# ----------------------------------------------------------------------------
# 3. Multi-scale deformable attention (Deformable DETR's pure-PyTorch core)
# ----------------------------------------------------------------------------

def ms_deform_attn_core(value: Tensor, spatial_shapes: List[Tuple[int, int]],
                        sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """value [N, S, M, D] (all levels flattened and concatenated); sampling_locations
    [N, Lq, M, L, P, 2] in [0, 1], (x, y); attention_weights [N, Lq, M, L, P].
    Returns [N, M*D, Lq] (DETR transposes this to [N, Lq, M*D]; we go back to a map)."""
    n, _, heads, dim = value.shape
    _, lq, _, levels, points, _ = sampling_locations.shape
    sizes: List[int] = []
    for hw in spatial_shapes:
        sizes.append(hw[0] * hw[1])
    value_list = value.split(sizes, dim=1)
    sampling_grids = 2 * sampling_locations - 1
    sampled: List[Tensor] = []
    for level, hw in enumerate(spatial_shapes):
        # [N, H*W, M, D] -> [N, H*W, M*D] -> [N, M*D, H*W] -> [N*M, D, H, W]
        value_l = value_list[level].flatten(2).transpose(1, 2).reshape(n * heads, dim, hw[0], hw[1])
        # [N, Lq, M, P, 2] -> [N, M, Lq, P, 2] -> [N*M, Lq, P, 2]
        grid_l = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))  # [N*M, D, Lq, P]
    # [N, Lq, M, L, P] -> [N, M, Lq, L, P] -> [N*M, 1, Lq, L*P]
    weights = attention_weights.transpose(1, 2).reshape(n * heads, 1, lq, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return out.view(n, heads * dim, lq)


class DeformAttnNet(nn.Module):
    def __init__(self, heads: int = 2, levels: int = 2, points: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.levels = levels
        self.points = points
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.value_proj = nn.Conv2d(8, 8, 1)
        self.sampling_offsets = nn.Conv2d(8, heads * levels * points * 2, 1)
        self.attention_weights = nn.Conv2d(8, heads * levels * points, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        feat0 = F.relu(self.stem(x))
        feat1 = self.down(feat0)
        n, c, h, w = feat0.shape
        # Flatten and concatenate the projected levels as DETR's encoder does.
        spatial_shapes: List[Tuple[int, int]] = []
        flat: List[Tensor] = []
        for feat in [feat0, feat1]:
            spatial_shapes.append((feat.shape[2], feat.shape[3]))
            flat.append(self.value_proj(feat).flatten(2).transpose(1, 2))  # [N, H_l*W_l, C]
        value = torch.cat(flat, 1).view(n, -1, self.heads, c // self.heads)
        # Queries: the level-0 positions; reference points: their pixel centres in [0, 1].
        lq = h * w
        offsets = self.sampling_offsets(feat0).flatten(2).transpose(1, 2)
        offsets = offsets.view(n, lq, self.heads, self.levels, self.points, 2)
        weights = self.attention_weights(feat0).flatten(2).transpose(1, 2)
        weights = F.softmax(weights.view(n, lq, self.heads, self.levels * self.points), -1)
        weights = weights.view(n, lq, self.heads, self.levels, self.points)
        ref_y, ref_x = torch.meshgrid(
            (torch.arange(h, dtype=x.dtype, device=x.device) + 0.5) / h,
            (torch.arange(w, dtype=x.dtype, device=x.device) + 0.5) / w,
            indexing="ij")
        reference = torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), -1)  # [Lq, 2], (x, y)
        reference = reference[None, :, None, :].expand(n, lq, self.levels, 2)
        # Offsets are in pixels of each level: divide by that level's (W, H).
        normalizer_rows: List[List[float]] = []
        for hw in spatial_shapes:
            normalizer_rows.append([float(hw[1]), float(hw[0])])
        normalizer = torch.tensor(normalizer_rows, dtype=x.dtype, device=x.device)  # [L, 2]
        locations = reference[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        out = ms_deform_attn_core(value, spatial_shapes, locations, weights)  # [N, M*D, Lq]
        return self.head(out.reshape(n, c, h, w))

    def init_offsets(self) -> None:
        """Deformable DETR's initialisation: offset bias p+1 pixels along each head's
        direction, plus random weights (normal 0.3) so that offsets vary per query."""
        with torch.no_grad():
            thetas = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
            grid = torch.stack([thetas.cos(), thetas.sin()], -1)
            grid = grid / grid.abs().max(-1, keepdim=True)[0]
            grid = grid.view(self.heads, 1, 1, 2).repeat(1, self.levels, self.points, 1)
            for p in range(self.points):
                grid[:, :, p, :] *= p + 1
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
            self.sampling_offsets.weight.normal_(0, 0.3)
            self.attention_weights.weight.normal_(0, 0.3)


# ----------------------------------------------------------------------------
# 4. Spatial transformer (fixed affine grid)
# ----------------------------------------------------------------------------

class AffineSamplerNet(nn.Module):
    def __init__(self, degrees: float = 20.0, scale: float = 0.8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 4, 1)
        a = math.radians(degrees)
        theta = torch.tensor([[[scale * math.cos(a), -scale * math.sin(a), 0.0],
                               [scale * math.sin(a), scale * math.cos(a), 0.0]]])
        self.register_buffer("theta", theta)

    def forward(self, x: Tensor) -> Tensor:
        feat = F.relu(self.stem(x))
        theta = self.theta.expand(feat.size(0), 2, 3)
        grid = F.affine_grid(theta, feat.size(), align_corners=False)
        return self.head(F.grid_sample(feat, grid, align_corners=False, padding_mode="border"))


# ----------------------------------------------------------------------------
# 5. The seed article's pure-PyTorch DeformConv2d (gather-based DCNv1 / DCNv2)
# ----------------------------------------------------------------------------

class DeformConv2d(nn.Module):
    """Deformable convolution in plain PyTorch, as in the seed article (shared/seeds/004).

    Offsets come from `p_conv` in planar layout (channels 0..N-1: rows, N..2N-1: columns);
    positions are taken on the ZeroPad2d-padded input (p_0 starts at 1), clamped to it,
    read with four `gather`s and bilinear weights, optionally modulated by
    sigmoid(m_conv(x)), laid out as a (h*ks, w*ks) map and convolved with stride ks.
    The article's `_set_lr` backward hooks (a training-time no-op) are left out.
    """

    def __init__(self, inc: int, outc: int, kernel_size: int = 3, padding: int = 1, stride: int = 1,
                 bias: Optional[bool] = None, modulation: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.padding = padding
        self.stride = stride
        self.zero_padding = nn.ZeroPad2d(padding)
        # The final conv reads each position's ks x ks block once: stride = kernel size.
        self.conv = nn.Conv2d(inc, outc, kernel_size=kernel_size, stride=kernel_size, bias=bias)
        # Offsets: 2 per kernel tap.
        self.p_conv = nn.Conv2d(inc, 2 * kernel_size * kernel_size, kernel_size=3, padding=1, stride=stride)
        nn.init.constant_(self.p_conv.weight, 0)
        self.modulation = modulation
        if modulation:
            # DCNv2: one modulation scalar per kernel tap.
            self.m_conv = nn.Conv2d(inc, kernel_size * kernel_size, kernel_size=3, padding=1, stride=stride)
            nn.init.constant_(self.m_conv.weight, 0)

    def forward(self, x: Tensor) -> Tensor:
        offset = self.p_conv(x)
        if self.modulation:
            m = torch.sigmoid(self.m_conv(x))

        dtype = offset.data.type()
        ks = self.kernel_size
        N = offset.size(1) // 2

        if self.padding:
            x = self.zero_padding(x)

        # (b, 2N, h, w): absolute sampling positions on the padded input.
        p = self._get_p(offset, dtype)

        # (b, h, w, 2N)
        p = p.contiguous().permute(0, 2, 3, 1)
        q_lt = p.detach().floor()
        q_rb = q_lt + 1

        # The four integer neighbours, clamped to the padded map.
        q_lt = torch.cat([torch.clamp(q_lt[..., :N], 0, x.size(2) - 1),
                          torch.clamp(q_lt[..., N:], 0, x.size(3) - 1)], dim=-1).long()
        q_rb = torch.cat([torch.clamp(q_rb[..., :N], 0, x.size(2) - 1),
                          torch.clamp(q_rb[..., N:], 0, x.size(3) - 1)], dim=-1).long()
        q_lb = torch.cat([q_lt[..., :N], q_rb[..., N:]], dim=-1)
        q_rt = torch.cat([q_rb[..., :N], q_lt[..., N:]], dim=-1)

        # The position itself, clamped to the padded map.
        p = torch.cat([torch.clamp(p[..., :N], 0, x.size(2) - 1),
                       torch.clamp(p[..., N:], 0, x.size(3) - 1)], dim=-1)

        # Bilinear weights (b, h, w, N).
        g_lt = (1 + (q_lt[..., :N].type_as(p) - p[..., :N])) * (1 + (q_lt[..., N:].type_as(p) - p[..., N:]))
        g_rb = (1 - (q_rb[..., :N].type_as(p) - p[..., :N])) * (1 - (q_rb[..., N:].type_as(p) - p[..., N:]))
        g_lb = (1 + (q_lb[..., :N].type_as(p) - p[..., :N])) * (1 - (q_lb[..., N:].type_as(p) - p[..., N:]))
        g_rt = (1 - (q_rt[..., :N].type_as(p) - p[..., :N])) * (1 + (q_rt[..., N:].type_as(p) - p[..., N:]))

        # Neighbour values (b, c, h, w, N).
        x_q_lt = self._get_x_q(x, q_lt, N)
        x_q_rb = self._get_x_q(x, q_rb, N)
        x_q_lb = self._get_x_q(x, q_lb, N)
        x_q_rt = self._get_x_q(x, q_rt, N)

        x_offset = g_lt.unsqueeze(dim=1) * x_q_lt + \
            g_rb.unsqueeze(dim=1) * x_q_rb + \
            g_lb.unsqueeze(dim=1) * x_q_lb + \
            g_rt.unsqueeze(dim=1) * x_q_rt

        if self.modulation:
            m = m.contiguous().permute(0, 2, 3, 1)
            m = m.unsqueeze(dim=1)
            m = torch.cat([m for _ in range(x_offset.size(1))], dim=1)
            x_offset *= m

        x_offset = self._reshape_x_offset(x_offset, ks)
        return self.conv(x_offset)

    def _get_p_n(self, N, dtype):
        # Kernel tap offsets: rows then columns, tap n = (n // ks, n % ks) - (ks - 1) // 2.
        p_n_x, p_n_y = torch.meshgrid(
            torch.arange(-(self.kernel_size - 1) // 2, (self.kernel_size - 1) // 2 + 1),
            torch.arange(-(self.kernel_size - 1) // 2, (self.kernel_size - 1) // 2 + 1))
        p_n = torch.cat([torch.flatten(p_n_x), torch.flatten(p_n_y)], 0)
        return p_n.view(1, 2 * N, 1, 1).type(dtype)

    def _get_p_0(self, h, w, N, dtype):
        # Kernel centres on the padded input (starting at 1: padding 1, kernel 3).
        p_0_x, p_0_y = torch.meshgrid(
            torch.arange(1, h * self.stride + 1, self.stride),
            torch.arange(1, w * self.stride + 1, self.stride))
        p_0_x = torch.flatten(p_0_x).view(1, 1, h, w).repeat(1, N, 1, 1)
        p_0_y = torch.flatten(p_0_y).view(1, 1, h, w).repeat(1, N, 1, 1)
        return torch.cat([p_0_x, p_0_y], 1).type(dtype)

    def _get_p(self, offset, dtype):
        N, h, w = offset.size(1) // 2, offset.size(2), offset.size(3)
        p_n = self._get_p_n(N, dtype)        # (1, 2N, 1, 1)
        p_0 = self._get_p_0(h, w, N, dtype)  # (1, 2N, h, w)
        return p_0 + p_n + offset

    def _get_x_q(self, x, q, N):
        b, h, w, _ = q.size()
        padded_w = x.size(3)
        c = x.size(1)
        x = x.contiguous().view(b, c, -1)                # (b, c, H*W)
        index = q[..., :N] * padded_w + q[..., N:]         # (b, h, w, N): row * W + column
        index = index.contiguous().unsqueeze(dim=1).expand(-1, c, -1, -1, -1).contiguous().view(b, c, -1)
        return x.gather(dim=-1, index=index).contiguous().view(b, c, h, w, N)

    @staticmethod
    def _reshape_x_offset(x_offset, ks):
        # (b, c, h, w, N) -> (b, c, h*ks, w*ks): each position's taps as a ks x ks block.
        b, c, h, w, N = x_offset.size()
        x_offset = torch.cat([x_offset[..., s:s + ks].contiguous().view(b, c, h, w * ks)
                              for s in range(0, N, ks)], dim=-1)
        return x_offset.contiguous().view(b, c, h * ks, w * ks)


class ScriptableDeformConv2d(DeformConv2d):
    """The same DeformConv2d with only what TorchScript needs changed: type annotations,
    a torch.dtype instead of `offset.data.type()` (and `.to(dtype)` for `.type(dtype)`),
    meshgrid given its list and indexing="ij" (its default), the modulation kept in an
    Optional and tested with hasattr (so that modulation=False compiles too), and
    `_reshape_x_offset` as a method. The arithmetic is the same."""

    def forward(self, x: Tensor) -> Tensor:
        offset = self.p_conv(x)
        m: Optional[Tensor] = None
        if hasattr(self, "m_conv"):  # == self.modulation; lets TorchScript skip m_conv when absent
            m = torch.sigmoid(self.m_conv(x))

        dtype = offset.dtype
        ks = self.kernel_size
        N = offset.size(1) // 2

        if self.padding:
            x = self.zero_padding(x)

        p = self._get_p(offset, dtype)
        p = p.contiguous().permute(0, 2, 3, 1)
        q_lt = p.detach().floor()
        q_rb = q_lt + 1

        q_lt = torch.cat([torch.clamp(q_lt[..., :N], 0, x.size(2) - 1),
                          torch.clamp(q_lt[..., N:], 0, x.size(3) - 1)], dim=-1).long()
        q_rb = torch.cat([torch.clamp(q_rb[..., :N], 0, x.size(2) - 1),
                          torch.clamp(q_rb[..., N:], 0, x.size(3) - 1)], dim=-1).long()
        q_lb = torch.cat([q_lt[..., :N], q_rb[..., N:]], dim=-1)
        q_rt = torch.cat([q_rb[..., :N], q_lt[..., N:]], dim=-1)

        p = torch.cat([torch.clamp(p[..., :N], 0, x.size(2) - 1),
                       torch.clamp(p[..., N:], 0, x.size(3) - 1)], dim=-1)

        g_lt = (1 + (q_lt[..., :N].type_as(p) - p[..., :N])) * (1 + (q_lt[..., N:].type_as(p) - p[..., N:]))
        g_rb = (1 - (q_rb[..., :N].type_as(p) - p[..., :N])) * (1 - (q_rb[..., N:].type_as(p) - p[..., N:]))
        g_lb = (1 + (q_lb[..., :N].type_as(p) - p[..., :N])) * (1 - (q_lb[..., N:].type_as(p) - p[..., N:]))
        g_rt = (1 - (q_rt[..., :N].type_as(p) - p[..., :N])) * (1 + (q_rt[..., N:].type_as(p) - p[..., N:]))

        x_q_lt = self._get_x_q(x, q_lt, N)
        x_q_rb = self._get_x_q(x, q_rb, N)
        x_q_lb = self._get_x_q(x, q_lb, N)
        x_q_rt = self._get_x_q(x, q_rt, N)

        x_offset = g_lt.unsqueeze(dim=1) * x_q_lt + \
            g_rb.unsqueeze(dim=1) * x_q_rb + \
            g_lb.unsqueeze(dim=1) * x_q_lb + \
            g_rt.unsqueeze(dim=1) * x_q_rt

        if m is not None:
            m = m.contiguous().permute(0, 2, 3, 1)
            m = m.unsqueeze(dim=1)
            m = torch.cat([m for _ in range(x_offset.size(1))], dim=1)
            x_offset *= m

        x_offset = self._reshape_blocks(x_offset, ks)
        return self.conv(x_offset)

    def _get_p_n(self, N: int, dtype: torch.dtype) -> Tensor:
        p_n_x, p_n_y = torch.meshgrid(
            [torch.arange(-(self.kernel_size - 1) // 2, (self.kernel_size - 1) // 2 + 1),
             torch.arange(-(self.kernel_size - 1) // 2, (self.kernel_size - 1) // 2 + 1)],
            indexing="ij")
        p_n = torch.cat([torch.flatten(p_n_x), torch.flatten(p_n_y)], 0)
        return p_n.view(1, 2 * N, 1, 1).to(dtype)

    def _get_p_0(self, h: int, w: int, N: int, dtype: torch.dtype) -> Tensor:
        p_0_x, p_0_y = torch.meshgrid(
            [torch.arange(1, h * self.stride + 1, self.stride),
             torch.arange(1, w * self.stride + 1, self.stride)],
            indexing="ij")
        p_0_x = torch.flatten(p_0_x).view(1, 1, h, w).repeat(1, N, 1, 1)
        p_0_y = torch.flatten(p_0_y).view(1, 1, h, w).repeat(1, N, 1, 1)
        return torch.cat([p_0_x, p_0_y], 1).to(dtype)

    def _get_p(self, offset: Tensor, dtype: torch.dtype) -> Tensor:
        N, h, w = offset.size(1) // 2, offset.size(2), offset.size(3)
        p_n = self._get_p_n(N, dtype)
        p_0 = self._get_p_0(h, w, N, dtype)
        return p_0 + p_n + offset

    def _get_x_q(self, x: Tensor, q: Tensor, N: int) -> Tensor:
        b, h, w, _ = q.size()
        padded_w = x.size(3)
        c = x.size(1)
        x = x.contiguous().view(b, c, -1)
        index = q[..., :N] * padded_w + q[..., N:]
        index = index.contiguous().unsqueeze(dim=1).expand(-1, c, -1, -1, -1).contiguous().view(b, c, -1)
        return x.gather(dim=-1, index=index).contiguous().view(b, c, h, w, N)

    def _reshape_blocks(self, x_offset: Tensor, ks: int) -> Tensor:
        b, c, h, w, N = x_offset.size()
        x_offset = torch.cat([x_offset[..., s:s + ks].contiguous().view(b, c, h, w * ks)
                              for s in range(0, N, ks)], dim=-1)
        return x_offset.contiguous().view(b, c, h * ks, w * ks)


class GatherDcnNet(nn.Module):
    def __init__(self, modulation: bool, scriptable: bool = False) -> None:
        super().__init__()
        dcn = ScriptableDeformConv2d if scriptable else DeformConv2d
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dcn1 = dcn(8, 8, kernel_size=3, padding=1, stride=1, modulation=modulation)
        self.head = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            # Real offsets of a pixel or so (some taps near the border get clamped), and a
            # modulation that varies per position and tap instead of the article's zero init.
            self.dcn1.p_conv.weight.normal_(0, 0.3)
            if modulation:
                self.dcn1.m_conv.weight.normal_(0, 0.3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dcn1(F.relu(self.stem(x))))


# ----------------------------------------------------------------------------
# 6. A sampler DeformScope should not recognise
# ----------------------------------------------------------------------------

class NearestGatherNet(nn.Module):
    """Reads the nearest pixel to (own position + offset): round, flat index, one gather."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.offset = nn.Conv2d(8, 2, 3, padding=1)
        self.head = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.offset.weight.normal_(0, 0.3)

    def forward(self, x: Tensor) -> Tensor:
        feat = F.relu(self.stem(x))
        n, c, h, w = feat.shape
        offset = self.offset(feat)  # [N, 2, H, W]: (dy, dx) pixels
        ys = torch.arange(h, dtype=feat.dtype, device=feat.device).view(1, h, 1)
        xs = torch.arange(w, dtype=feat.dtype, device=feat.device).view(1, 1, w)
        rows = torch.round(ys + offset[:, 0]).clamp(0, h - 1).long()
        cols = torch.round(xs + offset[:, 1]).clamp(0, w - 1).long()
        index = (rows * w + cols).view(n, 1, h * w).expand(n, c, h * w)
        sampled = feat.flatten(2).gather(2, index).view(n, c, h, w)
        return self.head(sampled)


# ----------------------------------------------------------------------------
# The models to write
# ----------------------------------------------------------------------------

@dataclass
class ModelSpec:
    name: str
    kind: str                          # the sampler kind DeformScope should report
    build: Callable[[], nn.Module]
    export: str                        # "script" or "trace"
    reads: str                         # "spatial" / "queries" (grid_sample), "gather_dcn", "none"
    levels: int
    seed: int


def _deform_attn() -> nn.Module:
    net = DeformAttnNet()
    net.init_offsets()
    return net


def _dcn_v3() -> nn.Module:
    net = DCNv3Net()
    with torch.no_grad():
        net.offset.weight.normal_(0, 0.3)
        net.mask.weight.normal_(0, 0.3)
    return net


SPECS: List[ModelSpec] = [
    ModelSpec("flow_warp", "flow_warp", FlowWarpNet, "script", "spatial", 1, 1),
    ModelSpec("flow_warp_traced", "flow_warp", FlowWarpNet, "trace", "spatial", 1, 1),
    ModelSpec("dcn_v3", "dcn_v3", _dcn_v3, "script", "queries", 1, 2),
    ModelSpec("deform_attn", "deform_attn", _deform_attn, "script", "queries", 2, 3),
    ModelSpec("affine_sampler", "sampler", AffineSamplerNet, "script", "spatial", 1, 4),
    ModelSpec("gather_dcn", "dcn_v1", lambda: GatherDcnNet(False), "trace", "gather_dcn", 1, 5),
    ModelSpec("gather_dcn_v2", "dcn_v2", lambda: GatherDcnNet(True), "trace", "gather_dcn", 1, 6),
    ModelSpec("gather_dcn_scripted", "dcn_v2", lambda: GatherDcnNet(True, scriptable=True), "script",
              "gather_dcn", 1, 6),
    ModelSpec("unrecognised", "unrecognised_sampler", NearestGatherNet, "trace", "none", 1, 7),
]


# ----------------------------------------------------------------------------
# Expected values, computed on a float64 eager copy
# ----------------------------------------------------------------------------

@dataclass
class GridSampleCall:
    grid: Tensor           # detached
    value_size: Tuple[int, int]
    out: Tensor            # the output, with retain_grad()
    align_corners: bool
    padding_mode: str


@contextmanager
def recording_grid_samples() -> Iterator[List[GridSampleCall]]:
    """Records every F.grid_sample call made by eager code inside the block."""
    calls: List[GridSampleCall] = []
    original = F.grid_sample

    def recorder(input: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros",
                 align_corners: Optional[bool] = None) -> Tensor:
        out = original(input, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        out.retain_grad()
        calls.append(GridSampleCall(grid.detach(), (input.shape[-2], input.shape[-1]), out,
                                    bool(align_corners), padding_mode))
        return out

    F.grid_sample = recorder
    try:
        yield calls
    finally:
        F.grid_sample = original


def grid_pixel(g: float, size: int, align_corners: bool, padding_mode: str) -> float:
    """The value-map pixel position (centres at integers) grid_sample reads for coordinate g."""
    pix = (g + 1) / 2 * (size - 1) if align_corners else ((g + 1) * size - 1) / 2
    if padding_mode == "border":
        pix = min(max(pix, 0.0), size - 1.0)
    elif padding_mode != "zeros":
        raise ValueError(f"padding_mode {padding_mode} not handled")
    return pix


def grid_sample_points(calls: List[GridSampleCall], layout: str, y: int, x: int) -> List[Dict[str, Any]]:
    """The node's reads: one entry per call (level), grid batch row and point."""
    points: List[Dict[str, Any]] = []
    for level, call in enumerate(calls):
        grad = call.out.grad
        assert grad is not None, "grid_sample output got no gradient"
        h, w = call.value_size
        rows = call.grid.shape[0]
        for b in range(rows):
            if layout == "spatial":   # grid [B, H, W, 2], out [B, C, H, W]
                reads = [(call.grid[b, y, x], grad[b, :, y, x])]
            else:                     # grid [B, Q, P, 2], out [B, C, Q, P]
                q = y * INPUT_HW + x
                reads = [(call.grid[b, q, p], grad[b, :, q, p]) for p in range(call.grid.shape[2])]
            for p, (g, gout) in enumerate(reads):
                points.append({
                    "row": b, "point": p, "level": level,
                    "y": grid_pixel(float(g[1]), h, call.align_corners, call.padding_mode),
                    "x": grid_pixel(float(g[0]), w, call.align_corners, call.padding_mode),
                    "weight": float(gout.abs().sum()),
                    "clamped": False,
                })
    return points


def gather_dcn_points(dcn: DeformConv2d, offset: Tensor, y: int, x: int) -> List[Dict[str, Any]]:
    """One entry per kernel tap at the node: its clamped position on dcn1's unpadded input,
    whether the clamp moved it, and |d r / d offset| for the tap's (row, column) offsets."""
    grad = offset.grad
    assert grad is not None, "p_conv output got no gradient"
    taps = offset.shape[1] // 2
    with torch.no_grad():
        p = dcn._get_p(offset.detach(), offset.dtype)  # (1, 2N, h, w) on the padded input
    padded_h = offset.shape[2] + 2 * dcn.padding
    padded_w = offset.shape[3] + 2 * dcn.padding
    points: List[Dict[str, Any]] = []
    for n in range(taps):
        row, col = float(p[0, n, y, x]), float(p[0, n + taps, y, x])
        row_c = min(max(row, 0.0), padded_h - 1.0)
        col_c = min(max(col, 0.0), padded_w - 1.0)
        points.append({
            "row": 0, "point": n, "level": 0,
            "y": row_c - dcn.padding, "x": col_c - dcn.padding,
            "weight": math.hypot(float(grad[0, n, y, x]), float(grad[0, n + taps, y, x])),
            "clamped": row_c != row or col_c != col,
        })
    return points


def expected_values(spec: ModelSpec, model: nn.Module,
                    x: Tensor) -> Tuple[np.ndarray, List[Dict[str, Any]], Tensor]:
    """ERF and node reads from a float64 eager copy of `model`; also its float64 output."""
    model64 = copy.deepcopy(model).double().eval()
    x64 = x.double().requires_grad_(True)
    y, xn, ch = NODE["y"], NODE["x"], NODE["channel"]
    offsets: List[Tensor] = []
    if spec.reads == "gather_dcn":
        def keep(_m: nn.Module, _i: Any, out: Tensor) -> None:
            out.retain_grad()
            offsets.append(out)
        model64.dcn1.p_conv.register_forward_hook(keep)
    with recording_grid_samples() as calls:
        out = model64(x64)
    out[0, ch, y, xn].backward()
    assert x64.grad is not None
    erf = x64.grad[0].abs().sum(0).numpy().astype(np.float64)
    if spec.reads in ("spatial", "queries"):
        assert len(calls) == spec.levels, f"{len(calls)} grid_sample calls, expected {spec.levels}"
        points = grid_sample_points(calls, spec.reads, y, xn)
    elif spec.reads == "gather_dcn":
        assert not calls and len(offsets) == 1
        points = gather_dcn_points(model64.dcn1, offsets[0], y, xn)
    else:
        assert not calls
        points = []
    return erf, points, out.detach()


# ----------------------------------------------------------------------------
# Independent checks of the read positions
# ----------------------------------------------------------------------------

def independent_reads(spec: ModelSpec, model: nn.Module,
                      x: Tensor) -> Dict[Tuple[int, int, int], Tuple[float, float]]:
    """(row, point, level) -> (y, x) read at the node, computed from the model's own
    offset/flow/theta outputs rather than from the grid_sample grids."""
    m = copy.deepcopy(model).double().eval()
    Y, X = NODE["y"], NODE["x"]
    reads: Dict[Tuple[int, int, int], Tuple[float, float]] = {}
    with torch.no_grad():
        feat = F.relu(m.stem(x.double()))
        if isinstance(m, FlowWarpNet):
            flow = m.flow(feat)[0, :, Y, X] * 3.0  # (x, y)
            reads[(0, 0, 0)] = (Y + float(flow[1]), X + float(flow[0]))
        elif isinstance(m, AffineSamplerNet):
            t = m.theta[0]
            xn, yn = (2 * X + 1) / INPUT_HW - 1, (2 * Y + 1) / INPUT_HW - 1
            gx = float(t[0, 0] * xn + t[0, 1] * yn + t[0, 2])
            gy = float(t[1, 0] * xn + t[1, 1] * yn + t[1, 2])
            clamp = lambda v: min(max(v, 0.0), INPUT_HW - 1.0)  # noqa: E731 (border padding)
            reads[(0, 0, 0)] = (clamp(((gy + 1) * INPUT_HW - 1) / 2), clamp(((gx + 1) * INPUT_HW - 1) / 2))
        elif isinstance(m, DCNv3Net):
            off = m.offset(feat)[0, :, Y, X]
            k, P = m.kernel, m.kernel * m.kernel
            for g in range(m.group):
                for p in range(P):
                    dx, dy = p // k - k // 2, p % k - k // 2  # InternImage's order: x outer
                    i = (g * P + p) * 2
                    reads[(g, p, 0)] = (Y + dy + float(off[i + 1]), X + dx + float(off[i]))
        elif isinstance(m, DeformAttnNet):
            off = m.sampling_offsets(feat)[0, :, Y, X].view(m.heads, m.levels, m.points, 2)
            sizes = [(INPUT_HW, INPUT_HW), (INPUT_HW // 2, INPUT_HW // 2)]
            for h in range(m.heads):
                for lvl, (hl, wl) in enumerate(sizes):
                    for p in range(m.points):
                        # loc = (pix + 0.5) / 32 + off / size_l; read = loc * size_l - 0.5
                        ry = (Y + 0.5) / INPUT_HW * hl - 0.5 + float(off[h, lvl, p, 1])
                        rx = (X + 0.5) / INPUT_HW * wl - 0.5 + float(off[h, lvl, p, 0])
                        reads[(h, p, lvl)] = (ry, rx)
        elif isinstance(m, GatherDcnNet):
            off = m.dcn1.p_conv(feat)[0, :, Y, X]
            N = off.shape[0] // 2
            for n in range(N):
                dy, dx = n // 3 - 1, n % 3 - 1
                ry = min(max(Y + 1 + dy + float(off[n]), 0.0), INPUT_HW + 1.0) - 1
                rx = min(max(X + 1 + dx + float(off[n + N]), 0.0), INPUT_HW + 1.0) - 1
                reads[(0, n, 0)] = (ry, rx)
    return reads


def check_reads(spec: ModelSpec, model: nn.Module, x: Tensor, points: List[Dict[str, Any]]) -> None:
    reads = independent_reads(spec, model, x)
    got = {(pt["row"], pt["point"], pt["level"]): (pt["y"], pt["x"]) for pt in points}
    assert got.keys() == reads.keys(), f"{spec.name}: read keys {sorted(got)} != {sorted(reads)}"
    for key, (ey, ex) in reads.items():
        gy, gx = got[key]
        assert abs(gy - ey) < READ_TOLERANCE and abs(gx - ex) < READ_TOLERANCE, \
            f"{spec.name} {key}: read ({gy}, {gx}), expected ({ey}, {ex})"
    if points:
        fractional = [pt for pt in points if pt["y"] != round(pt["y"]) or pt["x"] != round(pt["x"])]
        assert fractional, f"{spec.name}: every read is on a pixel centre"
        assert any(pt["weight"] > 0 for pt in points), f"{spec.name}: every read has zero weight"


# ----------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------

def export(spec: ModelSpec, model: nn.Module, x: Tensor) -> torch.jit.ScriptModule:
    if spec.export == "script":
        return torch.jit.script(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about sizes turned into constants
        return torch.jit.trace(model, (x,))


def write_model(spec: ModelSpec, out_dir: str) -> Tuple[int, float]:
    """Writes NAME.pt, NAME_input.npy, NAME_erf.npy and NAME_expect.json; returns (points, seconds)."""
    start = time.perf_counter()
    torch.manual_seed(spec.seed)
    model = spec.build().eval()
    x = torch.randn(1, 3, INPUT_HW, INPUT_HW, generator=torch.Generator().manual_seed(1000 + spec.seed))

    exported = export(spec, model, x)
    model_path = os.path.join(out_dir, f"{spec.name}.pt")
    torch.jit.save(exported, model_path, _extra_files={"deformscope.json": METADATA})

    # The saved file, loaded back, must compute what the eager module computes.
    with torch.no_grad():
        eager_out = model(x)
        loaded_out = torch.jit.load(model_path)(x)
    diff = float((loaded_out - eager_out).abs().max())
    assert diff < OUTPUT_TOLERANCE, f"{spec.name}: loaded model differs from eager by {diff}"

    erf, points, out64 = expected_values(spec, model, x)
    diff64 = float((out64.float() - eager_out).abs().max())
    assert diff64 < 1e-4, f"{spec.name}: float64 copy differs from the float32 model by {diff64}"
    assert erf.shape == (INPUT_HW, INPUT_HW) and erf.sum() > 0
    check_reads(spec, model, x, points)

    np.save(os.path.join(out_dir, f"{spec.name}_input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out_dir, f"{spec.name}_erf.npy"), erf)
    expect = {
        "model": f"{spec.name}.pt",
        "input": f"{spec.name}_input.npy",
        "erf": f"{spec.name}_erf.npy",
        "kind": spec.kind,
        "node": NODE,
        "levels": spec.levels,
        "points": points,
    }
    with open(os.path.join(out_dir, f"{spec.name}_expect.json"), "w") as f:
        json.dump(expect, f, indent=1)
    return len(points), time.perf_counter() - start


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)  # deterministic reductions, and fast enough for these sizes
    for spec in SPECS:
        n_points, seconds = write_model(spec, out_dir)
        print(f"{spec.name:20s} kind={spec.kind:20s} points={n_points:3d} {seconds:6.2f}s")
    with open(os.path.join(out_dir, "samplers_manifest.json"), "w") as f:
        json.dump({"models": [spec.name for spec in SPECS]}, f, indent=1)
    print(f"wrote {len(SPECS)} models to {out_dir} (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=".*torch.meshgrid.*indexing.*")  # the article's meshgrid calls
    sys.exit(main(sys.argv))
