#!/usr/bin/env python3
"""`--out DIR` as one unit (core/common/output_folder.h), checked from outside.

  - manifest.json lists every file of the folder with its size and SHA-256 (recomputed
    here), the command line and the version;
  - a rerun replaces the earlier set: a file the earlier run (or the user) left there is gone;
  - Ctrl-C (SIGINT) in the middle of a run leaves the earlier set byte for byte as it was,
    and the next run clears what the interrupted one left beside it;
  - a second run into a folder another run is writing refuses at once (exit 2, naming the
    other process) and the first one completes untouched;
  - --out naming a file is refused.

Usage: out_folder.py CLI SOURCE_DIR WORKDIR
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)
    print("ok:", what)


def listing(d):
    return sorted(os.listdir(d))


def digest(d):
    return {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest() for f in listing(d)}


def main():
    cli, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    model = os.path.join(src, "sample_models", "dcn_v2.pt")
    image = os.path.join(src, "resources", "samples", "sample_01.png")
    out = os.path.join(work, "out")
    base = [cli, "analyze", "--model", model, "--image", image, "--out", out, "--no-figures"]

    p = subprocess.run(base + ["--what", "erf"], capture_output=True, text=True)
    check(p.returncode == 0, "a first run writes its folder")
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    files = {e["file"]: e for e in manifest["files"]}
    check(set(files) == set(listing(out)) - {"manifest.json"}, "manifest.json lists every file")
    for name, e in files.items():
        data = open(os.path.join(out, name), "rb").read()
        check(e["bytes"] == len(data) and e["sha256"] == hashlib.sha256(data).hexdigest(),
              f"manifest.json: {name}'s size and SHA-256")
    check(manifest["command"][1:3] == ["analyze", "--model"] and manifest["version"],
          "manifest.json: the command line and the version")
    first = digest(out)

    open(os.path.join(out, "stale.txt"), "w").write("left over")
    p = subprocess.run(base + ["--what", "sampling"], capture_output=True, text=True)
    check(p.returncode == 0 and "stale.txt" not in listing(out) and "erf.npy" not in listing(out)
          and "sampling.csv" in listing(out), "a rerun replaces the earlier set (nothing stale stays)")
    second = digest(out)

    # Ctrl-C during a long run: the earlier set stays as it was.
    slow = subprocess.Popen(base + ["--what", "saliency", "--forwards", "20000", "--min-cell", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    # A second run into the same folder meanwhile: refused at once.
    p = subprocess.run(base + ["--what", "erf"], capture_output=True, text=True)
    check(p.returncode == 2 and "another run" in p.stderr and str(slow.pid) in p.stderr,
          "a second run into a folder being written refuses, naming the other process")
    slow.send_signal(signal.SIGINT)
    slow.wait(timeout=60)
    check(slow.returncode != 0, f"the interrupted run stops (exit {slow.returncode})")
    check(digest(out) == second, "Ctrl-C leaves the earlier set byte for byte")
    p = subprocess.run(base + ["--what", "erf"], capture_output=True, text=True)
    check(p.returncode == 0 and digest(out)["erf.npy"] == first["erf.npy"], "the next run writes normally")
    beside = [n for n in os.listdir(work) if n != "out"]
    check(beside == [], f"nothing is left beside the folder ({beside})")

    # Two runs started together: one writes, the other refuses; the folder holds one whole set.
    a = subprocess.Popen(base + ["--what", "sampling"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(base + ["--what", "erf"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ra, rb = a.wait(timeout=300), b.wait(timeout=300)
    check(sorted([ra, rb]) in ([0, 0], [0, 2]), f"two runs together: each writes or refuses ({ra}, {rb})")
    names = set(listing(out))
    check(names in ({"manifest.json", "result.json", "sampling.csv"}, {"manifest.json", "result.json", "erf.npy"}),
          f"the folder holds one run's whole set, never a mix ({sorted(names)})")

    p = subprocess.run(base[:-2] + [image, "--no-figures", "--what", "erf"], capture_output=True, text=True)
    check(p.returncode == 2 and "is a file" in p.stderr, "--out naming a file is refused")
    print("all --out checks passed")


if __name__ == "__main__":
    main()
