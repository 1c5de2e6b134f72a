#!/usr/bin/env python3
"""The bad-input catalogue: what a new user gets wrong, from the command line, as a table.

Every row is (name, command words, expected exit code, words the message must hold). The
fixtures (damaged and odd files, a NaN model, a model without metadata) are made here, in
WORKDIR, by this script's own Python. A case passes when the exit code is the expected one
(2 for bad input, 0 for a correct result), every expected word is in stdout + stderr, and
nothing crashed (no signal, no C++ backtrace, no "terminate called"). The table is the
specification: add a row for every new kind of bad input.

Usage: bad_input.py CLI SOURCE_DIR WORKDIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile

import numpy as np
import torch
from PIL import Image
from torch import nn


def fixtures(src, work):
    f = {}
    f["model"] = os.path.join(src, "sample_models", "dcn_v2.pt")
    f["regular"] = os.path.join(src, "sample_models", "regular.pt")
    f["roi"] = os.path.join(src, "sample_models", "roi_dcn_v2.pt")
    f["dk"] = os.path.join(src, "sample_models", "dk.pt")
    f["image"] = os.path.join(src, "resources", "samples", "sample_01.png")
    f["images"] = os.path.join(src, "resources", "samples")

    def write(name, data):
        path = os.path.join(work, name)
        with open(path, "wb") as out:
            out.write(data)
        return path

    f["empty"] = write("empty.pt", b"")
    f["text_model"] = write("text.pt", b"this is not a model\n")
    f["truncated"] = write("truncated.pt", open(f["model"], "rb").read()[:5000])
    with zipfile.ZipFile(os.path.join(work, "other.zip"), "w") as z:
        z.writestr("readme.txt", "not TorchScript")
    f["zip"] = os.path.join(work, "other.zip")
    state = os.path.join(work, "state_dict.pt")
    torch.save({"w": torch.zeros(3)}, state)
    f["state_dict"] = state
    f["not_image"] = write("not_image.png", b"\x89PNG\r\n\x1a\nbroken")
    f["zero_image"] = write("zero.png", b"")
    f["dir"] = os.path.join(work, "a_folder")
    os.makedirs(f["dir"], exist_ok=True)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(os.path.join(work, "tiny.png"))
    f["tiny"] = os.path.join(work, "tiny.png")
    Image.fromarray(np.full((96, 160), 128, np.uint8)).save(os.path.join(work, "grey.png"))
    f["grey"] = os.path.join(work, "grey.png")
    Image.fromarray(np.zeros((128, 128, 4), np.uint8)).save(os.path.join(work, "rgba.png"))
    f["rgba"] = os.path.join(work, "rgba.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(os.path.join(work, "mask_small.png"))
    f["mask_small"] = os.path.join(work, "mask_small.png")
    os.makedirs(os.path.join(work, "empty_folder"), exist_ok=True)
    f["empty_folder"] = os.path.join(work, "empty_folder")

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.b = nn.Conv2d(8, 4, 3, padding=1)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    plain = Plain().eval()
    f["plain"] = os.path.join(work, "plain.pt")
    torch.jit.save(torch.jit.script(plain), f["plain"])
    with torch.no_grad():
        plain.b.weight[0, 0, 0, 0] = float("nan")
    f["nan"] = os.path.join(work, "nan.pt")
    torch.jit.save(torch.jit.script(plain), f["nan"])
    with torch.no_grad():
        plain.b.weight[0, 0, 0, 0] = 0.0
        plain.a.bias.fill_(float("inf"))
    f["inf"] = os.path.join(work, "inf.pt")
    torch.jit.save(torch.jit.script(plain), f["inf"])
    bad_meta = os.path.join(work, "bad_meta.pt")
    torch.jit.save(torch.jit.script(Plain().eval()), bad_meta,
                   _extra_files={"deformscope.json": json.dumps({"input_size": "big"})})
    f["bad_meta"] = bad_meta
    not_json = os.path.join(work, "not_json.pt")
    torch.jit.save(torch.jit.script(Plain().eval()), not_json, _extra_files={"deformscope.json": "{oops"})
    f["not_json"] = not_json
    huge_meta = os.path.join(work, "huge_meta.pt")
    torch.jit.save(torch.jit.script(Plain().eval()), huge_meta,
                   _extra_files={"deformscope.json": json.dumps({"input_size": [90000, 90000]})})
    f["huge_meta"] = huge_meta
    np.save(os.path.join(work, "motion_bad.npy"), np.zeros((3, 5, 5), np.float32))
    f["motion_bad"] = os.path.join(work, "motion_bad.npy")
    f["npy_garbage"] = write("garbage.npy", b"\x93NUMPY\x01\x00\xff\xff{")
    f["session_bad"] = write("bad.deformscope-session", b"{not json")
    return f


def cases(f, work):
    out = lambda name: os.path.join(work, "out", name)  # noqa: E731
    m, i = f["model"], f["image"]
    def an(model=m, images=(i,), what="sampling"):
        words = ["analyze", "--model", model]
        for im in images:
            words += ["--image", im]
        return words + ["--no-figures", "--what", what]

    A = an()
    rows = [
        # --- model files
        ("model missing", ["analyze", "--model", os.path.join(work, "nope.pt"), "--image", i, "--out", out("a")], 2,
         ["nope.pt", "no such file"]),
        ("model is a folder", ["analyze", "--model", f["dir"], "--image", i, "--out", out("a")], 2,
         ["a_folder", "directory"]),
        ("model empty", ["analyze", "--model", f["empty"], "--image", i, "--out", out("a")], 2, ["empty.pt", "empty"]),
        ("model is text", ["analyze", "--model", f["text_model"], "--image", i, "--out", out("a")], 2,
         ["text.pt", "not a TorchScript model"]),
        ("model truncated", ["analyze", "--model", f["truncated"], "--image", i, "--out", out("a")], 2,
         ["truncated.pt"]),
        ("zip not TorchScript", ["info", f["zip"]], 2, ["other.zip", "zip file but not a TorchScript model"]),
        ("state_dict not a model", ["info", f["state_dict"]], 2, ["state_dict.pt", "not a TorchScript model"]),
        ("metadata wrong type", ["info", f["bad_meta"]], 2, ["bad_meta.pt", "input_size"]),
        ("metadata not JSON", ["info", f["not_json"]], 2, ["not_json.pt", "deformscope.json"]),
        ("NaN weights", an(f["nan"]) + ["--out", out("nan")], 2,
         ["nan.pt", "NaN or Inf", "'b'", "weight"]),
        ("Inf bias", an(f["inf"]) + ["--out", out("inf")], 2, ["inf.pt", "NaN or Inf", "'a'"]),
        ("metadata input size too big", an(f["huge_meta"]) + ["--out", out("hm")], 2,
         ["90000 x 90000", "memory", "--input-size"]),
        # --- images
        ("image missing", an(images=(os.path.join(work, "nope.png"),)) + ["--out", out("a")], 2, ["nope.png"]),
        ("image not an image", an(images=(f["not_image"],)) + ["--out", out("a")], 2, ["not_image.png"]),
        ("image zero bytes", an(images=(f["zero_image"],)) + ["--out", out("a")], 2, ["zero.png"]),
        ("image is a folder", an(images=(f["dir"],)) + ["--out", out("a")], 2, ["a_folder"]),
        ("image too small for the network", an(f["plain"], (f["tiny"],)) + ["--out", out("a")], 0,
         []),
        ("grey image works", an(images=(f["grey"],)) + ["--out", out("grey")], 0, ["analysed"]),
        ("RGBA image works", an(images=(f["rgba"],)) + ["--out", out("rgba")], 0, ["analysed"]),
        ("huge input size", A + ["--input-size", "100000", "100000", "--out", out("a")], 2,
         ["memory", "--input-size", "GB"]),
        ("input size zero", A + ["--input-size", "0", "10", "--out", out("a")], 2, ["--input-size"]),
        ("input size negative", A + ["--input-size", "-5", "10", "--out", out("a")], 2, ["--input-size"]),
        # --- the node
        ("pixel nan", A + ["--pixel", "nan,nan", "--out", out("a")], 2, ["--pixel", "finite"]),
        ("pixel inf", A + ["--pixel", "inf,3", "--out", out("a")], 2, ["--pixel", "finite"]),
        ("pixel off the image", A + ["--pixel", "500,3", "--out", out("a")], 2, ["--pixel", "outside"]),
        ("pixel negative", A + ["--pixel", "-9,3", "--out", out("a")], 2, ["--pixel", "outside"]),
        ("pixel one number", A + ["--pixel", "3", "--out", out("a")], 2, ["--pixel", "2 comma-separated numbers"]),
        ("pixel words", A + ["--pixel", "a,b", "--out", out("a")], 2, ["--pixel"]),
        ("layer unknown", A + ["--layer", "block9", "--out", out("a")], 2, ["block9", "block3"]),
        ("response bogus", A + ["--response", "max", "--out", out("a")], 2, ["--response", "class:K"]),
        ("channel out of range", A + ["--response", "channel:640", "--out", out("a")], 2, ["channel 640", "64"]),
        ("class out of range", A + ["--response", "class:9", "--out", out("a")], 2, ["class 9", "4"]),
        ("class negative", A + ["--response", "class:-1", "--out", out("a")], 2, ["--response"]),
        # --- settings
        ("levels zero", A + ["--levels", "0", "--out", out("a")], 2, ["--levels", "1 to 8"]),
        ("levels nine", A + ["--levels", "9", "--out", out("a")], 2, ["--levels", "1 to 8"]),
        ("levels text", A + ["--levels", "three", "--out", out("a")], 2, ["--levels"]),
        ("epsilon negative", A + ["--epsilon", "-1", "--out", out("a")], 2, ["--epsilon"]),
        ("epsilon nan", A + ["--epsilon", "nan", "--out", out("a")], 2, ["--epsilon"]),
        ("baseline bogus", A + ["--baseline", "noise", "--out", out("a")], 2, ["--baseline", "blur"]),
        ("baseline blur zero", A + ["--baseline", "blur:0", "--out", out("a")], 2, ["--baseline"]),
        ("forwards zero", A + ["--forwards", "0", "--out", out("a")], 2, ["--forwards"]),
        ("forwards huge", A + ["--forwards", "100000000", "--out", out("a")], 2, ["--forwards"]),
        ("batch huge", A + ["--batch", "5000", "--out", out("a")], 2, ["--batch"]),
        ("min cell zero", A + ["--min-cell", "0", "--out", out("a")], 2, ["--min-cell"]),
        ("colormap bogus", A + ["--colormap", "rainbow", "--out", out("a")], 2, ["--colormap", "inferno", "viridis"]),
        ("overlay bogus", A + ["--overlay", "arrows", "--out", out("a")], 2, ["--overlay"]),
        ("what bogus", ["analyze", "--model", m, "--image", i, "--what", "everything", "--out", out("a")], 2,
         ["--what"]),
        ("what empty", ["analyze", "--model", m, "--image", i, "--what", "", "--out", out("a")], 2, ["--what"]),
        ("through bogus", A + ["--through", "some", "--out", out("a")], 2, ["--through", "deformable"]),
        ("reading bogus", A + ["--reading", "cubic", "--out", out("a")], 2, ["--reading", "bilinear"]),
        ("device bogus", A + ["--device", "tpu", "--out", out("a")], 2, ["--device", "cuda"]),
        ("device cuda absent", A + ["--device", "cuda:3", "--out", out("a")], 2, ["cuda:3"]),
        ("kernel view without DK", ["analyze", "--model", m, "--image", i, "--what", "kernel", "--no-figures",
                                    "--out", out("a")], 2, ["Deformable Kernel"]),
        ("kernel view with DK", ["analyze", "--model", f["dk"], "--image", i, "--what", "kernel", "--no-figures",
                                 "--out", out("dk")], 0, ["analysed"]),
        # --- object regions
        ("object box empty", A + ["--object", "10,10,5,20", "--out", out("a")], 2, ["--object", "x1 > x0"]),
        ("object box nan", A + ["--object", "nan,1,2,3", "--out", out("a")], 2, ["--object", "finite"]),
        ("object box three numbers", A + ["--object", "1,2,3", "--out", out("a")], 2, ["--object"]),
        ("object mask missing", A + ["--object-mask", os.path.join(work, "nomask.png"), "--out", out("a")], 2,
         ["nomask.png"]),
        ("object mask wrong size", A + ["--object-mask", f["mask_small"], "--out", out("a")], 2,
         ["mask_small.png", "64 x 64", "128 x 128"]),
        # --- RoI heads
        ("roi on a model without a RoI head", A + ["--roi", "1,2,30,40", "--out", out("a")], 2,
         ["--roi", "RoI head", "dcn_v2.pt"]),
        ("roi empty box", an(f["roi"]) + ["--roi", "30,2,10,40", "--out", out("a")], 2,
         ["--roi", "x1 > x0"]),
        ("roi nan", an(f["roi"]) + ["--roi", "nan,2,10,40", "--out", out("a")], 2, ["--roi", "finite"]),
        ("bin off the grid", an(f["roi"]) + ["--roi", "2,32,64,92", "--bin", "7,0", "--out", out("a")], 2,
         ["--bin 7,0", "7 rows"]),
        ("bin negative", an(f["roi"]) + ["--bin", "-1,0", "--out", out("a")], 2, ["--bin"]),
        ("bin on a conv layer", an(f["roi"]) + ["--layer", "block3", "--bin", "0,0", "--out", out("a")], 2,
         ["--bin", "RoI pooling", "pool"]),
        ("roi analysis works", an(f["roi"]) + ["--roi", "2,32,64,92", "--bin", "3,3", "--out", out("roi")], 0,
         ["analysed"]),
        # --- motion (video models) on an ordinary model
        ("true motion of the wrong shape", an(os.path.join(os.path.dirname(m), "align.pt"), (i, i), "motion") + ["--true-motion", f["motion_bad"],
                                                "--out", out("a")], 2, ["motion_bad.npy"]),
        ("npy garbage as true motion", an(os.path.join(os.path.dirname(m), "align.pt"), (i, i), "motion") + ["--true-motion", f["npy_garbage"],
                                            "--out", out("a")], 2, ["garbage.npy"]),
        ("two images for a one-input model", an(images=(i, i)) + ["--out", out("a")], 2, ["takes 1 input", "2"]),
        # --- other commands
        ("compare one model", ["compare", "--models", m, "--image", i, "--no-figures", "--what", "sampling",
                               "--out", out("c1")], 0, []),
        ("compare missing model", ["compare", "--models", m, os.path.join(work, "nope.pt"), "--image", i,
                                   "--out", out("a")], 2, ["nope.pt"]),
        ("erf-average empty folder", ["erf-average", "--model", m, "--images", f["empty_folder"], "--out", out("a")],
         2, ["empty_folder"]),
        ("erf-average missing folder", ["erf-average", "--model", m, "--images", os.path.join(work, "nofolder"),
                                        "--out", out("a")], 2, ["nofolder"]),
        ("erf-average bad shard", ["erf-average", "--model", m, "--images", f["images"], "--shard", "3/2",
                                   "--out", out("a")], 2, ["--shard"]),
        ("erf-average node off", ["erf-average", "--model", m, "--images", f["images"], "--node", "99,99",
                                  "--layer", "block3", "--out", out("a")], 2, ["99"]),
        ("study missing masks", ["study", "--models", m, "--images", f["images"], "--masks",
                                 os.path.join(work, "nomasks"), "--out", out("a")], 2, ["nomasks"]),
        ("merge nothing", ["merge", "--inputs", f["empty_folder"], "--out", out("a")], 2, ["empty_folder"]),
        ("sweep bad sizes", ["sweep", "--models", m, "--image", i, "--sizes", "128,abc", "--out", out("a")], 2,
         ["--sizes"]),
        ("sweep size zero", ["sweep", "--models", m, "--image", i, "--sizes", "0", "--out", out("a")], 2, ["--sizes"]),
        ("scale-map grid zero", ["scale-map", "--model", m, "--image", i, "--grid", "0", "--out", out("a")], 2,
         ["--grid"]),
        ("info missing", ["info", os.path.join(work, "nope.pt")], 2, ["nope.pt", "no such file"]),
        ("info bad input size", ["info", m, "--input-size", "0", "0"], 2, ["--input-size"]),
        ("bench json into a missing folder", ["bench", "--json", os.path.join(work, "no", "dir", "b.json"),
                                              "--shapes", "tiny", "--repeat", "1"], 2, ["does not exist"]),
        ("selftest bogus device", ["selftest", "--device", "quantum"], 2, ["--device"]),
        ("unknown command", ["analyse-everything"], 2, []),
        ("unknown option", ["analyze", "--model", m, "--image", i, "--frobnicate", "--out", out("a")], 2,
         ["--frobnicate"]),
        ("missing --out", ["analyze", "--model", m, "--image", i], 2, ["--out"]),
        ("--out is a file", A + ["--out", f["image"]], 2, ["sample_01.png"]),
        ("train-samples bad variant", ["train-samples", "--out", out("t"), "--variants", "dcn_v9"], 2, ["dcn_v9"]),
        # --- sizes and counts of the other commands
        ("info input size too small", ["info", m, "--input-size", "1", "1"], 2, ["total stride", "8 x 8"]),
        ("info input size too big", ["info", m, "--input-size", "60000", "60000"], 2, ["memory", "--input-size"]),
        ("info two models", ["info", m, os.path.join(work, "nope.pt")], 2, ["exactly one MODEL"]),
        ("info of a RoI head", ["info", f["roi"]], 0, ["deform_roi_pool"]),
        ("capture unknown layer", ["capture", "--model", m, "--image", i, "--layer", "block9", "--out", out("a")], 2,
         ["block9", "block3"]),
        ("capture missing image", ["capture", "--model", m, "--image", os.path.join(work, "nope.png"), "--layer",
                                   "block3", "--out", out("a")], 2, ["nope.png"]),
        ("capture works", ["capture", "--model", m, "--image", i, "--layer", "block3", "--out", out("cap")], 0,
         ["captured"]),
        ("erf-average input size too big", ["erf-average", "--model", m, "--images", f["images"], "--input-size",
                                            "60000", "60000", "--out", out("a")], 2, ["memory", "batches of 8"]),
        ("erf-average batch zero", ["erf-average", "--model", m, "--images", f["images"], "--batch", "0",
                                    "--out", out("a")], 2, ["--batch"]),
        ("erf-average limit zero", ["erf-average", "--model", m, "--images", f["images"], "--limit", "0",
                                    "--out", out("a")], 2, ["--limit", "≥ 1"]),
        ("erf-average bad protocol", ["erf-average", "--model", m, "--images", f["images"], "--protocol", "mine",
                                      "--out", out("a")], 2, ["--protocol"]),
        ("erf-average bad node", ["erf-average", "--model", m, "--images", f["images"], "--node", "a,b",
                                  "--out", out("a")], 2, ["--node"]),
        ("erf-average bad devices", ["erf-average", "--model", m, "--images", f["images"], "--devices", "gpu7",
                                     "--out", out("a")], 2, ["gpu7"]),
        ("erf-average shard zero", ["erf-average", "--model", m, "--images", f["images"], "--shard", "0/2",
                                    "--out", out("a")], 2, ["--shard"]),
        ("erf-average shard words", ["erf-average", "--model", m, "--images", f["images"], "--shard", "one",
                                     "--out", out("a")], 2, ["--shard"]),
        ("study min object negative", ["study", "--models", m, "--images", f["images"], "--min-object", "-3",
                                       "--out", out("a")], 2, ["--min-object", "≥ 0"]),
        ("study limit zero", ["study", "--models", m, "--images", f["images"], "--limit", "0", "--out", out("a")], 2,
         ["--limit", "≥ 1"]),
        ("study bad what", ["study", "--models", m, "--images", f["images"], "--what", "everything",
                            "--out", out("a")], 2, ["--what"]),
        ("study missing images", ["study", "--models", m, "--images", os.path.join(work, "noimages"),
                                  "--out", out("a")], 2, ["noimages"]),
        ("study bad shard", ["study", "--models", m, "--images", f["images"], "--shard", "5/4", "--out", out("a")], 2,
         ["--shard"]),
        ("merge missing part", ["merge", "--inputs", os.path.join(work, "nopart"), "--out", out("a")], 2, ["nopart"]),
        ("merge a folder of images", ["merge", "--inputs", f["images"], "--out", out("a")], 2, ["result.json"]),
        ("sweep size too big", ["sweep", "--models", m, "--image", i, "--sizes", "60000", "--out", out("a")], 2,
         ["memory", "--input-size"]),
        ("sweep missing image", ["sweep", "--models", m, "--image", os.path.join(work, "nope.png"), "--out",
                                 out("a")], 2, ["nope.png"]),
        ("sweep negative size", ["sweep", "--models", m, "--image", i, "--sizes", "-128", "--out", out("a")], 2,
         ["--sizes"]),
        ("sweep missing model", ["sweep", "--models", os.path.join(work, "nope.pt"), "--image", i, "--out", out("a")],
         2, ["nope.pt"]),
        ("scale-map grid too big", ["scale-map", "--model", m, "--image", i, "--grid", "5000", "--out", out("a")], 2,
         ["--grid"]),
        ("scale-map batch zero", ["scale-map", "--model", m, "--image", i, "--batch", "0", "--out", out("a")], 2,
         ["--batch"]),
        ("scale-map unknown layer", ["scale-map", "--model", m, "--image", i, "--layer", "block9", "--out", out("a")],
         2, ["block9"]),
        ("scale-map missing image", ["scale-map", "--model", m, "--image", os.path.join(work, "nope.png"), "--out",
                                     out("a")], 2, ["nope.png"]),
        ("bench scope too big", ["bench", "--scope", "100000"], 2, ["--scope"]),
        ("bench repeat zero", ["bench", "--repeat", "0"], 2, ["--repeat"]),
        ("bench unknown shape", ["bench", "--shapes", "huge"], 2, ["huge", "tiny"]),
        ("bench-analyses clicks zero", ["bench-analyses", "--models", m, "--clicks", "0"], 2, ["--clicks", "≥ 1"]),
        ("bench-analyses missing model", ["bench-analyses", "--models", os.path.join(work, "nope.pt")], 2,
         ["nope.pt"]),
        ("bench-load missing model", ["bench-load", "--models", os.path.join(work, "nope.pt")], 2, ["nope.pt"]),
        ("train-samples size not a multiple of 8", ["train-samples", "--out", out("t"), "--size", "100"], 2,
         ["--size", "multiple of 8"]),
        ("train-samples steps zero", ["train-samples", "--out", out("t"), "--steps", "0"], 2, ["--steps"]),
        ("train-samples lr negative", ["train-samples", "--out", out("t"), "--lr", "-1"], 2, ["--lr"]),
        ("train-samples images too many", ["train-samples", "--out", out("t"), "--images", "500"], 2, ["--images"]),
        ("train-samples without --out", ["train-samples"], 2, ["--out"]),
        # --- more of analyze
        ("response channel text", A + ["--response", "channel:x", "--out", out("a")], 2, ["--response"]),
        ("response class on a dense model works", A + ["--response", "class:1", "--out", out("cls")], 0,
         ["analysed"]),
        ("pixel on the edge works", A + ["--pixel", "127.5,0", "--out", out("edge")], 0, ["analysed"]),
        ("epsilon ten", A + ["--epsilon", "10", "--out", out("a")], 2, ["--epsilon"]),
        ("motion alarm zero", A + ["--motion-alarm-px", "0", "--out", out("a")], 2, ["--motion-alarm-px"]),
        ("propagate truth without propagate", A + ["--propagate-truth", i, "--out", out("a")], 2,
         ["--propagate-truth", "--propagate"]),
        ("motion on a one-frame model", an(what="motion") + ["--out", out("a")], 2, ["motion"]),
        ("video missing", ["analyze", "--model", os.path.join(os.path.dirname(m), "align.pt"), "--video",
                           os.path.join(work, "nope.mp4"), "--frames", "0,1", "--out", out("a")], 2, ["nope.mp4"]),
        ("frames without video", ["analyze", "--model", m, "--image", i, "--frames", "0,1", "--out", out("a")], 2,
         ["--frames"]),
        ("session file is not JSON (GUI file given to the CLI)", ["analyze", "--model", f["session_bad"], "--image", i,
                                                                  "--out", out("a")], 2, ["bad.deformscope-session"]),
        ("input size not numbers", A + ["--input-size", "big", "small", "--out", out("a")], 2, ["--input-size"]),
        ("input size one number", A + ["--input-size", "128", "--out", out("a")], 2, ["--input-size"]),
        ("layer of the upsample works", A + ["--layer", "down3", "--out", out("down3")], 0, ["analysed"]),
        ("compare of every sample works", ["compare", "--models", m, f["regular"], f["dk"], "--image", i,
                                           "--no-figures", "--what", "sampling", "--out", out("c3")], 0, ["compared"]),
        ("compare RoI heads with a RoI", ["compare", "--models", f["roi"], os.path.join(os.path.dirname(m),
                                                                                         "roi_regular.pt"),
                                          "--image", i, "--roi", "10,10,60,60", "--no-figures", "--what", "sampling",
                                          "--out", out("croi")], 0, ["compared"]),
        ("compare a RoI with a model without a RoI head", ["compare", "--models", f["roi"], m, "--image", i, "--roi",
                                                           "10,10,60,60", "--out", out("a")], 2, ["RoI head"]),
        ("bin not numbers", an(f["roi"]) + ["--bin", "a,b", "--out", out("a")], 2, ["--bin"]),
        ("bin fractional", an(f["roi"]) + ["--bin", "1.5,2", "--out", out("a")], 2, ["--bin", "whole numbers"]),
        ("roi three numbers", an(f["roi"]) + ["--roi", "1,2,3", "--out", out("a")], 2, ["--roi", "4 comma-separated"]),
        ("roi whole image by default works", an(f["roi"]) + ["--out", out("roiwhole")], 0, ["analysed"]),
        ("overlay empty", A + ["--overlay", "", "--out", out("a")], 2, ["--overlay"]),
        ("colormap empty", A + ["--colormap", "", "--out", out("a")], 2, ["--colormap"]),
        ("object mask is the image (wrong kind of file) works or says", A + ["--object-mask", f["grey"], "--out",
                                                                             out("a")], 2, ["grey.png"]),
        ("train-samples roi heads without trunks", ["train-samples", "--roi-heads", "--out", f["empty_folder"],
                                                    "--variants", "regular"], 2, ["regular.pt", "train it first"]),
    ]
    # On a GPU machine: the estimate is checked against the GPU's free memory, named.
    if torch.cuda.is_available():
        rows.append(("huge input size on the GPU",
                     A + ["--device", "cuda", "--input-size", "100000", "100000", "--out", out("a")], 2,
                     ["cuda:0 memory", "--input-size", "GB"]))
    return rows


def main():
    cli, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "out"))
    f = fixtures(src, work)
    failures = []
    rows = cases(f, work)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for name, words, code, expect in rows:
        try:
            p = subprocess.run([cli, *words], capture_output=True, text=True, env=env, timeout=600)
        except subprocess.TimeoutExpired:
            failures.append(f"{name}: timed out")
            continue
        text = p.stdout + p.stderr
        problems = []
        if p.returncode < 0:
            problems.append(f"killed by signal {-p.returncode}")
        if p.returncode != code:
            problems.append(f"exit {p.returncode}, expected {code}")
        for w in expect:
            if w not in text:
                problems.append(f"message lacks {w!r}")
        for crash in ("terminate called", "frame #", "Segmentation fault", "Aborted"):
            if crash in text:
                problems.append(f"crash-like output ({crash!r})")
        if problems:
            failures.append(f"{name}: {'; '.join(problems)}\n    {' '.join(words)}\n    " +
                            text.strip().replace("\n", "\n    ")[:800])
        else:
            print(f"ok: {name} (exit {p.returncode})")
    print(f"{len(rows) - len(failures)} of {len(rows)} cases as expected")
    if failures:
        sys.exit("FAIL:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
