#!/usr/bin/env python3
"""The analyses' numbers stay the same: runs deformscope-cli on fixed cases and
compares what it writes with the stored results, bit for bit.

  golden.py check --cli PATH   compare with tests/golden/data (the ctest test)
  golden.py write --cli PATH   store the current outputs there (only when a
                               change of numbers is intended and explained)

Each case (cases.json) is a command line run from the source folder (relative
paths, so the stored JSON names no machine's folders). What is compared:
  - every .json file: every key and value of the stored file must be in the new
    one (new keys may be added; "seconds" are timings and skipped): strings,
    booleans and whole numbers exactly, other numbers to 1e-5 relative;
  - every other file (.npy, .csv): the SHA-256 of its bytes, and where they
    differ the stored copy's values to the same tolerance (arrays of the same
    shape and type; CSV cells text-equal or numerically close).
The CPU runs are pinned to one code path (AVX2 kernels in ATen, oneDNN and MKL,
two threads), which makes most machines give the same bits; not all: oneDNN
chooses its convolutions' blocking by the CPU's cache sizes, so a machine with
other caches sums in another order (seen: 255 numbers differing by at most
9e-7 relative on a 260 MB-L3 Xeon). Those last-bit differences are reported and
tolerated; anything larger, or any count, size or decision that changes, fails.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(HERE, "data")
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2",
          "MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
IGNORED_KEYS = {"seconds"}
RTOL = 1e-5
LAST_BITS = []  # (where, relative difference) of numbers that differ within RTOL


def close(e, a, where):
    """Numbers: whole numbers exactly, others within RTOL (recorded when not equal)."""
    if isinstance(e, int) and isinstance(a, int):
        return e == a
    e, a = float(e), float(a)
    if e == a or (e != e and a != a):
        return True
    rel = abs(e - a) / max(abs(e), abs(a))
    if rel <= RTOL:
        LAST_BITS.append((where, rel))
        return True
    return False


def close_files(stored, new, where):
    """A .npy or .csv whose bytes differ: its values to RTOL. Returns a problem or None."""
    import numpy as np
    if stored.endswith(".npy"):
        e, a = np.load(stored), np.load(new)
        if e.shape != a.shape or e.dtype != a.dtype:
            return "%s: %s %s, stored %s %s" % (where, a.shape, a.dtype, e.shape, e.dtype)
        if e.dtype.kind in "fc":
            scale = max(float(np.abs(e).max()) if e.size else 0.0, 1e-30)
            worst = float(np.abs(e.astype(np.float64) - a.astype(np.float64)).max()) / scale if e.size else 0.0
            if worst > RTOL:
                return "%s: values differ by %.3g of the largest" % (where, worst)
            LAST_BITS.append((where, worst))
            return None
        return None if np.array_equal(e, a) else "%s: the values differ" % where
    if stored.endswith(".csv"):
        with open(stored) as fe, open(new) as fa:
            le, la = fe.read().splitlines(), fa.read().splitlines()
        if len(le) != len(la):
            return "%s: %d lines, stored %d" % (where, len(la), len(le))
        for i, (re_, ra) in enumerate(zip(le, la)):
            ce, ca = re_.split(","), ra.split(",")
            if len(ce) != len(ca):
                return "%s line %d: %d cells, stored %d" % (where, i + 1, len(ca), len(ce))
            for x, y in zip(ce, ca):
                if x == y:
                    continue
                try:
                    ok = close(float(x), float(y), "%s line %d" % (where, i + 1))
                except ValueError:
                    ok = False
                if not ok:
                    return "%s line %d: %r != %r" % (where, i + 1, y, x)
        return None
    return "%s: the bytes differ" % where


def run_case(cli, case, out):
    args = [cli] + case["args"] + ["--no-figures", "--out", out]
    env = dict(os.environ, **PINNED)
    r = subprocess.run(args, cwd=SOURCE, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("golden: %s failed (exit %d):\n%s%s" % (" ".join(case["args"]), r.returncode, r.stdout, r.stderr))


def outputs(folder):
    """{relative path: parsed JSON or sha256 of the bytes}"""
    found = {}
    for root, _, files in os.walk(folder):
        for f in sorted(files):
            if f == "manifest.json":
                continue  # the output folder's own record (command line, checksums): tests/cli/out_folder.py
            path = os.path.join(root, f)
            rel = os.path.relpath(path, folder)
            if f.endswith(".json"):
                with open(path) as fh:
                    found[rel] = json.load(fh)
            else:
                with open(path, "rb") as fh:
                    found[rel] = hashlib.sha256(fh.read()).hexdigest()
    return found


def contains(expected, actual, where, problems):
    """Everything in `expected` is in `actual` (numbers exactly)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            problems.append("%s: expected an object" % where)
            return
        for k, v in expected.items():
            if k in IGNORED_KEYS:
                continue
            if k not in actual:
                problems.append("%s.%s: missing" % (where, k))
            else:
                contains(v, actual[k], "%s.%s" % (where, k), problems)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            problems.append("%s: expected a list of %d" % (where, len(expected)))
            return
        for i, (e, a) in enumerate(zip(expected, actual)):
            contains(e, a, "%s[%d]" % (where, i), problems)
    elif isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if expected != actual:
            problems.append("%s: %r != %r" % (where, expected, actual))
    elif isinstance(expected, (int, float)):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)) or not close(expected, actual, where):
            problems.append("%s: %r != %r" % (where, expected, actual))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["check", "write"])
    p.add_argument("--cli", required=True)
    a = p.parse_args()
    with open(os.path.join(HERE, "cases.json")) as fh:
        cases = json.load(fh)
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            out = os.path.join(tmp, case["name"])
            run_case(os.path.abspath(a.cli), case, out)
            got = outputs(out)
            stored = os.path.join(DATA, case["name"])
            if a.mode == "write":
                shutil.rmtree(stored, ignore_errors=True)
                os.makedirs(stored)
                hashes = {}
                for rel, v in got.items():
                    if isinstance(v, str):
                        hashes[rel] = v
                    # Every file is kept: JSON to compare, the others for their values when the bytes differ.
                    os.makedirs(os.path.dirname(os.path.join(stored, rel)), exist_ok=True)
                    shutil.copyfile(os.path.join(out, rel), os.path.join(stored, rel))
                with open(os.path.join(stored, "sha256.json"), "w") as fh:
                    json.dump(hashes, fh, indent=1, sort_keys=True)
                    fh.write("\n")
                print("golden: wrote %s (%d files)" % (case["name"], len(got)))
                continue
            with open(os.path.join(stored, "sha256.json")) as fh:
                hashes = json.load(fh)
            expected = {rel: v for rel, v in outputs(stored).items() if rel.endswith(".json") and rel != "sha256.json"}
            expected.update(hashes)
            for rel, v in sorted(expected.items()):
                if rel not in got:
                    problems.append("%s/%s: not written" % (case["name"], rel))
                elif isinstance(v, str):
                    if got[rel] != v:
                        copy = os.path.join(stored, rel)
                        where = "%s/%s" % (case["name"], rel)
                        problem = close_files(copy, os.path.join(out, rel), where) if os.path.exists(copy) \
                            else "%s: the bytes differ" % where
                        if problem:
                            problems.append(problem)
                else:
                    contains(v, got[rel], "%s/%s" % (case["name"], rel), problems)
            for rel in sorted(set(got) - set(expected)):
                problems.append("%s/%s: a new file" % (case["name"], rel))
            print("golden: %s: %d files compared" % (case["name"], len(expected)))
    if problems:
        print("golden: %d differences:\n  %s" % (len(problems), "\n  ".join(problems[:40])))
        return 1
    if a.mode == "check":
        if LAST_BITS:
            where, worst = max(LAST_BITS, key=lambda x: x[1])
            print("golden: %d numbers or files differ in their last bits (largest: %.2g relative, %s): tolerated "
                  "(another CPU's summation order)" % (len(LAST_BITS), worst, where))
        print("golden: every case gives the stored results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
