"""scripts/deploy-check's own checks catch what they claim to, on small
fixtures: a misspelt or mistyped field in a custom resource, an unknown
field in a core kind, a kind no schema covers, a manifest nothing deploys,
a non-manifest file in an Argo CD directory source, a PromQL expression
that does not parse.

Run by scripts/deploy-check (which installs Node's packages and the venv
these need), or alone with that venv's Python once it has run:
    target/deploy-venv/bin/python -m unittest discover -s deploy/tests -p test_deploy_check.py
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "scripts" / "deploy-validate"
sys.path.insert(0, str(TOOLS))

import deploy_check  # noqa: E402  (needs the path above)

NODE = os.environ.get("NODE", "node")

ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
  labels: {anything.example/at-all: "yes"}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.example/web:1
          imagePullPolicy: IfNotPresent
  strategy:
    canary:
      steps:
        - setWeight: 10
        - pause: {duration: 1m}
"""

EXTERNAL_SECRET = """\
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: db}
spec:
  refreshInterval: 1h
  secretStoreRef: {kind: ClusterSecretStore, name: store}
  target: {name: db}
  data:
    - secretKey: url
      remoteRef: {key: app/db, property: url}
"""

APPLICATION = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: app, namespace: argocd}
spec:
  project: default
  source: {repoURL: "https://git.example/repo.git", path: deploy/overlays/prod, targetRevision: main}
  destination: {server: "https://kubernetes.default.svc", namespace: app}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [ServerSideApply=true]
"""

CLUSTER_POLICY = """\
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-limits}
spec:
  validationFailureAction: Enforce
  rules:
    - name: limits
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        message: limits are required
        pattern:
          spec:
            containers:
              - resources: {limits: {memory: "?*", cpu: "?*"}}
"""


class CustomResources(unittest.TestCase):
    """validate-crds.mjs: the published schema, and unknown fields.

    One Node run over one file per case (loading the schema packages takes
    seconds); each test reads its file's ERROR lines."""

    CASES = {
        "valid": "---\n".join([ROLLOUT, EXTERNAL_SECRET, APPLICATION, CLUSTER_POLICY]),
        "misspelt": ROLLOUT.replace("steps:", "stepz:"),
        "misspelt_in_pod_template": ROLLOUT.replace("imagePullPolicy", "imagePullPolice"),
        "misspelt_sync_option": APPLICATION.replace("selfHeal", "selfheal"),
        "wrong_type": ROLLOUT.replace("replicas: 2", "replicas: two"),
        "missing_required": EXTERNAL_SECRET.replace("remoteRef: {key: app/db, property: url}", "remoteRef: {property: url}"),
        "unknown_deep_in_list": EXTERNAL_SECRET.replace("property: url}", "property: url, versoin: v1}"),
    }

    @classmethod
    def setUpClass(cls):
        if not (TOOLS / "node_modules").is_dir():
            raise AssertionError(f"{TOOLS}/node_modules is missing: run scripts/deploy-check")
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for name, text in cls.CASES.items():
                paths[name] = Path(tmp) / f"{name}.yaml"
                paths[name].write_text(text, encoding="utf-8")
            done = subprocess.run([NODE, str(TOOLS / "validate-crds.mjs"), *map(str, paths.values())],
                                  capture_output=True, text=True)
        cls.code = done.returncode
        cls.output = done.stdout + done.stderr
        cls.errors = {name: [l for l in done.stdout.splitlines() if l.startswith(f"ERROR {path} ")]
                      for name, path in paths.items()}

    def assertRefused(self, case, *expected):
        lines = "\n".join(self.errors[case])
        self.assertTrue(lines, f"{case} passed:\n{self.output}")
        for text in expected:
            self.assertIn(text, lines)

    def test_run_fails_and_counts(self):
        self.assertEqual(self.code, 1, self.output)
        self.assertIn(f"validate-crds: {4 + len(self.CASES) - 1} custom resources", self.output)

    def test_valid_resources_pass(self):
        self.assertEqual(self.errors["valid"], [])

    def test_misspelt_field_is_refused(self):
        self.assertRefused("misspelt", 'spec.strategy.canary.stepz: unknown field "stepz"')

    def test_misspelt_field_in_an_embedded_pod_template_is_refused(self):
        self.assertRefused("misspelt_in_pod_template", "spec.template.spec.containers[0].imagePullPolice: unknown field")

    def test_misspelt_sync_option_is_refused(self):
        self.assertRefused("misspelt_sync_option", "spec.syncPolicy.automated.selfheal: unknown field")

    def test_wrong_type_is_refused(self):
        self.assertRefused("wrong_type", "replicas", "must be integer")

    def test_missing_required_field_is_refused(self):
        self.assertRefused("missing_required", "remoteRef must have required property key")

    def test_unknown_field_deep_in_a_list_is_refused(self):
        self.assertRefused("unknown_deep_in_list", "spec.data[0].remoteRef.versoin: unknown field")

    def test_kinds_lists_the_table(self):
        done = subprocess.run([NODE, str(TOOLS / "validate-crds.mjs"), "--kinds"], capture_output=True, text=True, check=True)
        self.assertIn('{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout"}', done.stdout)


class CoreKinds(unittest.TestCase):
    """deploy_check.validate_core: kubernetes-validate, strict."""

    DEPLOYMENT = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}}},
    }

    def check(self, body):
        return deploy_check.validate_core(deploy_check.Obj("fixture.yaml", 0, body))

    def test_valid_deployment_passes(self):
        self.assertIsNone(self.check(self.DEPLOYMENT))

    def test_unknown_field_is_refused(self):
        body = {**self.DEPLOYMENT, "spec": {**self.DEPLOYMENT["spec"], "replica": 3}}
        self.assertIn("'replica' was unexpected", self.check(body))

    def test_kind_no_schema_covers_is_refused(self):
        body = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"}}
        self.assertIn("no schema covers cert-manager.io/v1 Certificate", self.check(body))


class References(unittest.TestCase):
    """What is rendered, what Argo CD applies raw, and what nothing deploys."""

    FILES = {
        "deploy/base/kustomization.yaml": "resources: [deployment.yaml]\n",
        "deploy/base/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
        "deploy/base/forgotten.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: forgotten}\n",
        "deploy/overlays/prod/kustomization.yaml": textwrap.dedent("""\
            resources: [../../base]
            patches:
              - path: replicas.yaml
            configMapGenerator:
              - name: settings
                files: [app.toml=settings.toml]
            """),
        "deploy/overlays/prod/replicas.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n",
        "deploy/overlays/prod/settings.toml": "x = 1\n",
        "deploy/components/probes/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n",
        "deploy/rules/app.prometheusrule.yaml": "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\n",
        "deploy/rules/app.rules.yml": "groups: []\n",
        "deploy/dashboards/app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dash}\n",
        "deploy/canary/spec.yaml": "name: not-a-manifest\n",
    }

    def setUp(self):
        self.cwd = os.getcwd()
        self.tmp = tempfile.TemporaryDirectory()
        os.chdir(self.tmp.name)
        for name, text in self.FILES.items():
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_text(text, encoding="utf-8")

    def tearDown(self):
        os.chdir(self.cwd)
        self.tmp.cleanup()

    def loose(self):
        reachable = deploy_check.reachable_from(deploy_check.roots())
        return {str(p) for p in deploy_check.manifest_files() if p not in reachable}

    def test_roots_leave_out_the_base_and_components(self):
        self.assertEqual([str(r) for r in deploy_check.roots()], ["deploy/overlays/prod"])
        self.assertEqual(deploy_check.rendered_name(Path("deploy/overlays/prod")), "overlays/prod")

    def test_files_no_kustomization_reads_are_found(self):
        self.assertEqual(self.loose(), {"deploy/base/forgotten.yaml", "deploy/rules/app.prometheusrule.yaml",
                                        "deploy/dashboards/app.yaml"})

    def test_argo_directory_source_deploys_its_files(self):
        app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "dash"},
               "spec": {"source": {"path": "deploy/dashboards"}}}
        errors = []
        applied = deploy_check.argo_directories([deploy_check.Obj("app.yaml", 0, app)], errors)
        self.assertEqual(errors, [])
        self.assertEqual([str(p) for p in applied], ["deploy/dashboards/app.yaml"])

    def test_argo_directory_source_with_a_non_manifest_is_refused(self):
        app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "rules"},
               "spec": {"source": {"path": "deploy/rules"}}}
        errors = []
        deploy_check.argo_directories([deploy_check.Obj("app.yaml", 0, app)], errors)
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("deploy/rules/app.rules.yml is not a Kubernetes manifest", errors[0])
        app["spec"]["source"]["directory"] = {"include": "*.prometheusrule.yaml"}
        errors = []
        applied = deploy_check.argo_directories([deploy_check.Obj("app.yaml", 0, app)], errors)
        self.assertEqual((errors, [str(p) for p in applied]), ([], ["deploy/rules/app.prometheusrule.yaml"]))

    def test_argo_source_path_that_does_not_exist_is_refused(self):
        app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "x"},
               "spec": {"source": {"path": "deploy/overlays/qa"}}}
        errors = []
        deploy_check.argo_directories([deploy_check.Obj("app.yaml", 0, app)], errors)
        self.assertIn("deploy/overlays/qa is not a directory of this repository", errors[0])


class PromQL(unittest.TestCase):
    """deploy_check.promql: promtool on rules, dashboards and analysis queries."""

    RULE = textwrap.dedent("""\
        apiVersion: monitoring.coreos.com/v1
        kind: PrometheusRule
        metadata: {name: slo}
        spec:
          groups:
            - name: g
              rules:
                - record: job:errors:rate5m
                  expr: sum(rate(errors_total[5m])) by (job)
        """)
    ANALYSIS = textwrap.dedent("""\
        apiVersion: argoproj.io/v1alpha1
        kind: AnalysisTemplate
        metadata: {name: success}
        spec:
          metrics:
            - name: ok
              provider:
                prometheus:
                  query: sum(rate(ok_total{service="{{args.service}}"}[{{args.window}}])) / sum(rate(all_total[5m]))
        """)
    DASHBOARD = {"title": "d", "panels": [
        {"type": "row", "panels": [{"targets": [{"expr": 'histogram_quantile(0.99, sum by (le) (rate(h_bucket{service="$service"}[$__rate_interval])))'}]}]},
        {"targets": [{"expr": "sum(up)"}, {"refId": "B"}]},
    ]}

    def setUp(self):
        self.cwd = os.getcwd()
        self.tmp = tempfile.TemporaryDirectory()
        os.chdir(self.tmp.name)
        Path("deploy/grafana").mkdir(parents=True)
        Path("rendered").mkdir()

    def tearDown(self):
        os.chdir(self.cwd)
        self.tmp.cleanup()

    def run_promql(self, rendered_text, dashboard=None):
        Path("rendered/all.yaml").write_text(rendered_text, encoding="utf-8")
        if dashboard is not None:
            Path("deploy/grafana/d.json").write_text(json.dumps(dashboard), encoding="utf-8")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = deploy_check.promql(Path("rendered"))
        return code, out.getvalue()

    def test_templates_become_plain_promql(self):
        self.assertEqual(deploy_check.stand_in('rate(m{a="$service", b="${env:regex}"}[$__rate_interval])'),
                         'rate(m{a="x", b="x"}[5m])')
        self.assertEqual(deploy_check.stand_in("sum(rate(m[{{args.window}}])) > {{ args.limit }}"),
                         "sum(rate(m[5m])) > x")

    def test_dashboard_queries_are_found_in_rows(self):
        self.assertEqual(len(deploy_check.dashboard_exprs(self.DASHBOARD)), 2)

    def test_valid_expressions_pass(self):
        code, out = self.run_promql(self.RULE + "---\n" + self.ANALYSIS, self.DASHBOARD)
        self.assertEqual(code, 0, out)
        self.assertIn("promtool parsed 4 expressions from 3 sources, 0 failed", out)

    def test_broken_rule_fails(self):
        code, out = self.run_promql(self.RULE.replace("by (job)", "by (job"))
        self.assertEqual(code, 1, out)
        self.assertIn("PrometheusRule slo", out)

    def test_broken_analysis_query_fails(self):
        code, out = self.run_promql(self.ANALYSIS.replace("/ sum(", "/ summ("))
        self.assertEqual(code, 1, out)
        self.assertIn("AnalysisTemplate success", out)

    def test_broken_dashboard_query_fails(self):
        broken = json.loads(json.dumps(self.DASHBOARD))
        broken["panels"][1]["targets"][0]["expr"] = "sum(up"
        code, out = self.run_promql(self.RULE, broken)
        self.assertEqual(code, 1, out)
        self.assertIn("deploy/grafana/d.json", out)


    def test_broken_dashboard_in_a_config_map_fails(self):
        broken = json.loads(json.dumps(self.DASHBOARD))
        broken["panels"][1]["targets"][0]["expr"] = "rate(up[5m]"
        config_map = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dash"},
                                     "data": {"slo.json": json.dumps(broken)}})
        code, out = self.run_promql(config_map)
        self.assertEqual(code, 1, out)
        self.assertIn("ConfigMap dash slo.json", out)


if __name__ == "__main__":
    unittest.main()
