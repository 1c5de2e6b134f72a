"""Writes the video (several input frames) test models that DeformScope's C++ tests check against.

Every model is an "alignment net", written the way video alignment models (EDVR,
TDAN, PoseWarper) are written: shared-weight features `feat` (3x3 conv 3->8 +
ReLU, then a residual block x + conv2(relu(conv1(x))); all stride 1, so feature
coordinates are input-pixel coordinates) applied to each frame; an offset predictor
`offset_net` (3x3 conv on cat([f_ref, f_sup], 1), 16->16, + ReLU) followed by the
3x3 conv `offset` (16->27: 18 offsets in torchvision's layout, channel 2k = dy and
2k+1 = dx of tap k = ky * 3 + kx, then 9 mask logits); the DCNv2 layer `align`
(torchvision.ops.DeformConv2d(8, 8, 3, padding=1)) called as
`align(f_sup, offset, mask=sigmoid(logits))` on the SUPPORT frame's features; and
a 1x1 `head` on cat([aligned, f_ref], 1) -> 3 channels. Module names in the
TorchScript hierarchy: feat.0, feat.2.conv1, feat.2.conv2, offset_net.0, offset,
align, head (feat.1 and offset_net.1 are ReLUs); multi_branch has offset_d3 ...
offset_d24 and branch_d3 ... branch_d24 instead of offset and align.

Usage: make_video.py OUTDIR

Models written into OUTDIR (TorchScript, each with a deformscope.json extra file):
  two_input.pt          forward(reference, support), 32x32; scripted; metadata names the inputs
  two_input_traced.pt   the same weights, torch.jit.trace((reference, support)); no "inputs" in
                        the metadata (the names come from forward's arguments)
  stacked.pt            forward(x), x [1, 6, 32, 32] = cat([reference, support], 1), split with
                        x[:, :3], x[:, 3:]; the same weights; traced; metadata "frames": 2
  stacked5d.pt          forward(x), x [1, 2, 3, 32, 32], frames x[:, 0] (reference), x[:, 1];
                        the same weights; scripted; "frames": 2, "frame_layout": "time"
  multi_branch.pt       PoseWarper-style, 48x48: offset_net feeds five offset convs offset_dD
                        and five DCNs branch_dD (dilation = padding = D for D = 3, 6, 12, 18,
                        24) on the same support features; their outputs are summed; scripted
  translate.pt          the two_input architecture, 48x48, whose `offset` conv has zero weights,
                        offset bias (dy, dx) = (2, -3) for all 9 taps and mask-logit bias 20:
                        its motion field is (dx, dy) = (-3, 2) everywhere; scripted
For every model NAME above (without .pt):
  NAME_reference.npy    the reference frame, float32 [1, 3, H, W] (normalised values)
  NAME_support.npy      the support frame, float32 [1, 3, H, W]
  NAME_input.npy        stacked and stacked5d only: the one tensor forward takes
  NAME_erf.npy          float64 [2, H, W]: for the node r = sum over channels of the node
                        layer's output at (y, x) = node (multi_branch: the sum of the five
                        branch outputs, the head's input), the sum over colours of
                        |d r / d reference| (index 0) and |d r / d support| (index 1);
                        translate's offsets are constants, so its index 0 is all zeros
  NAME_expect.json      model, inputs, node_layer ("align", or the list of branches), node
                        [y, x], and "reads": one entry per node DCN layer and tap k with
                        the support-frame pixel (y + (ky-1)*dil + dy_k, x + (kx-1)*dil + dx_k)
                        it reads, "input": 1 (the support) and the modulation sigmoid(m_k)
The node is (y, x) = (13, 18) on 32x32 models and (20, 25) on 48x48 ones. For translate
the frames are the normalised square_a.png / square_b.png below.
A synthetic frame pair, 48x48, for translate.pt:
  square_a.png          RGB uint8: a textured bright square, rows 14..29, cols 18..33, on a
                        textured darker background
  square_b.png          the whole frame translated by (dx, dy) = (-3, 2), edges replicated
  square_a_mask.png     grey uint8, 255 on the square (square_b_mask.png: on the moved square)
  square_b_mask.png
  square_motion.npy     float32 [2, 48, 48]: the true motion a -> b, dx = -3 (0), dy = 2 (1)
and video_manifest.json.

The expected values are computed in float64 on an eager copy of the very module
that was exported; the script loads each exported file back and asserts it matches
the eager model, that the stacked models give two_input's output for the same
frames, that every DCN output at the node equals a sum written out from the read
positions, modulations and weights (torchvision's bilinear rule), and that
translate.pt aligns square_b onto square_a.
"""
import copy
import json
import os
import struct
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch import Tensor
from torchvision.ops import DeformConv2d

SMALL_HW = 32
LARGE_HW = 48
NODES: Dict[int, Tuple[int, int]] = {SMALL_HW: (13, 18), LARGE_HW: (20, 25)}
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]
DILATIONS = [3, 6, 12, 18, 24]
OFFSET_RMS = 2.5          # pixels: the RMS of the random nets' offsets at their fixture frames
MASK_LOGIT_STD = 1.5      # modulations spread over roughly (0.1, 0.9)
TRANSLATION = (2.0, -3.0)  # translate.pt's (dy, dx)
TRANSLATE_MASK_LOGIT = 20.0
OUTPUT_TOLERANCE = 1e-5   # exported model vs eager model, float32
READ_TOLERANCE = 1e-10    # the node's DCN output vs its written-out sum, float64


# ----------------------------------------------------------------------------
# The networks
# ----------------------------------------------------------------------------

class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def make_features() -> nn.Sequential:
    """feat.0 (conv 3->8), feat.1 (ReLU), feat.2 (residual block: feat.2.conv1, feat.2.conv2)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), ResidualBlock(8))


class AlignNet(nn.Module):
    """forward(reference, support): EDVR/TDAN-style alignment of the support frame's features."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = make_features()
        self.offset_net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.offset = nn.Conv2d(16, 27, 3, padding=1)  # 18 offsets (torchvision layout) + 9 mask logits
        self.align = DeformConv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(16, 3, 1)

    def align_frames(self, reference: Tensor, support: Tensor) -> Tensor:
        f_ref = self.feat(reference)
        f_sup = self.feat(support)
        out = self.offset(self.offset_net(torch.cat([f_ref, f_sup], 1)))
        offset = out[:, :18]
        mask = torch.sigmoid(out[:, 18:])
        aligned = self.align(f_sup, offset, mask=mask)
        return self.head(torch.cat([aligned, f_ref], 1))

    def forward(self, reference: Tensor, support: Tensor) -> Tensor:
        return self.align_frames(reference, support)


class StackedNet(AlignNet):
    """forward(x): x [N, 6, H, W], the frames concatenated on channels, reference first."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.align_frames(x[:, :3], x[:, 3:])


class Stacked5dNet(AlignNet):
    """forward(x): x [N, T=2, 3, H, W], the frames on a time axis, reference first."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.align_frames(x[:, 0], x[:, 1])


class MultiBranchNet(nn.Module):
    """PoseWarper-style: one offset predictor, five dilated DCNs on the same support
    features, each with its own offset conv; the branch outputs are summed."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = make_features()
        self.offset_net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        for d in DILATIONS:
            setattr(self, f"offset_d{d}", nn.Conv2d(16, 27, 3, padding=1))
            setattr(self, f"branch_d{d}", DeformConv2d(8, 8, 3, padding=d, dilation=d))
        self.head = nn.Conv2d(16, 3, 1)

    def forward(self, reference: Tensor, support: Tensor) -> Tensor:
        f_ref = self.feat(reference)
        f_sup = self.feat(support)
        shared = self.offset_net(torch.cat([f_ref, f_sup], 1))
        o = self.offset_d3(shared)
        summed = self.branch_d3(f_sup, o[:, :18], mask=torch.sigmoid(o[:, 18:]))
        o = self.offset_d6(shared)
        summed = summed + self.branch_d6(f_sup, o[:, :18], mask=torch.sigmoid(o[:, 18:]))
        o = self.offset_d12(shared)
        summed = summed + self.branch_d12(f_sup, o[:, :18], mask=torch.sigmoid(o[:, 18:]))
        o = self.offset_d18(shared)
        summed = summed + self.branch_d18(f_sup, o[:, :18], mask=torch.sigmoid(o[:, 18:]))
        o = self.offset_d24(shared)
        summed = summed + self.branch_d24(f_sup, o[:, :18], mask=torch.sigmoid(o[:, 18:]))
        return self.head(torch.cat([summed, f_ref], 1))


def offset_predictor_features(net: nn.Module, reference: Tensor, support: Tensor) -> Tensor:
    with torch.no_grad():
        return net.offset_net(torch.cat([net.feat(reference), net.feat(support)], 1))


def calibrate_offset_conv(conv: nn.Conv2d, shared: Tensor) -> None:
    """Random weights, then the offset rows scaled so that the offsets at the fixture frames
    have an RMS of OFFSET_RMS pixels and the mask rows so that the logits have std
    MASK_LOGIT_STD: points a few pixels off the regular grid, modulations that vary."""
    with torch.no_grad():
        conv.weight.normal_(0, 0.1)
        conv.bias.normal_(0, 0.5)
        out = conv(shared)
        off_scale = OFFSET_RMS / float(out[:, :18].pow(2).mean().sqrt())
        mask_scale = MASK_LOGIT_STD / float(out[:, 18:].std())
        conv.weight[:18] *= off_scale
        conv.bias[:18] *= off_scale
        conv.weight[18:] *= mask_scale
        conv.bias[18:] *= mask_scale


def random_frames(hw: int, seed: int) -> Tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    reference = torch.randn(1, 3, hw, hw, generator=g) * 0.5
    support = torch.randn(1, 3, hw, hw, generator=g) * 0.5
    return reference, support


# ----------------------------------------------------------------------------
# The synthetic frame pair for translate.pt
# ----------------------------------------------------------------------------

SQUARE_ROWS = (14, 30)  # [start, stop)
SQUARE_COLS = (18, 34)


def smooth_noise(rng: np.random.Generator, shape: Tuple[int, int, int]) -> np.ndarray:
    """Normal noise box-blurred twice (3x3, wrap-around), rescaled to [-1, 1]."""
    n = rng.standard_normal(shape)
    for _ in range(2):
        n = sum(np.roll(np.roll(n, dy, 1), dx, 2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    return n / np.abs(n).max()


def square_scene() -> Tuple[np.ndarray, np.ndarray]:
    """Frame a [H, W, 3] uint8 and its square mask [H, W] uint8."""
    hw = LARGE_HW
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:hw, 0:hw].astype(np.float64)
    # Non-periodic noise carries most of the texture; the waves are longer than 9 pixels,
    # so that a 3-pixel motion cannot alias onto a shorter one.
    stripes = np.sin(0.35 * xx + 0.2 * yy) * np.cos(0.25 * yy - 0.15 * xx)
    background = 60 + 30 * smooth_noise(rng, (3, hw, hw)) + 12 * stripes[None]
    background += np.array([0, 10, 20], dtype=np.float64)[:, None, None]
    square = 200 + 30 * smooth_noise(rng, (3, hw, hw)) + 12 * np.cos(0.45 * xx - 0.3 * yy)[None]
    square -= np.array([20, 0, 10], dtype=np.float64)[:, None, None]
    mask = np.zeros((hw, hw), dtype=np.uint8)
    mask[SQUARE_ROWS[0]:SQUARE_ROWS[1], SQUARE_COLS[0]:SQUARE_COLS[1]] = 255
    img = np.where(mask[None] > 0, square, background)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(img), mask


def translate_replicate(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = img[clamp(y - dy), clamp(x - dx)]: the content moves by (dx, dy)."""
    h, w = img.shape[:2]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return np.ascontiguousarray(img[rows][:, cols])


def write_png(path: str, img: np.ndarray) -> None:
    """img [H, W, 3] (RGB) or [H, W] (grey), uint8; filter 0 on every row."""
    assert img.dtype == np.uint8
    h, w = img.shape[:2]
    colour_type = 2 if img.ndim == 3 else 0
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))
    # Read back with torchvision's decoder: the file must be a valid PNG with these pixels.
    decoded = torchvision.io.decode_png(torchvision.io.read_file(path))
    expected = img if img.ndim == 3 else img[:, :, None]
    assert np.array_equal(decoded.permute(1, 2, 0).numpy(), expected), f"{path}: PNG round trip differs"


def normalise(img: np.ndarray) -> Tensor:
    """[H, W, 3] uint8 -> [1, 3, H, W] float32, (v / 255 - mean) / std as the metadata says."""
    x = torch.from_numpy(img).permute(2, 0, 1).float().div(255.0)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0).contiguous()


def write_scene(out_dir: str) -> Tuple[Tensor, Tensor]:
    """Writes the square pair, masks and motion; returns the normalised frames (a, b)."""
    dy, dx = int(TRANSLATION[0]), int(TRANSLATION[1])
    img_a, mask_a = square_scene()
    img_b = translate_replicate(img_a, dy, dx)
    mask_b = translate_replicate(mask_a, dy, dx)
    rows_b, cols_b = np.nonzero(mask_b)
    assert (rows_b.min(), rows_b.max(), cols_b.min(), cols_b.max()) == \
        (SQUARE_ROWS[0] + dy, SQUARE_ROWS[1] - 1 + dy, SQUARE_COLS[0] + dx, SQUARE_COLS[1] - 1 + dx)
    assert int(mask_b.sum()) == int(mask_a.sum()), "the square left the frame"
    write_png(os.path.join(out_dir, "square_a.png"), img_a)
    write_png(os.path.join(out_dir, "square_b.png"), img_b)
    write_png(os.path.join(out_dir, "square_a_mask.png"), mask_a)
    write_png(os.path.join(out_dir, "square_b_mask.png"), mask_b)
    motion = np.empty((2, LARGE_HW, LARGE_HW), dtype=np.float32)
    motion[0] = dx
    motion[1] = dy
    np.save(os.path.join(out_dir, "square_motion.npy"), motion)
    return normalise(img_a), normalise(img_b)


# ----------------------------------------------------------------------------
# The models to write
# ----------------------------------------------------------------------------

def metadata(hw: int, **extra: Any) -> Dict[str, Any]:
    meta: Dict[str, Any] = dict(extra)
    meta.update({"input_size": [hw, hw], "mean": MEAN, "std": STD})
    return meta


PAIR_INPUTS = [{"name": "reference"}, {"name": "support"}]


@dataclass
class VideoSpec:
    name: str
    build: Callable[[], nn.Module]  # the eager module, weights set
    export: str                     # "script" or "trace"
    feed: str                       # "pair": forward(reference, support); "channels" / "time": forward(x)
    hw: int
    frames: Callable[[], Tuple[Tensor, Tensor]]
    metadata: Dict[str, Any]
    node_layers: List[str] = field(default_factory=lambda: ["align"])


def pack(feed: str, reference: Tensor, support: Tensor) -> Tuple[Tensor, ...]:
    if feed == "pair":
        return reference, support
    if feed == "channels":
        return (torch.cat([reference, support], 1),)
    if feed == "time":
        return (torch.stack([reference, support], 1),)
    raise ValueError(feed)


_BUILT: Dict[str, nn.Module] = {}


def shared_align_net() -> AlignNet:
    """The weights models 1-4 share (seed 1, offsets calibrated on the 32x32 frames)."""
    if "align" not in _BUILT:
        torch.manual_seed(1)
        net = AlignNet().eval()
        calibrate_offset_conv(net.offset, offset_predictor_features(net, *small_frames()))
        _BUILT["align"] = net
    return _BUILT["align"]  # type: ignore[return-value]


def with_shared_weights(cls: type) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        net = cls().eval()
        net.load_state_dict(shared_align_net().state_dict())
        return net
    return build


def small_frames() -> Tuple[Tensor, Tensor]:
    return random_frames(SMALL_HW, 101)


def large_frames() -> Tuple[Tensor, Tensor]:
    return random_frames(LARGE_HW, 105)


def build_multi_branch() -> nn.Module:
    torch.manual_seed(5)
    net = MultiBranchNet().eval()
    shared = offset_predictor_features(net, *large_frames())
    for d in DILATIONS:
        calibrate_offset_conv(getattr(net, f"offset_d{d}"), shared)
    return net


def build_translate() -> nn.Module:
    torch.manual_seed(6)
    net = AlignNet().eval()
    with torch.no_grad():
        net.offset.weight.zero_()
        bias = torch.empty(27)
        bias[0:18:2] = TRANSLATION[0]   # dy of every tap
        bias[1:18:2] = TRANSLATION[1]   # dx of every tap
        bias[18:] = TRANSLATE_MASK_LOGIT
        net.offset.bias.copy_(bias)
    return net


_SCENE: Dict[str, Tuple[Tensor, Tensor]] = {}


def scene_frames() -> Tuple[Tensor, Tensor]:
    return _SCENE["frames"]


SPECS: List[VideoSpec] = [
    VideoSpec("two_input", with_shared_weights(AlignNet), "script", "pair", SMALL_HW, small_frames,
              metadata(SMALL_HW, inputs=PAIR_INPUTS, suggested_layer="align")),
    VideoSpec("two_input_traced", with_shared_weights(AlignNet), "trace", "pair", SMALL_HW, small_frames,
              metadata(SMALL_HW, suggested_layer="align")),
    VideoSpec("stacked", with_shared_weights(StackedNet), "trace", "channels", SMALL_HW, small_frames,
              metadata(SMALL_HW, frames=2, suggested_layer="align")),
    VideoSpec("stacked5d", with_shared_weights(Stacked5dNet), "script", "time", SMALL_HW, small_frames,
              metadata(SMALL_HW, frames=2, frame_layout="time", suggested_layer="align")),
    VideoSpec("multi_branch", build_multi_branch, "script", "pair", LARGE_HW, large_frames,
              metadata(LARGE_HW, inputs=PAIR_INPUTS, suggested_layer="branch_d3"),
              [f"branch_d{d}" for d in DILATIONS]),
    VideoSpec("translate", build_translate, "script", "pair", LARGE_HW, scene_frames,
              metadata(LARGE_HW, inputs=PAIR_INPUTS, suggested_layer="align")),
]


# ----------------------------------------------------------------------------
# Expected values, computed on a float64 eager copy
# ----------------------------------------------------------------------------

@dataclass
class DcnCall:
    layer: str
    value: Tensor    # the DCN's input (the support features), detached
    offset: Tensor   # detached
    mask: Tensor     # detached
    out: Tensor      # in the autograd graph


def record_dcn_calls(model: nn.Module, layers: List[str]) -> Tuple[List[DcnCall], List[Any]]:
    calls: List[DcnCall] = []
    handles = []
    for name in layers:
        def hook(_m: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any], out: Tensor,
                 name: str = name) -> None:
            mask = kwargs["mask"] if "mask" in kwargs else args[2]
            calls.append(DcnCall(name, args[0].detach(), args[1].detach(), mask.detach(), out))
        handles.append(model.get_submodule(name).register_forward_hook(hook, with_kwargs=True))
    return calls, handles


def bilinear(value: Tensor, y: float, x: float) -> Tensor:
    """torchvision's deform_conv2d sample of value [C, H, W] at (y, x): zero when y <= -1,
    y >= H, x <= -1 or x >= W; otherwise bilinear with the corners outside the map zero."""
    c, h, w = value.shape
    out = torch.zeros(c, dtype=value.dtype)
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return out
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    for yi, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xi, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yi < h and 0 <= xi < w:
                out += wy * wx * value[:, yi, xi]
    return out


def node_reads(model: nn.Module, call: DcnCall, y: int, x: int) -> List[Dict[str, Any]]:
    """The node's 9 reads in `call`, checked: the DCN's output at the node must equal the
    sum over taps of weight * modulation * bilinear(support features, read) + bias."""
    dcn = model.get_submodule(call.layer)
    assert isinstance(dcn, DeformConv2d)
    dil_y, dil_x = dcn.dilation
    assert dcn.padding == dcn.dilation and dcn.stride == (1, 1), "reads assume a 'same' stride-1 DCN"
    h, w = call.value.shape[-2:]
    reads: List[Dict[str, Any]] = []
    written_out = dcn.bias.detach().clone()
    for k in range(9):
        ky, kx = divmod(k, 3)
        ry = y + (ky - 1) * dil_y + float(call.offset[0, 2 * k, y, x])
        rx = x + (kx - 1) * dil_x + float(call.offset[0, 2 * k + 1, y, x])
        m = float(call.mask[0, k, y, x])
        written_out += dcn.weight.detach()[:, :, ky, kx] @ (m * bilinear(call.value[0], ry, rx))
        reads.append({"layer": call.layer, "tap": k, "y": ry, "x": rx, "input": 1, "modulation": m,
                      "dilation": dil_y, "inside": bool(-1 < ry < h and -1 < rx < w)})
    diff = float((written_out - call.out.detach()[0, :, y, x]).abs().max())
    assert diff < READ_TOLERANCE, f"{call.layer}: node output differs from its written-out reads by {diff}"
    return reads


def expected_values(spec: VideoSpec, model: nn.Module, reference: Tensor,
                    support: Tensor) -> Tuple[np.ndarray, List[Dict[str, Any]], Tensor]:
    """ERF [2, H, W] and the node's reads from a float64 eager copy; also its output."""
    model64 = copy.deepcopy(model).double().eval()
    ref64 = reference.double().requires_grad_(True)
    sup64 = support.double().requires_grad_(True)
    calls, handles = record_dcn_calls(model64, spec.node_layers)
    out = model64(*pack(spec.feed, ref64, sup64))
    for h in handles:
        h.remove()
    assert [c.layer for c in calls] == spec.node_layers, f"{spec.name}: DCN calls {[c.layer for c in calls]}"
    y, x = NODES[spec.hw]
    node = calls[0].out
    for c in calls[1:]:
        node = node + c.out
    node[0, :, y, x].sum().backward()
    assert ref64.grad is not None and sup64.grad is not None
    erf = torch.stack([ref64.grad[0].abs().sum(0), sup64.grad[0].abs().sum(0)]).numpy().astype(np.float64)
    reads: List[Dict[str, Any]] = []
    for c in calls:
        reads += node_reads(model64, c, y, x)
    return erf, reads, out.detach()


def check_reads(spec: VideoSpec, reads: List[Dict[str, Any]]) -> None:
    y, x = NODES[spec.hw]
    if spec.name == "translate":
        for r in reads:
            ky, kx = divmod(r["tap"], 3)
            assert r["y"] == y + ky - 1 + TRANSLATION[0] and r["x"] == x + kx - 1 + TRANSLATION[1], r
            assert abs(r["modulation"] - 1.0) < 1e-8, r
        return
    # Random nets: the points must be well off the regular grid, fractional, modulations spread.
    shifts = []
    for r in reads:
        ky, kx = divmod(r["tap"], 3)
        shifts.append(np.hypot(r["y"] - (y + (ky - 1) * r["dilation"]), r["x"] - (x + (kx - 1) * r["dilation"])))
    assert 0.5 < float(np.median(shifts)) < 8.0, f"{spec.name}: median shift {np.median(shifts)}"
    assert all(r["y"] != round(r["y"]) and r["x"] != round(r["x"]) for r in reads)
    mods = [r["modulation"] for r in reads]
    assert max(mods) - min(mods) > 0.2, f"{spec.name}: modulations {mods}"


def check_translate_alignment(model: nn.Module, frame_a: Tensor, frame_b: Tensor) -> float:
    """With reference = a and support = b (a moved by (dx, dy)), `align` reads b at p + (dx, dy),
    which is a at p: away from the borders its output is a plain conv of a's features."""
    m = copy.deepcopy(model).double().eval()
    calls, handles = record_dcn_calls(m, ["align"])
    with torch.no_grad():
        m(frame_a.double(), frame_b.double())
        f_ref = m.feat(frame_a.double())
        plain = F.conv2d(f_ref, m.align.weight, m.align.bias, padding=1)
    for h in handles:
        h.remove()
    margin = 8
    inner = (slice(None), slice(None), slice(margin, LARGE_HW - margin), slice(margin, LARGE_HW - margin))
    diff = float((calls[0].out.detach()[inner] - plain[inner]).abs().max())
    assert diff < 1e-6 * max(1.0, float(plain.abs().max())), f"translate: alignment error {diff}"
    return diff


# ----------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------

def export(spec: VideoSpec, model: nn.Module, args: Tuple[Tensor, ...]) -> torch.jit.ScriptModule:
    if spec.export == "script":
        return torch.jit.script(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about sizes turned into constants
        return torch.jit.trace(model, args)


def write_model(spec: VideoSpec, out_dir: str, outputs: Dict[str, Tensor]) -> Tuple[int, float]:
    """Writes NAME.pt and its expectations; returns (reads, seconds)."""
    start = time.perf_counter()
    model = spec.build().eval()
    reference, support = spec.frames()
    assert reference.shape == support.shape == (1, 3, spec.hw, spec.hw)
    args = pack(spec.feed, reference, support)

    exported = export(spec, model, args)
    model_path = os.path.join(out_dir, f"{spec.name}.pt")
    torch.jit.save(exported, model_path, _extra_files={"deformscope.json": json.dumps(spec.metadata)})

    # The saved file, loaded back, must compute what the eager module computes.
    extra = {"deformscope.json": ""}
    loaded = torch.jit.load(model_path, _extra_files=extra)
    assert json.loads(extra["deformscope.json"]) == spec.metadata
    with torch.no_grad():
        eager_out = model(*args)
        loaded_out = loaded(*args)
    diff = float((loaded_out - eager_out).abs().max())
    assert diff < OUTPUT_TOLERANCE, f"{spec.name}: loaded model differs from eager by {diff}"
    assert eager_out.shape == (1, 3, spec.hw, spec.hw)
    outputs[spec.name] = loaded_out

    erf, reads, out64 = expected_values(spec, model, reference, support)
    diff64 = float((out64.float() - eager_out).abs().max())
    assert diff64 < 1e-4, f"{spec.name}: float64 copy differs from the float32 model by {diff64}"
    assert erf.shape == (2, spec.hw, spec.hw) and erf[1].sum() > 0
    if spec.name == "translate":
        # Its offsets and masks are constants: the node depends on the support frame only.
        assert erf[0].sum() == 0, f"translate: the reference frame reaches the node ({erf[0].sum()})"
    else:
        assert erf[0].sum() > 0, f"{spec.name}: the reference frame does not reach the node"
    check_reads(spec, reads)

    np.save(os.path.join(out_dir, f"{spec.name}_reference.npy"), reference.numpy().astype(np.float32))
    np.save(os.path.join(out_dir, f"{spec.name}_support.npy"), support.numpy().astype(np.float32))
    np.save(os.path.join(out_dir, f"{spec.name}_erf.npy"), erf)
    y, x = NODES[spec.hw]
    expect: Dict[str, Any] = {
        "model": f"{spec.name}.pt",
        "inputs": ["reference", "support"],
        "reference": f"{spec.name}_reference.npy",
        "support": f"{spec.name}_support.npy",
        "erf": f"{spec.name}_erf.npy",
        "input_size": [spec.hw, spec.hw],
        "node_layer": spec.node_layers[0] if len(spec.node_layers) == 1 else spec.node_layers,
        "node_layers": spec.node_layers,
        "node": [y, x],
        "reads": reads,
    }
    if spec.feed != "pair":
        np.save(os.path.join(out_dir, f"{spec.name}_input.npy"), args[0].numpy().astype(np.float32))
        expect["input"] = f"{spec.name}_input.npy"
        expect["frame_layout"] = spec.feed
    if spec.name == "translate":
        expect["frames"] = ["square_a.png", "square_b.png"]
        expect["motion"] = "square_motion.npy"
        expect["alignment_error"] = check_translate_alignment(model, reference, support)
    with open(os.path.join(out_dir, f"{spec.name}_expect.json"), "w") as f:
        json.dump(expect, f, indent=1)
    return len(reads), time.perf_counter() - start


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)  # deterministic reductions, and fast enough for these sizes
    _SCENE["frames"] = write_scene(out_dir)
    outputs: Dict[str, Tensor] = {}
    for spec in SPECS:
        n_reads, seconds = write_model(spec, out_dir, outputs)
        print(f"{spec.name:18s} {spec.export:6s} feed={spec.feed:8s} reads={n_reads:3d} {seconds:6.2f}s")
    # Models 1-4 share weights and frames: however the frames are fed, the output is the same.
    for name in ("two_input_traced", "stacked", "stacked5d"):
        diff = float((outputs[name] - outputs["two_input"]).abs().max())
        assert diff < OUTPUT_TOLERANCE, f"{name}: output differs from two_input's by {diff}"
    manifest = {
        "models": [spec.name for spec in SPECS],
        "scenes": [{"model": "translate", "frames": ["square_a.png", "square_b.png"],
                    "masks": ["square_a_mask.png", "square_b_mask.png"], "motion": "square_motion.npy",
                    "motion_xy": [TRANSLATION[1], TRANSLATION[0]]}],
    }
    with open(os.path.join(out_dir, "video_manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(SPECS)} models to {out_dir} (torch {torch.__version__}, torchvision {torchvision.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
