#!/usr/bin/env python3
"""Time onnxruntime's Python `session.run` on one row of the digits MLP.

The floor a Python server pays per request for the model itself, to set
beside Reliable's per-row cost in tract. One session, one intra-op thread
(a one-row MLP gains nothing from more), the input array built once; timeit
runs NUMBER calls per repeat and the median over REPEATS is printed as
`ort_one_row_ns=<ns per call>`.

    python scripts/models/ort_microbench.py [--model models/digits/2/model.onnx]
"""

import argparse
import json
import os
import statistics
import timeit

import numpy as np
import onnxruntime as ort


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.join(root, "models", "digits", "2", "model.onnx"))
    ap.add_argument("--number", type=int, default=20000, help="calls per repeat")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    with open(os.path.join(root, "models", "reference", "digits.json")) as f:
        row = np.array([json.load(f)["inputs"][0]], dtype=np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    feed = {"pixels": row}
    sess.run(None, feed)  # warm up

    times = timeit.repeat(lambda: sess.run(None, feed), number=args.number, repeat=args.repeats)
    per_call_ns = [t / args.number * 1e9 for t in times]
    print(f"# onnxruntime {ort.__version__}, {os.path.relpath(args.model, root)}, "
          f"{args.repeats} x {args.number} calls, min {min(per_call_ns):.0f} ns")
    print(f"ort_one_row_ns={statistics.median(per_call_ns):.0f}")


if __name__ == "__main__":
    main()
