#!/usr/bin/env python3
"""Make the example models the `inference` crate serves and tests against.

Why this exists: the Rust side (tract) needs small, real ONNX models plus
their metadata (model.toml), drift references (reference.json) and
expected outputs computed by an independent runtime (onnxruntime). All of it
is derived here from scikit-learn's bundled `load_digits` data set (it ships
inside the scikit-learn wheel: nothing is downloaded), deterministically:
every random_state is fixed, the ONNX graphs carry no timestamps, and
`started_at` is a fixed constant, so rerunning gives byte-identical files
(given the pinned versions in requirements.txt).

Outputs (relative to the repo root, or --out):
  models/digits/{1,2}/model.onnx        MLP, ONNX graph built by hand (opset 13)
  models/digits-logreg/1/model.onnx     LogisticRegression via skl2onnx
  models/*/*/model.toml                 serving config + MLflow-like run record
  models/*/*/reference.json             training-split histograms for drift
  models/reference/digits.json          32 test rows + onnxruntime outputs

With --joblib DIR it writes only DIR/digits-2.joblib: the v2 MLP as a
scikit-learn estimator taking raw pixels (the 1/16 scaling folded into the
first layer's weights), for the MLServer peer benchmark. Not committed.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

RANDOM_STATE = 0
# Fixed so the committed files do not change on every rerun; it is the day
# these models were first made, not the time of the run.
STARTED_AT = "2026-11-01T00:00:00Z"
SCALE = 1.0 / 16.0  # load_digits pixels are integers 0..16; exact in float32
LABELS = [str(i) for i in range(10)]
N_REFERENCE_ROWS = 32
SHIFT = 4.0
MAX_BATCH_SIZE = 64
# Short: at low load every lone request waits this long for company.
MAX_BATCH_DELAY = "250us"
OPSET = 13
IR_VERSION = 7  # the IR version that goes with opset 13


def load_split():
    digits = load_digits()
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=RANDOM_STATE)


def train_mlp(hidden: int, x_train, y_train) -> tuple[MLPClassifier, dict]:
    params = {
        "hidden_layer_sizes": str(hidden),
        "activation": "relu",
        "solver": "adam",
        "alpha": "0.0001",
        "max_iter": "300",
        "random_state": str(RANDOM_STATE),
        "input_scaling": "1/16",
    }
    mlp = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        activation="relu",
        solver="adam",
        alpha=1e-4,
        max_iter=300,
        random_state=RANDOM_STATE,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x_train * SCALE, y_train)
    return mlp, params


def train_logreg(x_train, y_train) -> tuple[LogisticRegression, dict]:
    params = {
        "C": "1.0",
        "solver": "lbfgs",
        "max_iter": "5000",
        "random_state": str(RANDOM_STATE),
        "input_scaling": "none",
    }
    lr = LogisticRegression(C=1.0, solver="lbfgs", max_iter=5000, random_state=RANDOM_STATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(x_train, y_train)
    return lr, params


def mlp_to_onnx(mlp: MLPClassifier, name: str) -> onnx.ModelProto:
    """Build the MLP's ONNX graph by hand: only standard ai.onnx ops."""
    w1, w2 = (w.astype(np.float32) for w in mlp.coefs_)
    b1, b2 = (b.astype(np.float32) for b in mlp.intercepts_)
    inits = [
        numpy_helper.from_array(np.array([SCALE], dtype=np.float32), "scale"),
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    nodes = [
        helper.make_node("Mul", ["pixels", "scale"], ["scaled"], name="scale_pixels"),
        helper.make_node("MatMul", ["scaled", "w1"], ["h1_mm"], name="dense1_matmul"),
        helper.make_node("Add", ["h1_mm", "b1"], ["h1"], name="dense1_bias"),
        helper.make_node("Relu", ["h1"], ["h1_relu"], name="relu"),
        helper.make_node("MatMul", ["h1_relu", "w2"], ["logits_mm"], name="dense2_matmul"),
        helper.make_node("Add", ["logits_mm", "b2"], ["logits"], name="dense2_bias"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
        helper.make_node(
            "ArgMax", ["probabilities"], ["label"], name="argmax", axis=1, keepdims=0
        ),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="reliable-make-models",
        producer_version="1",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def logreg_to_onnx(lr: LogisticRegression, name: str) -> onnx.ModelProto:
    model = to_onnx(
        lr,
        initial_types=[("pixels", FloatTensorType([None, 64]))],
        options={id(lr): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 1},
        naming=name,
    )
    model.graph.name = name
    # skl2onnx lists the default domain twice; keep one entry per domain.
    seen = {}
    for op in model.opset_import:
        seen[op.domain] = max(seen.get(op.domain, 0), op.version)
    del model.opset_import[:]
    for domain, version in sorted(seen.items()):
        model.opset_import.append(helper.make_opsetid(domain, version))
    # skl2onnx stamps its own version here; keep it, it is deterministic.
    allowed = {"LinearClassifier", "Normalizer", "Cast", "ArgMax", "Identity"}
    ops = {n.op_type for n in model.graph.node}
    if not ops <= allowed:
        sys.exit(f"skl2onnx emitted unexpected ops {sorted(ops - allowed)}")
    outs = [o.name for o in model.graph.output]
    if outs != ["label", "probabilities"]:
        sys.exit(f"skl2onnx outputs are {outs}, expected label, probabilities")
    onnx.checker.check_model(model, full_check=True)
    return model


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    label, proba = sess.run(["label", "probabilities"], {"pixels": x.astype(np.float32)})
    return np.asarray(label), np.asarray(proba, dtype=np.float32)


def check_against_sklearn(key, est, model, x_test_in, x_test_raw):
    """ORT on the ONNX file must agree with scikit-learn on the test split."""
    label, proba = ort_run(model, x_test_raw)
    sk_label = est.predict(x_test_in)
    sk_proba = est.predict_proba(x_test_in)
    if label.dtype != np.int64 or label.shape != (len(x_test_raw),):
        sys.exit(f"{key}: label dtype/shape {label.dtype} {label.shape}")
    mismatches = int((label != sk_label).sum())
    max_diff = float(np.abs(proba - sk_proba).max())
    print(f"{key}: ort vs sklearn label mismatches={mismatches} max |proba diff|={max_diff:.2e}")
    if mismatches or max_diff > 1e-4:
        sys.exit(f"{key}: onnxruntime disagrees with scikit-learn")


def metrics(est, x_test_in, y_test) -> dict:
    pred = est.predict(x_test_in)
    proba = est.predict_proba(x_test_in)
    return {
        "accuracy": round(float(accuracy_score(y_test, pred)), 6),
        "f1_macro": round(float(f1_score(y_test, pred, average="macro")), 6),
        "log_loss": round(float(log_loss(y_test, proba, labels=list(range(10)))), 6),
    }


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=True)  # a JSON string is a TOML basic string


def write_model_toml(path, description, params, mets, dataset_digest):
    run_seed = json.dumps({"description": description, "params": params}, sort_keys=True)
    run_id = hashlib.sha256(run_seed.encode()).hexdigest()[:32]
    lines = [
        f"description = {toml_str(description)}",
        f"max_batch_size = {MAX_BATCH_SIZE}",
        f"max_batch_delay = {toml_str(MAX_BATCH_DELAY)}",
        "labels = [" + ", ".join(toml_str(l) for l in LABELS) + "]",
        "",
        "[[inputs]]",
        'name = "pixels"',
        'datatype = "FP32"',
        "shape = [-1, 64]",
        "",
        "[[outputs]]",
        'name = "label"',
        'datatype = "INT64"',
        "shape = [-1]",
        "",
        "[[outputs]]",
        'name = "probabilities"',
        'datatype = "FP32"',
        "shape = [-1, 10]",
        "",
        "[training]",
        f"run_id = {toml_str(run_id)}",
        f"started_at = {toml_str(STARTED_AT)}",
        "",
        "[training.params]",
        *[f"{k} = {toml_str(v)}" for k, v in params.items()],
        "",
        "[training.metrics]",
        *[f"{k} = {repr(float(v))}" for k, v in mets.items()],
        "",
        "[training.dataset]",
        'name = "sklearn.datasets.load_digits"',
        f"digest = {toml_str(dataset_digest)}",
        f"source = {toml_str('scikit-learn ' + sklearn.__version__ + ' wheel')}",
        f"split = {toml_str('train 80% (random_state=' + str(RANDOM_STATE) + ')')}",
        "",
    ]
    write_text(path, "\n".join(lines))


def reference_histograms(x_train: np.ndarray, train_pred: np.ndarray) -> dict:
    edges = [i - 0.5 for i in range(18)]  # unit bins centred on 0..16
    feats = []
    for j in range(x_train.shape[1]):
        counts, _ = np.histogram(x_train[:, j], bins=np.array(edges))
        if int(counts.sum()) != len(x_train):
            sys.exit(f"pixel_{j}: values outside the reference edges")
        feats.append({"name": f"pixel_{j}", "edges": edges, "counts": [int(c) for c in counts]})
    pred_counts = np.bincount(train_pred.astype(np.int64), minlength=10)
    return {"features": feats, "prediction": {"counts": [int(c) for c in pred_counts]}}


def f32(x) -> str:
    """Shortest text that reads back as the same float32 (numpy's repr)."""
    v = np.float32(x)
    s = str(v)
    if not np.isfinite(v) or np.float32(float(s)) != v:
        raise ValueError(f"float32 text {s} does not round-trip")
    return s


def rows_json(rows) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{float(v):.1f}" for v in r) + "]" for r in rows) + "]"


def write_reference_set(path, x_test, y_test, outputs: dict):
    inputs = x_test[:N_REFERENCE_ROWS]
    shifted = inputs + SHIFT
    parts = ["{", f' "inputs": {rows_json(inputs)},']
    parts.append(' "true_labels": [' + ", ".join(str(int(v)) for v in y_test[:N_REFERENCE_ROWS]) + "],")
    parts.append(' "expected": {')
    items = []
    for key, (label, proba) in outputs.items():
        lab = "[" + ", ".join(str(int(v)) for v in label) + "]"
        prob = "[" + ", ".join("[" + ", ".join(f32(v) for v in r) + "]" for r in proba) + "]"
        items.append(f'  {json.dumps(key)}: {{"label": {lab},\n   "probabilities": {prob}}}')
    parts.append(",\n".join(items))
    parts.append(" },")
    parts.append(f' "shifted_inputs": {rows_json(shifted)}')
    parts.append("}")
    text = "\n".join(parts) + "\n"
    json.loads(text)  # must be valid JSON
    write_text(path, text)
    # The whole test split, for drift tests: a live window of a few hundred
    # rows drawn from the training distribution must stay below the alert
    # threshold (32 rows would not: PSI's sampling noise alone is ~(bins-1)/n).
    split = {
        "inputs": [[int(v) for v in r] for r in x_test],
        "labels": [int(v) for v in y_test],
    }
    split_path = os.path.join(os.path.dirname(path), "digits-test-split.json")
    write_text(split_path, json.dumps(split, separators=(",", ":")) + "\n")


def write_text(path: str, text: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_bytes(path: str, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_joblib(out_dir: str, x_train, y_train, x_test):
    """The v2 MLP as a scikit-learn estimator that takes raw pixels."""
    import joblib

    mlp, _ = train_mlp(64, x_train, y_train)
    raw = copy.deepcopy(mlp)
    # Fold the 1/16 input scaling into the first layer (exact: a power of
    # two), so the estimator takes raw pixels like the ONNX model does.
    raw.coefs_[0] = raw.coefs_[0] * SCALE
    if (raw.predict(x_test) != mlp.predict(x_test * SCALE)).any():
        sys.exit("folded MLP disagrees with the trained one")
    if np.abs(raw.predict_proba(x_test) - mlp.predict_proba(x_test * SCALE)).max() > 1e-12:
        sys.exit("folded MLP's probabilities differ from the trained one's")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "digits-2.joblib")
    joblib.dump(raw, out)
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--out", default=os.path.join(root, "models"), help="models directory")
    ap.add_argument(
        "--joblib",
        metavar="DIR",
        help="write only DIR/digits-2.joblib (the v2 MLP taking raw pixels), not models/",
    )
    args = ap.parse_args()

    x_train, x_test, y_train, y_test = load_split()
    if args.joblib:
        write_joblib(args.joblib, x_train, y_train, x_test)
        return
    digest = hashlib.sha256(np.ascontiguousarray(x_train.astype(np.float32)).tobytes()).hexdigest()
    ref_in = x_test[:N_REFERENCE_ROWS].astype(np.float32)
    outputs = {}
    summary = []

    specs = [("digits", 1, 32), ("digits", 2, 64)]
    for name, version, hidden in specs:
        key = f"{name}/{version}"
        mlp, params = train_mlp(hidden, x_train, y_train)
        model = mlp_to_onnx(mlp, f"digits_mlp_{hidden}")
        check_against_sklearn(key, mlp, model, x_test * SCALE, x_test)
        mdir = os.path.join(args.out, name, str(version))
        write_bytes(os.path.join(mdir, "model.onnx"), model.SerializeToString())
        mets = metrics(mlp, x_test * SCALE, y_test)
        desc = f"MLP digits classifier, one hidden layer of {hidden} units"
        write_model_toml(os.path.join(mdir, "model.toml"), desc, params, mets, digest)
        train_label, _ = ort_run(model, x_train)
        ref = reference_histograms(x_train, train_label)
        write_text(os.path.join(mdir, "reference.json"), json.dumps(ref, separators=(",", ":")) + "\n")
        outputs[key] = ort_run(model, ref_in)
        summary.append((key, os.path.getsize(os.path.join(mdir, "model.onnx")), mets))

    key = "digits-logreg/1"
    lr, params = train_logreg(x_train, y_train)
    model = logreg_to_onnx(lr, "digits_logreg")
    check_against_sklearn(key, lr, model, x_test, x_test)
    mdir = os.path.join(args.out, "digits-logreg", "1")
    write_bytes(os.path.join(mdir, "model.onnx"), model.SerializeToString())
    mets = metrics(lr, x_test, y_test)
    desc = "Logistic regression digits classifier (skl2onnx, ai.onnx.ml LinearClassifier)"
    write_model_toml(os.path.join(mdir, "model.toml"), desc, params, mets, digest)
    train_label, _ = ort_run(model, x_train)
    ref = reference_histograms(x_train, train_label)
    write_text(os.path.join(mdir, "reference.json"), json.dumps(ref, separators=(",", ":")) + "\n")
    outputs[key] = ort_run(model, ref_in)
    summary.append((key, os.path.getsize(os.path.join(mdir, "model.onnx")), mets))

    write_reference_set(os.path.join(args.out, "reference", "digits.json"), x_test, y_test, outputs)

    for key, size, mets in summary:
        print(f"{key}: {size} bytes, " + ", ".join(f"{k}={v}" for k, v in mets.items()))

if __name__ == "__main__":
    main()
