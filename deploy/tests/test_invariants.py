"""The rendered environments hold the invariants of invariants.py, the
Argo CD tree points at what exists, and the settings in the manifests pass
the binary's own config validation. Each check is also shown to fail on a
broken copy of a real render."""
import os
import pathlib
import subprocess
import tempfile
import unittest

import yaml

import invariants as inv
from render import DEPLOY, ENVIRONMENTS, NAMESPACES, by_name, of_kind, reliable_binary, render


class Environments(unittest.TestCase):
    def test_every_overlay_holds_every_invariant(self):
        for env, replicas in ENVIRONMENTS.items():
            with self.subTest(env=env):
                objects = render(f"overlays/{env}")
                self.assertEqual(inv.all_checks(objects, env, NAMESPACES[env], replicas), [])

    def test_replicas_are_1_2_5(self):
        for env, replicas in ENVIRONMENTS.items():
            objects = render(f"overlays/{env}")
            counts = {}
            for name, deployment, rollout in inv.workloads(objects):
                counts[name] = (rollout or deployment)["spec"]["replicas"]
            self.assertEqual(set(counts), {"gateway", "shortener", "orders", "notifier", "inference", "llm", "canary"})
            self.assertEqual({n: c for n, c in counts.items() if n != "canary"},
                             {n: replicas for n in counts if n != "canary"}, env)
            self.assertEqual(counts["canary"], 1)


class ChecksCatchBreakage(unittest.TestCase):
    """Each check, on the prod render with one thing broken."""

    def prod(self):
        return render("overlays/prod")

    def container(self, objects, name="gateway"):
        return by_name(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]

    def assertCaught(self, problems, text):
        self.assertTrue(any(text in p for p in problems), f"{text!r} not in {problems}")

    def test_missing_probe_and_wrong_path(self):
        objects = self.prod()
        del self.container(objects)["livenessProbe"]
        self.container(objects, "orders")["readinessProbe"]["httpGet"]["path"] = "/healthz"
        problems = inv.check_containers(objects)
        self.assertCaught(problems, "gateway/reliable: livenessProbe path is None")
        self.assertCaught(problems, "orders/reliable: readinessProbe path is '/healthz'")

    def test_short_startup_probe(self):
        objects = self.prod()
        self.container(objects)["startupProbe"]["failureThreshold"] = 3
        self.assertCaught(inv.check_containers(objects), "less than 60 s for migrations")

    def test_resources_security_and_image(self):
        objects = self.prod()
        c = self.container(objects)
        del c["resources"]["limits"]["memory"]
        c["securityContext"]["readOnlyRootFilesystem"] = False
        c["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
        c["image"] = "registry.example.com/reliable/reliable:latest"
        problems = inv.check_containers(objects)
        for text in ("no resources.limits.memory", "readOnlyRootFilesystem", "capabilities.drop", "uses latest",
                     "not tagged with a commit SHA"):
            self.assertCaught(problems, text)

    def test_root_and_grace_period(self):
        objects = self.prod()
        pod = by_name(objects, "Deployment", "gateway")["spec"]["template"]["spec"]
        pod["securityContext"]["runAsNonRoot"] = False
        del self.container(objects)["securityContext"]["runAsNonRoot"]
        pod["terminationGracePeriodSeconds"] = 20
        problems = inv.check_containers(objects)
        self.assertCaught(problems, "runAsNonRoot is not true")
        self.assertCaught(problems, "terminationGracePeriodSeconds 20")

    def test_replicas_pdb_hpa_and_rbac(self):
        objects = self.prod()
        by_name(objects, "Rollout", "shortener")["spec"]["replicas"] = 2
        objects.remove(by_name(objects, "PodDisruptionBudget", "orders"))
        by_name(objects, "HorizontalPodAutoscaler", "llm")["spec"]["minReplicas"] = 1
        objects.append({"kind": "ClusterRoleBinding", "metadata": {"name": "oops"}})
        problems = inv.check_availability(objects, 5)
        self.assertCaught(problems, "shortener: Rollout has 2 replicas, want 5")
        self.assertCaught(problems, "orders: no PodDisruptionBudget")
        self.assertCaught(problems, "llm: HPA minReplicas 1, want 5")
        self.assertCaught(problems, "ClusterRoleBinding oops")

    def test_servicemonitor_prometheus_would_ignore(self):
        objects = self.prod()
        by_name(objects, "ServiceMonitor", "orders")["metadata"]["labels"].pop("release")
        by_name(objects, "ServiceMonitor", "llm")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "lm"
        by_name(objects, "ServiceMonitor", "notifier")["spec"]["endpoints"][0]["port"] = "metrics"
        by_name(objects, "ServiceMonitor", "shortener")["spec"]["endpoints"][0].pop("honorLabels")
        problems = inv.check_monitoring(objects)
        self.assertCaught(problems, "orders: ServiceMonitor lacks release")
        self.assertCaught(problems, "llm: the ServiceMonitor's selector matches no Service")
        self.assertCaught(problems, "notifier: ServiceMonitor port 'metrics'")
        self.assertCaught(problems, "shortener: ServiceMonitor without honorLabels")

    def test_secret_as_environment_and_unmounted_file(self):
        objects = self.prod()
        c = self.container(objects, "orders")
        c["env"].append({"name": "RELIABLE_NATS_URL", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}})
        c["env"].append({"name": "RELIABLE_REDIS_URL_FILE", "value": "/nowhere"})
        problems = inv.check_secrets_and_config(objects)
        self.assertCaught(problems, "RELIABLE_NATS_URL from a Secret as environment")
        self.assertCaught(problems, "RELIABLE_REDIS_URL_FILE points at /nowhere")

    def test_environment_mixups(self):
        objects = render("overlays/staging")
        problems = inv.check_environment(objects, "staging", "reliable")
        self.assertCaught(problems, "exactly its namespace reliable")
        by_name(objects, "ExternalSecret", "reliable-database")["spec"]["data"][0]["remoteRef"]["key"] = "reliable/prod"
        self.assertCaught(inv.check_environment(objects, "staging", "reliable-staging"), "reads reliable/prod")
        self.assertCaught(inv.check_environment(render("overlays/staging"), "prod", "reliable-staging"),
                          "topology spread")

    def test_rollout_steps_and_labels(self):
        objects = self.prod()
        by_name(objects, "Rollout", "inference")["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = 5
        self.assertCaught(inv.check_rollouts(objects), "steps [5, 30, 50, 80]")
        del by_name(objects, "Deployment", "llm")["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"]
        self.assertCaught(inv.check_labels(objects), "llm: pod template has no label app.kubernetes.io/part-of")


    def test_mtls_mixups(self):
        objects = self.prod()
        self.container(objects, "orders")["readinessProbe"]["httpGet"]["scheme"] = "HTTP"
        by_name(objects, "Certificate", "shortener")["spec"]["uris"] = ["spiffe://reliable/gateway"]
        by_name(objects, "ServiceMonitor", "llm")["spec"]["endpoints"][0].pop("tlsConfig")
        self.container(objects, "notifier")["volumeMounts"].append({"name": "tls", "mountPath": "/tmp/tls"})
        gateway = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("gateway-config")][0]
        gateway["data"]["gateway.toml"] = gateway["data"]["gateway.toml"].replace("https://inference", "http://inference")
        by_name(objects, "Deployment", "canary")["spec"]["template"]["spec"]["containers"][0]["livenessProbe"][
            "httpGet"]["scheme"] = "HTTPS"
        problems = inv.check_mtls(objects)
        self.assertCaught(problems, "orders: readinessProbe speaks HTTP, the pod serves HTTPS")
        self.assertCaught(problems, "shortener: Certificate shortener is not spiffe://reliable/shortener")
        self.assertCaught(problems, "llm: Prometheus scrapes it without HTTPS")
        self.assertCaught(problems, "notifier: mount /tmp/tls is inside mount /tmp")
        self.assertCaught(problems, "gateway: pool inference reaches inference with http, it serves https")
        self.assertCaught(problems, "canary: livenessProbe speaks HTTPS, the pod serves HTTP")

    def test_mtls_identity_from_elsewhere(self):
        objects = self.prod()
        objects.remove(by_name(objects, "Certificate", "orders"))
        env = self.container(objects, "gateway")["env"]
        next(e for e in env if e["name"] == "RELIABLE_TLS_KEY_FILE")["value"] = "/etc/key.pem"
        problems = inv.check_mtls(objects)
        self.assertCaught(problems, "orders: its TLS volume is not a Certificate's Secret")
        self.assertCaught(problems, "gateway: RELIABLE_TLS_KEY_FILE is '/etc/key.pem'")
        self.assertCaught(inv.check_secrets_and_config(objects), "orders: mount secrets through the projected volume")


class MtlsComponent(unittest.TestCase):
    def test_its_gateway_file_differs_from_the_base_only_in_the_schemes(self):
        base = (DEPLOY / "base/gateway/gateway.toml").read_text()
        mtls = (DEPLOY / "components/mtls/gateway.toml").read_text()
        body = lambda text: text.split("\n\n", 1)[1]  # past the header comment
        tls = inv.tls_modules(render("overlays/prod"))
        self.assertEqual(tls, {"gateway", "shortener", "orders", "notifier", "inference", "llm"})
        expected = body(base)
        for name in tls:
            expected = expected.replace(f'"http://{name}:', f'"https://{name}:')
        self.assertEqual(body(mtls), expected)

    def test_dev_runs_without_it_and_staging_and_prod_with_it(self):
        self.assertEqual(inv.tls_modules(render("overlays/dev")), set())
        for env in ("staging", "prod"):
            self.assertEqual(len(of_kind(render(f"overlays/{env}"), "Certificate")), 6, env)


class SettingsPassTheBinary(unittest.TestCase):
    """Each module's settings in each environment, as its pod would see them
    (the shared ConfigMap as environment, its config file, placeholder
    secret files), pass `reliable config check`."""

    def test_config_check_accepts_every_module_of_every_environment(self):
        binary = reliable_binary()
        for env in ENVIRONMENTS:
            objects = render(f"overlays/{env}")
            for name, deployment, _ in inv.workloads(objects):
                with self.subTest(env=env, module=name), tempfile.TemporaryDirectory() as tmp:
                    c = deployment["spec"]["template"]["spec"]["containers"][0]
                    vars = {k: v for k, v in os.environ.items() if not k.startswith("RELIABLE_")}
                    for ref in c.get("envFrom", []):
                        vars.update(by_name(objects, "ConfigMap", ref["configMapRef"]["name"])["data"])
                    args = ["config", "check", "--target", name]
                    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
                    mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
                    if "--config" in c["args"]:
                        path = c["args"][c["args"].index("--config") + 1]
                        directory, file = path.rsplit("/", 1)
                        data = by_name(objects, "ConfigMap", mounts[directory]["configMap"]["name"])["data"]
                        local = pathlib.Path(tmp, file)
                        local.write_text(data[file])
                        args += ["--config", str(local)]
                    identity = issue_identity(binary, tmp, name) if inv.TLS_FILES.keys() & {
                        e["name"] for e in c.get("env", [])} else {}
                    for e in c.get("env", []):
                        value = e["value"]
                        if e["name"] in identity:
                            value = identity[e["name"]]
                        elif e["name"].endswith("_FILE"):
                            placeholder = pathlib.Path(tmp, pathlib.Path(value).name)
                            placeholder.write_text(placeholder_secret(e["name"]))
                            value = str(placeholder)
                        vars[e["name"]] = value
                    run = subprocess.run([binary, *args], env=vars, capture_output=True, text=True)
                    self.assertEqual(run.returncode, 0, f"{run.stdout}{run.stderr}")

    def test_config_check_refuses_a_broken_gateway_file(self):
        binary = reliable_binary()
        gateway = by_name(render("overlays/prod"), "Deployment", "gateway")
        self.assertIn("--config", gateway["spec"]["template"]["spec"]["containers"][0]["args"])
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
            f.write((DEPLOY / "base/gateway/gateway.toml").read_text().replace('pool = "orders"', 'pool = "order"'))
            f.flush()
            run = subprocess.run([binary, "config", "check", "--target", "gateway", "--config", f.name],
                                 env={"PATH": os.environ.get("PATH", "")}, capture_output=True, text=True)
            self.assertNotEqual(run.returncode, 0, run.stdout)


def issue_identity(binary, directory, service):
    """What cert-manager would mount for `service`, from `reliable pki`:
    {RELIABLE_TLS_*_FILE: path}."""
    pki = pathlib.Path(directory, "pki")
    for args in (["pki", "init", "--dir", str(pki)],
                 ["pki", "issue", "--service", service, "--dir", str(pki), "--out", directory]):
        subprocess.run([binary, *args], check=True, capture_output=True)
    return {"RELIABLE_TLS_CERT_FILE": f"{directory}/{service}.pem",
            "RELIABLE_TLS_KEY_FILE": f"{directory}/{service}-key.pem",
            "RELIABLE_TLS_CA_FILE": str(pki / "ca.pem")}


def placeholder_secret(var):
    return {
        "RELIABLE_DATABASE_URL_FILE": "postgres://reliable:secret@postgres.example:5432/reliable",
        "RELIABLE_NATS_URL_FILE": "nats://nats.example:4222",
        "RELIABLE_REDIS_URL_FILE": "redis://redis.example:6379",
    }.get(var, "placeholder-secret-value\n")


class GitOpsTree(unittest.TestCase):
    def apps(self):
        return of_kind(render("argocd/apps"), "Application")

    def test_bootstrap_renders_the_project_and_the_root(self):
        objects = render("argocd")
        self.assertEqual(sorted(o["kind"] for o in objects), ["AppProject", "Application"])
        root = by_name(objects, "Application", "reliable-root")
        self.assertEqual(root["spec"]["source"]["path"], "deploy/argocd/apps")

    def test_every_application_points_at_a_rendering_directory_of_its_project(self):
        project = by_name(render("argocd"), "AppProject", "reliable")
        destinations = {d["namespace"] for d in project["spec"]["destinations"]}
        for app in self.apps():
            source, dest = app["spec"]["source"], app["spec"]["destination"]
            self.assertIn(source["repoURL"], project["spec"]["sourceRepos"], app["metadata"]["name"])
            self.assertIn(dest["namespace"], destinations, app["metadata"]["name"])
            if "path" in source:
                relative = source["path"].removeprefix("deploy/")
                self.assertTrue(render(relative), source["path"])

    def test_waves_order_operators_then_cluster_then_monitoring_then_environments(self):
        wave = {a["metadata"]["name"]: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
                for a in self.apps()}
        self.assertLess(wave["reliable-cluster"], wave["reliable-monitoring"])
        self.assertLess(wave["reliable-monitoring"], min(wave[f"reliable-{e}"] for e in ENVIRONMENTS))
        crd_operators = ("argo-rollouts", "kyverno", "external-secrets", "kube-prometheus-stack")
        self.assertLess(max(wave[n] for n in crd_operators), wave["reliable-cluster"])

    def test_prune_and_self_heal_in_staging_and_prod_only(self):
        for env in ENVIRONMENTS:
            app = next(a for a in self.apps() if a["metadata"]["name"] == f"reliable-{env}")
            auto = app["spec"]["syncPolicy"]["automated"]
            self.assertEqual((auto["prune"], auto["selfHeal"]), (env != "dev", env != "dev"), env)
            self.assertEqual(app["spec"]["destination"]["namespace"], NAMESPACES[env])
            ignored = {(d["kind"], tuple(d["jsonPointers"])) for d in app["spec"]["ignoreDifferences"]}
            self.assertIn(("Deployment", ("/spec/replicas",)), ignored)
            self.assertIn("RespectIgnoreDifferences=true", app["spec"]["syncPolicy"]["syncOptions"])

    def test_operators_with_big_crds_apply_server_side(self):
        for app in self.apps():
            if "chart" in app["spec"]["source"]:
                self.assertIn("ServerSideApply=true", app["spec"]["syncPolicy"]["syncOptions"], app["metadata"]["name"])


class Monitoring(unittest.TestCase):
    def test_every_generated_rule_file_is_deployed_with_the_release_label(self):
        generated = sorted(p.name for p in (DEPLOY / "prometheus").glob("*.prometheusrule.yaml"))
        listed = yaml.safe_load((DEPLOY / "prometheus/kustomization.yaml").read_text())["resources"]
        self.assertEqual(sorted(listed), generated)
        rules = of_kind(render("monitoring"), "PrometheusRule")
        self.assertEqual(len(rules), len(generated))
        for r in rules:
            self.assertEqual(r["metadata"]["labels"].get("release"), "kube-prometheus-stack")
            self.assertEqual(r["metadata"]["namespace"], "monitoring")

    def test_every_dashboard_reaches_grafanas_sidecar(self):
        generated = sorted(p.name for p in (DEPLOY / "grafana").glob("*.dashboard.yaml"))
        self.assertTrue(generated)
        maps = [c for c in of_kind(render("monitoring"), "ConfigMap") if c["metadata"]["name"].startswith("slo-dashboard-")]
        self.assertEqual(len(maps), len(generated))
        stack = next(a for a in of_kind(render("argocd/apps"), "Application")
                     if a["metadata"]["name"] == "kube-prometheus-stack")
        sidecar = stack["spec"]["source"]["helm"]["valuesObject"]["grafana"]["sidecar"]["dashboards"]
        for c in maps:
            self.assertEqual(c["metadata"]["namespace"], stack["spec"]["destination"]["namespace"])
            self.assertEqual(c["metadata"]["labels"].get(sidecar["label"]), sidecar["labelValue"])
            self.assertIn(sidecar["folderAnnotation"], c["metadata"]["annotations"])


if __name__ == "__main__":
    unittest.main()
