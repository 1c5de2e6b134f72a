"""Writes the torchvision fixture model that tests/core/model checks against.

A small ResNet-style network scripted in Python with torchvision.ops.DeformConv2d
(fixed seeds): a stem conv with stride 2, a max-pool, a regular residual block, a
stride-2 block whose second conv is DCNv1, a block whose second conv is DCNv2 (mask
given), a 1x1 classifier and a bilinear upsample back to the input size.

Outputs, in the directory given as the only argument:
  fixture_model.pt  TorchScript, with a deformscope.json extra file
  fixture_data.pt   TorchScript module whose buffers hold what Python computed for
                    one input: input, output, and the offsets/masks of both
                    deformable layers, and the input gradient at one output node.
and the bad inputs the loader must explain:
  no_metadata.pt    the same model without deformscope.json
  mmcv_op.pt        its code calls mmcv::modulated_deform_conv2d (no one registers it)
  two_inputs.pt     forward(x, y): a model with two input frames (loads; its frames lie side by side)
  three_declared.pt forward(x, y) whose deformscope.json declares three inputs
  tuple_output.pt   forward returns (logits, features); dict_output.pt returns a dict
  state_dict.pt     torch.save(state_dict): a zip archive, but not TorchScript
  truncated.pt      the first 60 % of fixture_model.pt
  not_a_model.pt    a text file
and fixture_image.png, a 64 x 80 RGB image for the CLI's capture command.
"""
import json
import os
import sys
import zipfile
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import DeformConv2d

INPUT_SIZE = 48


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class DeformBlockV1(nn.Module):
    """conv1 (stride 2) -> DCNv1 conv2; 1x1 stride-2 projection shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.offset = nn.Conv2d(cout, 18, 3, 1, 1)
        self.conv2 = DeformConv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, 2, 0, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out, self.offset(out)))
        return F.relu(out + self.shortcut(x))


class DeformBlockV2(nn.Module):
    """conv1 -> DCNv2 conv2 (offsets and a sigmoid mask from one conv); identity shortcut."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.offset_mask = nn.Conv2d(c, 27, 3, 1, 1)
        self.conv2 = DeformConv2d(c, c, 3, 1, 1, bias=True)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        om = self.offset_mask(out)
        offset = om[:, :18]
        mask = torch.sigmoid(om[:, 18:])
        out = self.bn2(self.conv2(out, offset, mask))
        return F.relu(out + x)


class FixtureNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = DeformBlockV1(8, 16)
        self.layer3 = DeformBlockV2(16)
        self.classifier = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        h = F.relu(self.bn(self.stem(x)))
        h = self.pool(h)
        h = self.layer1(h)
        h = self.layer2(h)
        h = self.layer3(h)
        logits = self.classifier(h)
        return F.interpolate(logits, scale_factor=8.0, mode="bilinear", align_corners=False)


class Tensors(nn.Module):
    def __init__(self, tensors):
        super().__init__()
        for name, value in tensors.items():
            self.register_buffer(name, value.detach().contiguous())


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)

    def forward(self, x, y):
        return self.conv(x) + self.conv(y)


class TupleOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)

    def forward(self, x) -> Tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return y, y.mean(dim=1)


class DictOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)

    def forward(self, x) -> Dict[str, torch.Tensor]:
        y = self.conv(x)
        return {"out": y, "aux": y.mean(dim=1)}


def write_bad_inputs(out_dir, net, scripted):
    scripted.save(os.path.join(out_dir, "no_metadata.pt"))
    # Same archive with the deformable op renamed to one nobody registers, as a
    # model exported with mmcv's ops would look to a loader without mmcv.
    with zipfile.ZipFile(os.path.join(out_dir, "fixture_model.pt")) as src, \
            zipfile.ZipFile(os.path.join(out_dir, "mmcv_op.pt"), "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if "/code/" in item.filename and item.filename.endswith(".py"):
                data = data.replace(b"ops.torchvision.deform_conv2d", b"ops.mmcv.modulated_deform_conv2d")
            dst.writestr(item, data)
    torch.jit.script(TwoInputs()).save(os.path.join(out_dir, "two_inputs.pt"))
    three = {"inputs": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    torch.jit.script(TwoInputs()).save(os.path.join(out_dir, "three_declared.pt"),
                                       _extra_files={"deformscope.json": json.dumps(three)})
    torch.jit.script(TupleOutput()).save(os.path.join(out_dir, "tuple_output.pt"))
    torch.jit.script(DictOutput()).save(os.path.join(out_dir, "dict_output.pt"))
    torch.save(net.state_dict(), os.path.join(out_dir, "state_dict.pt"))
    with open(os.path.join(out_dir, "fixture_model.pt"), "rb") as f:
        whole = f.read()
    with open(os.path.join(out_dir, "truncated.pt"), "wb") as f:
        f.write(whole[: len(whole) * 6 // 10])
    with open(os.path.join(out_dir, "not_a_model.pt"), "w") as f:
        f.write("this is not a model\n")


class StackStage(nn.Module):
    """dcn(relu(conv(x))), plus x when residual: a regular 3x3 conv, then a DCNv1 whose offsets come from a 3x3 conv."""

    def __init__(self, c: int, residual: bool):
        super().__init__()
        self.residual = residual
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.offset = nn.Conv2d(c, 18, 3, 1, 1)
        self.dcn = DeformConv2d(c, c, 3, 1, 1)

    def forward(self, x):
        h = F.relu(self.conv(x))
        y = self.dcn(h, self.offset(h))
        return x + y if self.residual else y


class DeformStack(nn.Module):
    """Three deformable layers, each after a regular 3x3 conv: the papers' trace through the
    deformable layers only gives 9, 81, 729 points; through every 3x3, others."""

    def __init__(self, residual: bool):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.stage1 = StackStage(8, residual)
        self.stage2 = StackStage(8, residual)
        self.stage3 = StackStage(8, residual)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(self.stage3(self.stage2(self.stage1(F.relu(self.stem(x))))))


class LinearStack(nn.Module):
    """Three 5x5 box filters (weights 1, no bias, no nonlinearity): its ERF is the box filter's
    third power wherever it fits, whatever the input size (the resolution sweep's analytic case)."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 1, 5, padding=2, bias=False)
        self.c1 = nn.Conv2d(1, 1, 5, padding=2, bias=False)
        self.c2 = nn.Conv2d(1, 1, 5, padding=2, bias=False)
        for c in (self.c0, self.c1, self.c2):
            nn.init.ones_(c.weight)

    def forward(self, x):
        return self.c2(self.c1(self.c0(x)))


def write_deform_stack(out_dir):
    torch.jit.script(LinearStack().eval()).save(os.path.join(out_dir, "linear_stack.pt"))
    meta = {"input_size": [48, 48], "suggested_layer": "stage3.dcn",
            "description": "tests/python/make_fixture.py: three DCNv1 layers after regular 3x3 convs"}
    extra = {"deformscope.json": json.dumps(meta)}
    for residual in (False, True):
        torch.manual_seed(4)
        stack = DeformStack(residual)
        with torch.no_grad():
            for stage in (stack.stage1, stack.stage2, stack.stage3):
                stage.offset.weight.normal_(0, 0.05)  # offsets of a pixel or two: points stay on the 48 x 48 map
                stage.offset.bias.uniform_(-0.8, 0.8)
        stack.eval()
        name = "deform_stack_residual" if residual else "deform_stack"
        torch.jit.script(stack).save(os.path.join(out_dir, name + ".pt"), _extra_files=extra)
        if not residual:
            torch.jit.trace(stack, torch.rand(1, 3, 48, 48)).save(os.path.join(out_dir, name + "_traced.pt"),
                                                                 _extra_files=extra)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    net = FixtureNet()
    with torch.no_grad():
        # Non-trivial offsets and BN statistics, so every check has something to see.
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        net.layer2.offset.weight.normal_(0, 0.3)
        net.layer3.offset_mask.weight.normal_(0, 0.3)
    net.eval()
    scripted = torch.jit.script(net)
    meta = {
        "format": "deformscope-model/1",
        "task": "segmentation",
        "input_size": [INPUT_SIZE, INPUT_SIZE],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "color_order": "RGB",
        "class_names": ["a", "b", "c", "d", "e"],
        "suggested_layer": "layer3.conv2",
        "description": "tests/python/make_fixture.py: torchvision DeformConv2d fixture",
    }
    scripted.save(os.path.join(out_dir, "fixture_model.pt"),
                  _extra_files={"deformscope.json": json.dumps(meta)})

    x = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = F.relu(net.bn(net.stem(x)))
        h = net.pool(h)
        h = net.layer1(h)
        l2_in = F.relu(net.layer2.bn1(net.layer2.conv1(h)))
        l2_offset = net.layer2.offset(l2_in)
        h = net.layer2(h)
        l3_in = F.relu(net.layer3.bn1(net.layer3.conv1(h)))
        om = net.layer3.offset_mask(l3_in)
        l3_offset, l3_mask = om[:, :18], torch.sigmoid(om[:, 18:])
        l3_out = net.layer3.conv2(l3_in, l3_offset, l3_mask)
        y = scripted(x)

    # Input gradient of one activation of layer3.conv2 (its channel 0 at (1, 2)), for the ERF cross-check.
    xg = x.clone().requires_grad_(True)
    h = F.relu(net.bn(net.stem(xg)))
    h = net.layer2(net.layer1(net.pool(h)))
    a = F.relu(net.layer3.bn1(net.layer3.conv1(h)))
    om_g = net.layer3.offset_mask(a)
    node = net.layer3.conv2(a, om_g[:, :18], torch.sigmoid(om_g[:, 18:]))[0, 0, 1, 2]
    (grad,) = torch.autograd.grad(node, xg)

    data = Tensors({
        "input": x, "output": y,
        "layer2_input": l2_in, "layer2_offset": l2_offset,
        "layer3_input": l3_in, "layer3_offset": l3_offset, "layer3_mask": l3_mask, "layer3_output": l3_out,
        "layer3_node_input_grad": grad,
    })
    torch.jit.script(data).save(os.path.join(out_dir, "fixture_data.pt"))
    write_bad_inputs(out_dir, net, scripted)
    write_deform_stack(out_dir)
    from PIL import Image  # installed with torchvision
    pixels = torch.randint(0, 256, (64, 80, 3), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    Image.fromarray(pixels.numpy(), "RGB").save(os.path.join(out_dir, "fixture_image.png"))
    # Pillow's own bicubic resizes of it (what torchvision's Resize(..., BICUBIC) does to a PIL
    # image), for the imaging suite's bit-exact check of RepLKNet's preprocessing.
    source = Image.open(os.path.join(out_dir, "fixture_image.png")).convert("RGB")
    for h, w in [(32, 40), (23, 29), (1024, 1024), (131, 50), (64, 57)]:
        source.resize((w, h), Image.BICUBIC).save(os.path.join(out_dir, f"pil_bicubic_{h}x{w}.png"))
    print(f"wrote {out_dir}/fixture_model.pt and fixture_data.pt "
          f"(torch {torch.__version__}, torchvision {torchvision.__version__})")


if __name__ == "__main__":
    main()
