"""The parts of scripts/deploy-check that need to read YAML.

    deploy_check.py roots                 the kustomization roots to render, one
                                          "DIR<TAB>OUTPUT" line each
    deploy_check.py validate RENDERED     validate every rendered object and every
                                          manifest Argo CD applies unrendered
    deploy_check.py promql RENDERED       parse every PromQL expression (rules, dashboards,
                                          analysis templates) with promtool
    deploy_check.py checkov RESULTS_JSON  summarize checkov's JSON report; fail on
                                          a failed check, a parsing error, or a
                                          kustomize scan that saw nothing

`validate` routes each object to one schema: a kind in validate-crds.mjs's
table goes to its published CRD schema (Node), every other kind to
kubernetes-validate (strict: an unknown field is an error) for
KUBERNETES_VERSION. An object neither covers is an error, so nothing
passes unvalidated.

It also fails on a manifest file under deploy/ that nothing deploys: not
reachable from any rendered kustomization, and not in the directory of an
Argo CD Application that applies plain files. Such a file is either
forgotten or dead, and a check that only validated it would hide that.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

import kubernetes_validate
import kubernetes_validate.utils as kv_utils

DEPLOY = Path("deploy")
BASE = DEPLOY / "base"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KUBERNETES_VERSION = os.environ.get("DEPLOY_KUBERNETES_VERSION", "1.33.0")
HERE = Path(__file__).resolve().parent

# kubernetes-validate reads its per-kind schema and the large shared
# definitions file from disk on every call; the same few files serve
# hundreds of objects, so read each once.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)


class CheckError(Exception):
    """A finding that fails the check (already worded for the reader)."""


def load_yaml_documents(path: Path) -> list:
    """Every document of a YAML file, empty ones left out."""
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def is_remote(entry: str) -> bool:
    return "://" in entry or entry.startswith(("github.com/", "git@", "gitlab.com/", "bitbucket.org/"))


def kustomization_inputs(directory: Path) -> tuple[set[Path], set[Path]]:
    """The local files and kustomization directories a kustomization reads."""
    path = kustomization_file(directory)
    assert path is not None
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    files: set[Path] = set()
    dirs: set[Path] = set()

    def add(entry: object) -> None:
        if not isinstance(entry, str) or not entry or "\n" in entry or is_remote(entry):
            return  # inline patch or remote base
        target = Path(os.path.normpath(directory / entry))
        (dirs if target.is_dir() else files).add(target)

    for field in ("resources", "bases", "components", "crds", "generators", "transformers", "validators", "configurations"):
        for entry in spec.get(field) or []:
            add(entry)
    for field in ("patches", "patchesJson6902", "replacements"):
        for entry in spec.get(field) or []:
            if isinstance(entry, dict):
                add(entry.get("path"))
    for entry in spec.get("patchesStrategicMerge") or []:
        add(entry)
    for field in ("configMapGenerator", "secretGenerator"):
        for generator in spec.get(field) or []:
            for entry in generator.get("files") or []:
                add(entry.split("=", 1)[-1] if isinstance(entry, str) else entry)
            for entry in generator.get("envs") or []:
                add(entry)
            add(generator.get("env"))
    if isinstance(spec.get("openapi"), dict):
        add(spec["openapi"].get("path"))
    return files, dirs


def is_component(directory: Path) -> bool:
    path = kustomization_file(directory)
    return path is not None and (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("kind") == "Component"


def kustomization_dirs() -> list[Path]:
    return sorted({p.parent for name in KUSTOMIZATION_FILES for p in DEPLOY.rglob(name)})


def roots() -> list[Path]:
    """Every kustomization directory under deploy/ except the base and Components."""
    return [
        d
        for d in kustomization_dirs()
        if d != BASE and BASE not in d.parents and not is_component(d)
    ]


def rendered_name(root: Path) -> str:
    rel = root.relative_to(DEPLOY).as_posix()
    return "deploy" if rel == "." else rel


def reachable_from(start: list[Path]) -> set[Path]:
    """Every file any of the kustomizations in `start` reads, transitively."""
    seen_dirs: set[Path] = set()
    files: set[Path] = set()
    todo = list(start)
    while todo:
        d = todo.pop()
        if d in seen_dirs:
            continue
        seen_dirs.add(d)
        if kustomization_file(d) is None:
            continue  # a missing base fails the render, which names it
        files.add(kustomization_file(d))
        more_files, more_dirs = kustomization_inputs(d)
        files |= more_files
        todo.extend(more_dirs)
    return files


def is_manifest(doc: object) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str)


def manifest_files() -> list[Path]:
    """Files under deploy/ holding Kubernetes objects (kustomizations aside)."""
    found = []
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or path.suffix not in MANIFEST_SUFFIXES or path.name in KUSTOMIZATION_FILES:
            continue
        try:
            docs = load_yaml_documents(path)
        except yaml.YAMLError:
            continue  # not YAML at all (a template?): nothing deploys it as a manifest
        if any(is_manifest(d) for d in docs):
            found.append(path)
    return found


@dataclass
class Obj:
    source: str
    index: int
    body: dict

    def __str__(self) -> str:
        meta = self.body.get("metadata") or {}
        ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
        return f"{self.source} #{self.index + 1} {self.body.get('kind')} {ns}{meta.get('name', '?')}"


def objects_of(path: Path) -> list[Obj]:
    return [Obj(str(path), i, d) for i, d in enumerate(load_yaml_documents(path))]


def application_sources(app: dict) -> list[dict]:
    spec = app.get("spec") or {}
    sources = list(spec.get("sources") or [])
    if spec.get("source"):
        sources.append(spec["source"])
    return [s for s in sources if isinstance(s, dict) and isinstance(s.get("path"), str)]


def directory_files(directory: Path, options: dict) -> list[Path]:
    """The files Argo CD applies from a plain directory source."""
    pattern = "**/*" if options.get("recurse") else "*"
    include = [p.strip() for p in str(options.get("include") or "").strip("{}").split(",") if p.strip()]
    exclude = [p.strip() for p in str(options.get("exclude") or "").strip("{}").split(",") if p.strip()]
    chosen = []
    for path in sorted(directory.glob(pattern)):
        if not path.is_file() or path.suffix not in MANIFEST_SUFFIXES:
            continue
        rel = path.relative_to(directory).as_posix()
        if include and not any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in include):
            continue
        if any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in exclude):
            continue
        chosen.append(path)
    return chosen


def argo_directories(objects: list[Obj], errors: list[str]) -> list[Path]:
    """Files applied by Argo CD Applications with plain-directory sources in this repository.

    A source path that does not exist here is an error (the sync would
    fail); a non-manifest file in a directory source too: Argo CD reads
    every YAML and JSON file there as a manifest.
    """
    applied: list[Path] = []
    rendered_roots = roots()
    for obj in objects:
        if obj.body.get("apiVersion") != "argoproj.io/v1alpha1" or obj.body.get("kind") != "Application":
            continue
        for source in application_sources(obj.body):
            if source.get("chart"):
                continue
            directory = Path(os.path.normpath(source["path"]))
            if not directory.is_dir():
                errors.append(f"{obj}: source path {source['path']} is not a directory of this repository")
                continue
            if kustomization_file(directory) is not None:
                if directory != BASE and BASE not in directory.parents and directory not in rendered_roots:
                    errors.append(f"{obj}: source path {directory} is a kustomization this check does not render")
                continue
            for path in directory_files(directory, source.get("directory") or {}):
                try:
                    docs = load_yaml_documents(path)
                except yaml.YAMLError as e:
                    errors.append(f"{obj}: applies {path}, which is not valid YAML: {e}")
                    continue
                if not all(is_manifest(d) for d in docs):
                    errors.append(
                        f"{obj}: applies every YAML/JSON file of {directory}, and {path} is not a Kubernetes "
                        "manifest (narrow it with spec.source.directory.include/exclude)"
                    )
                    continue
                applied.append(path)
    return applied


def crd_kinds(node: str) -> set[tuple[str, str]]:
    out = subprocess.run(
        [node, str(HERE / "validate-crds.mjs"), "--kinds"], check=True, capture_output=True, text=True
    ).stdout
    return {(k["apiVersion"], k["kind"]) for k in json.loads(out)}


def validate_core(obj: Obj) -> str | None:
    """kubernetes-validate, strict; the error text, or None when valid."""
    try:
        kubernetes_validate.validate(obj.body, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.path) or "(object)"
        return f"{where}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return (
            f"no schema covers {obj.body.get('apiVersion')} {obj.body.get('kind')}: not a Kubernetes "
            f"{KUBERNETES_VERSION} kind, and not in the table of scripts/deploy-validate/validate-crds.mjs"
        )
    return None


def validate(rendered: Path) -> int:
    errors: list[str] = []
    node = os.environ.get("NODE", "node")
    rendered_files = sorted(rendered.rglob("*.yaml"))
    objects = [o for f in rendered_files for o in objects_of(f)]

    # Manifests outside every rendered kustomization: applied by an Argo CD
    # directory source, or by nothing.
    reachable = reachable_from(roots())
    loose = [p for p in manifest_files() if p not in reachable]
    loose_objects = [o for p in loose for o in objects_of(p)]
    applied = set(argo_directories(objects + loose_objects, errors))
    for path in loose:
        if path not in applied:
            errors.append(
                f"{path}: holds Kubernetes objects but nothing deploys it (no rendered kustomization "
                "reads it, no Argo CD directory source applies it): list it in a kustomization or remove it"
            )
    raw_files = sorted(set(loose))
    objects += [o for o in loose_objects]

    kinds = crd_kinds(node)
    seen: set[str] = set()
    core = custom = 0
    for obj in objects:
        if not is_manifest(obj.body):
            errors.append(f"{obj}: not a Kubernetes object (no apiVersion and kind)")
            continue
        if (obj.body["apiVersion"], obj.body["kind"]) in kinds:
            custom += 1
            continue
        # Overlays share most objects with each other: check each body once.
        digest = hashlib.sha256(json.dumps(obj.body, sort_keys=True, default=str).encode()).hexdigest()
        if digest in seen:
            core += 1
            continue
        seen.add(digest)
        core += 1
        problem = validate_core(obj)
        if problem:
            errors.append(f"{obj}: {problem}")
    for e in errors:
        print(f"ERROR {e}")
    print(
        f"deploy-check: {core} objects against Kubernetes {KUBERNETES_VERSION} (kubernetes-validate, strict), "
        f"{custom} custom resources next, from {len(rendered_files)} renders and {len(raw_files)} plain files"
    )
    sys.stdout.flush()
    crds = subprocess.run([node, str(HERE / "validate-crds.mjs"), *map(str, rendered_files + raw_files)])
    return 1 if errors or crds.returncode != 0 else 0


def checkov_summary(results: Path) -> int:
    """checkov's exit code says whether a check failed; this also catches a
    scan that checked nothing: with no kubectl or kustomize on PATH the
    kustomize framework skips every kustomization and reports success."""
    reports = json.loads(results.read_text(encoding="utf-8"))
    if isinstance(reports, dict):
        reports = [reports]
    by_type = {r["check_type"]: r for r in reports}
    bad = 0
    for kind, report in sorted(by_type.items()):
        s = report["summary"]
        print(
            f"checkov {kind}: {s['resource_count']} resources, {s['passed']} passed, {s['failed']} failed, "
            f"{s['skipped']} skipped (annotated), {s['parsing_errors']} parsing errors"
        )
        bad += s["failed"] + s["parsing_errors"]
        for check in report["results"].get("failed_checks", []):
            lines = "-".join(str(n) for n in check.get("file_line_range") or [])
            print(f"ERROR checkov {check['check_id']} {check['check_name']}: {check['repo_file_path']}:{lines} {check['resource']}")
    if roots() and by_type.get("kustomize", {}).get("summary", {}).get("resource_count", 0) == 0:
        print("ERROR checkov rendered no kustomization (is kubectl on PATH?)")
        bad += 1
    return 1 if bad else 0


# Stand-ins that make a templated query plain PromQL, so promtool parses
# the rest: a range holding a variable becomes [5m], any other Grafana
# variable ($x, ${x}, ${x:fmt}, [[x]]) or Argo template ({{args.x}}) a bare
# name, which PromQL reads as a metric or label name.
TEMPLATED_RANGE = re.compile(r"\[[^\]]*(?:\$|\{\{)[^\]]*\]")
TEMPLATE = re.compile(r"\{\{.*?\}\}|\$\{[^}]*\}|\[\[\w+\]\]|\$\w+")


def stand_in(expr: str) -> str:
    return TEMPLATE.sub("x", TEMPLATED_RANGE.sub("[5m]", expr))


def dashboard_exprs(dashboard: object) -> list[str]:
    """Every `expr` of every panel target, rows and nested panels included."""
    found: list[str] = []
    if isinstance(dashboard, dict):
        for target in dashboard.get("targets") or []:
            if isinstance(target, dict) and isinstance(target.get("expr"), str) and target["expr"].strip():
                found.append(target["expr"])
        for value in dashboard.values():
            if isinstance(value, (dict, list)):
                found += dashboard_exprs(value)
    elif isinstance(dashboard, list):
        for item in dashboard:
            found += dashboard_exprs(item)
    return found


def as_dashboard(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "panels" in value else None


def promql_sources(rendered: Path) -> dict[str, dict]:
    """name -> a rules-file body: the PrometheusRules as they are, and the
    queries of dashboards and AnalysisTemplates as recording rules."""
    sources: dict[str, dict] = {}
    seen: set[str] = set()

    def add(name: str, body: dict) -> None:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            sources[name] = body

    def queries(name: str, exprs: list[str]) -> None:
        if exprs:
            rules = [{"record": f"deploy_check:query_{i}", "expr": stand_in(e)} for i, e in enumerate(exprs)]
            add(name, {"groups": [{"name": name, "rules": rules}]})

    for obj in (o for f in sorted(rendered.rglob("*.yaml")) for o in objects_of(f)):
        kind = obj.body.get("kind")
        if kind == "PrometheusRule":
            add(str(obj), {"groups": (obj.body.get("spec") or {}).get("groups") or []})
        elif kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
            metrics = (obj.body.get("spec") or {}).get("metrics") or []
            queries(str(obj), [m["provider"]["prometheus"]["query"] for m in metrics
                               if isinstance((m.get("provider") or {}).get("prometheus"), dict)
                               and m["provider"]["prometheus"].get("query")])
        elif kind == "ConfigMap":
            for key, text in ((obj.body.get("data") or {}).items()):
                dashboard = as_dashboard(text) if isinstance(text, str) else None
                if dashboard is not None:
                    queries(f"{obj} {key}", dashboard_exprs(dashboard))
    for path in sorted(DEPLOY.rglob("*.json")):
        dashboard = as_dashboard(path.read_text(encoding="utf-8"))
        if dashboard is not None:
            queries(str(path), dashboard_exprs(dashboard))
    return sources


def promql(rendered: Path) -> int:
    promtool = shutil.which("promtool")
    if promtool is None:
        print("ERROR promtool not found: install Prometheus (apt-get install prometheus; scripts/test does)")
        return 1
    sources = promql_sources(rendered)
    if not sources:
        print("deploy-check: no PromQL under deploy/")
        return 0
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, body) in enumerate(sources.items()):
            path = Path(tmp) / f"{i}.rules.yaml"
            path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
            done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                failed += 1
                detail = (done.stdout + done.stderr).replace(str(path), "").strip()
                print(f"ERROR {name}: promtool check rules:\n{detail}")
    count = sum(len(g.get("rules") or []) for b in sources.values() for g in b["groups"])
    print(f"deploy-check: promtool parsed {count} expressions from {len(sources)} sources, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if argv == ["roots"]:
        for root in roots():
            print(f"{root}\t{rendered_name(root)}")
        return 0
    if len(argv) == 2 and argv[0] == "validate":
        return validate(Path(argv[1]))
    if len(argv) == 2 and argv[0] == "promql":
        return promql(Path(argv[1]))
    if len(argv) == 2 and argv[0] == "checkov":
        return checkov_summary(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
