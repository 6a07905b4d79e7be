"""Rendering the kustomization roots once per test run, for the tests here.

`kubectl kustomize` (KUBECTL, else `kubectl` on PATH; scripts/deploy-check
installs it) renders a directory under deploy/; the objects are cached per
directory. Nothing here talks to a cluster.
"""
import copy
import functools
import os
import pathlib
import shutil
import subprocess

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
ENVIRONMENTS = {"dev": 1, "staging": 2, "prod": 5}
NAMESPACES = {"dev": "reliable-dev", "staging": "reliable-staging", "prod": "reliable"}


def kubectl():
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: run scripts/deploy-check, or set KUBECTL")
    return found


@functools.lru_cache(maxsize=None)
def _render(relative):
    out = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / relative)],
        check=True, capture_output=True, text=True,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render(relative):
    """The objects of `deploy/<relative>`, as fresh dicts the caller may change."""
    return copy.deepcopy(list(_render(relative)))


def of_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def by_name(objects, kind, name):
    for o in objects:
        if o.get("kind") == kind and o["metadata"]["name"] == name:
            return o
    return None


def reliable_binary():
    """The `reliable` binary, for checking the manifests' settings with the
    code's own config validation (`reliable config check`)."""
    found = os.environ.get("RELIABLE_BIN")
    if found:
        return found
    for profile in ("debug", "release"):
        path = REPO / "target" / profile / "reliable"
        if path.exists():
            return str(path)
    raise RuntimeError("reliable binary not found: build it (cargo build -p reliable) or set RELIABLE_BIN")
