"""study (does the receptive field adapt to the object?) and its shards, checked from outside.

Makes a folder of 128 x 128 images (the sample models' input size, so areas on the input grid
are the masks' own) with object masks (discs and boxes of many sizes, one
object too small to count, one image without a mask), runs `deformscope-cli study` with two
sample models, and checks against this script's own arithmetic:
  - the objects: one row per connected region (8-neighbour) of one id of at least
    --min-object pixels, per model, with its pixel count;
  - the correlations in result.json: Pearson's r and Spearman's rho (mean ranks for ties)
    between each receptive-field measure and sqrt(object area), with Fisher-z 95 %
    intervals (Spearman's with the 1.06 / (n - 3) variance), recomputed here from study.csv;
  - three shards merged give byte-identical study.csv and the same result.json table as one run;
  - bad input exits with 2 and names the problem.

Usage: test_study.py CLI SOURCE_DIR WORKDIR
"""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from collections import deque

import numpy as np
from PIL import Image

MIN_OBJECT = 16
Z975 = 1.959963984540054


def run(cli, *args, expect=0):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")  # figures without a display
    p = subprocess.run([cli, *args], capture_output=True, text=True, env=env)
    if p.returncode != expect:
        sys.exit(f"FAIL: {' '.join(args)} exited {p.returncode} (expected {expect}):\n{p.stdout}\n{p.stderr}")
    return p


def components(mask):
    """Connected regions (8-neighbour) of each non-zero id: [(label, pixels)], ids ascending, largest first."""
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    found = {}
    for y in range(h):
        for x in range(w):
            if mask[y, x] == 0 or seen[y, x]:
                continue
            label, count, q = mask[y, x], 0, deque([(y, x)])
            seen[y, x] = True
            while q:
                cy, cx = q.popleft()
                count += 1
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and not seen[ny, nx] and mask[ny, nx] == label:
                            seen[ny, nx] = True
                            q.append((ny, nx))
            if count >= MIN_OBJECT:
                found.setdefault(int(label), []).append(count)
    return [(label, n) for label in sorted(found) for n in sorted(found[label], reverse=True)]


def mean_ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


def interval(r, n, factor):
    if abs(r) >= 1:
        return r, r
    se = math.sqrt(factor / (n - 3))
    z = math.atanh(r)
    return math.tanh(z - Z975 * se), math.tanh(z + Z975 * se)


def make_images(folder):
    os.makedirs(folder)
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:128, 0:128]
    objects = 0
    for k in range(7):
        img = np.clip(120 + rng.normal(0, 30, (128, 128, 3)), 0, 255).astype(np.uint8)
        mask = np.zeros((128, 128), np.uint8)
        placed = [(30, 35, 4 + 3 * k, 1), (90, 85, 20 - 2 * k, 2)] if k % 2 == 0 else [(64, 64, 6 + 4.5 * k, 1)]
        for cy, cx, r, label in placed:
            shape = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if label == 1 else \
                ((abs(yy - cy) <= r) & (abs(xx - cx) <= r * 0.6))
            mask[shape] = label
            img[shape] = rng.integers(0, 255, 3)
        if k == 3:
            mask[5:8, 5:8] = 2  # 9 px: under --min-object
        Image.fromarray(img).save(os.path.join(folder, f"img_{k:02d}.png"))
        Image.fromarray(mask).save(os.path.join(folder, f"img_{k:02d}_mask.png"))
        objects += len(components(mask))
    # An image without a mask: skipped, and said so.
    Image.fromarray(np.full((128, 128, 3), 90, np.uint8)).save(os.path.join(folder, "zz_nomask.png"))
    return objects


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    cli, source, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    images = os.path.join(work, "images")
    make_images(images)
    models = [os.path.join(source, "sample_models", m) for m in ("regular.pt", "dcn_v2.pt")]
    common = ["--models", *models, "--images", images, "--what", "erf,sampling", "--min-object", str(MIN_OBJECT)]

    full = os.path.join(work, "full")
    out = run(cli, "study", *common, "--out", full).stdout
    doc = json.load(open(os.path.join(full, "result.json")))
    rows = read_csv(os.path.join(full, "study.csv"))
    assert doc["format"] == "deformscope-study/1"
    assert doc["images"] == 8 and doc["images_used"] == 7, (doc["images"], doc["images_used"])
    assert len(doc["skipped"]) == 1 and "zz_nomask.png" in doc["skipped"][0], doc["skipped"]
    assert os.path.exists(os.path.join(full, "study_erf.png")) and "study_erf.svg" in doc["figures"], doc["figures"]

    # The objects, as this script finds them.
    expected = []
    for name in sorted(os.listdir(images)):
        if name.endswith("_mask.png"):
            mask = np.array(Image.open(os.path.join(images, name)))
            expected += [(name.replace("_mask", ""), label, n) for label, n in components(mask)]
    for model in ("regular", "dcn_v2"):
        mine = [(r["image"], int(r["label"]), int(r["object_area_px"])) for r in rows if r["model"] == model]
        assert mine == expected, (model, mine, expected)
    print(f"{len(expected)} objects, as counted here")

    # The correlations, recomputed from study.csv.
    for entry in doc["table"]:
        model = entry["model"]
        mrows = [r for r in rows if r["model"] == model]
        assert entry["objects"] == len(mrows)
        for measure in ("erf_radius50_px", "erf_radius90_px", "sampling_spread_px"):
            x = [float(r["object_size_px"]) for r in mrows]
            y = [float(r[measure]) for r in mrows]
            got = entry["measures"][measure]
            assert got["n"] == len(x)
            p = pearson(x, y)
            s = pearson(mean_ranks(x), mean_ranks(y))
            for name, r, factor in (("pearson", p, 1.0), ("spearman", s, 1.06)):
                lo, hi = interval(r, len(x), factor)
                assert abs(got[name]["r"] - r) < 1e-9, (model, measure, name, got[name], r)
                assert abs(got[name]["ci95"][0] - lo) < 1e-9 and abs(got[name]["ci95"][1] - hi) < 1e-9, \
                    (model, measure, name, got[name], lo, hi)
            mx, my = sum(x) / len(x), sum(y) / len(y)
            slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
            assert abs(got["slope"] - slope) < 1e-9 * max(1, abs(slope)), (model, measure, got["slope"], slope)
            print(f"{model} {measure}: pearson {p:.3f}, spearman {s:.3f}, slope {slope:.3f} (n {len(x)})")
        assert "saliency_size_px" not in entry["measures"]  # not asked for
    assert "dcn_v2 (" in out and "rho" in out

    # Three shards, merged: exactly one run's numbers.
    parts = []
    for k in (1, 2, 3):
        d = os.path.join(work, f"part{k}")
        run(cli, "study", *common, "--out", d, "--shard", f"{k}/3", "--no-figures")
        parts.append(d)
    merged = os.path.join(work, "merged")
    run(cli, "merge", "--inputs", parts[2], parts[0], parts[1], "--out", merged)
    assert open(os.path.join(merged, "study.csv")).read() == open(os.path.join(full, "study.csv")).read(), \
        "merged study.csv differs from one run's"
    mdoc = json.load(open(os.path.join(merged, "result.json")))
    assert mdoc["table"] == doc["table"], "merged correlations differ from one run's"
    assert mdoc["rows"] == doc["rows"] and mdoc["images_used"] == doc["images_used"]
    print("3 shards merged = one run")

    # Three workers (one per device; here three CPU workers): exactly one worker's numbers.
    workers = os.path.join(work, "workers")
    run(cli, "study", *common, "--out", workers, "--devices", "cpu,cpu,cpu", "--no-figures")
    assert open(os.path.join(workers, "study.csv")).read() == open(os.path.join(full, "study.csv")).read(), \
        "three workers' study.csv differs from one worker's"
    wdoc = json.load(open(os.path.join(workers, "result.json")))
    assert wdoc["table"] == doc["table"] and wdoc["skipped"] == doc["skipped"]
    print("3 workers = 1 worker")

    # Bad input: exit code 2 and the problem named.
    p = run(cli, "merge", "--inputs", parts[0], parts[1], "--out", os.path.join(work, "bad"), expect=2)
    assert "parts missing: 3/3" in p.stderr, p.stderr
    p = run(cli, "study", *common, "--out", os.path.join(work, "bad2"), "--masks", os.path.join(work, "nowhere"),
            expect=2)
    assert "--masks is not a folder" in p.stderr, p.stderr
    print("PASS")


if __name__ == "__main__":
    main()
