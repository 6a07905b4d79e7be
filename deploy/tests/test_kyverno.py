"""The Kyverno ClusterPolicies (deploy/cluster/kyverno) admit every pod of
every environment, refuse each kind of pod they exist to refuse, leave
system namespaces alone, and close every new namespace but for DNS.
Evaluated by kyverno.py (the constructs these policies use)."""
import copy
import unittest

import kyverno
from netpol import Cluster
from render import ENVIRONMENTS, of_kind, render


def policies():
    return of_kind(render("cluster"), "ClusterPolicy")


def pods_of(objects):
    for d in of_kind(objects, "Deployment"):
        template = d["spec"]["template"]
        yield d["metadata"]["name"], {"apiVersion": "v1", "kind": "Pod",
                                      "metadata": copy.deepcopy(template["metadata"]),
                                      "spec": copy.deepcopy(template["spec"])}


def platform_namespace(env="prod"):
    ns = of_kind(render(f"overlays/{env}"), "Namespace")[0]
    return ns["metadata"]["name"], {**ns["metadata"]["labels"], "kubernetes.io/metadata.name": ns["metadata"]["name"]}


class Admission(unittest.TestCase):
    def test_every_pod_of_every_environment_is_admitted(self):
        for env in ENVIRONMENTS:
            objects = render(f"overlays/{env}")
            name, labels = platform_namespace(env)
            for module, pod in pods_of(objects):
                with self.subTest(env=env, module=module):
                    self.assertEqual(kyverno.admit(policies(), pod, name, labels), [])

    def gateway(self):
        return dict(pods_of(render("overlays/prod")))["gateway"]

    def refusals(self, change, namespace=None):
        pod = self.gateway()
        change(pod)
        name, labels = namespace or platform_namespace()
        return kyverno.admit(policies(), pod, name, labels)

    def assertRefusedBy(self, change, rule, namespace=None):
        refusals = self.refusals(change, namespace)
        self.assertTrue(any(r.startswith(rule + ":") for r in refusals), f"{rule} not in {refusals}")

    def c(self, pod):
        return pod["spec"]["containers"][0]

    def test_each_bad_pod_is_refused_by_its_rule(self):
        cases = {
            "require-requests-limits/containers-have-requests-and-limits":
                lambda p: self.c(p)["resources"]["limits"].pop("cpu"),
            "require-probes/containers-have-probes": lambda p: self.c(p).pop("startupProbe"),
            "require-labels/pods-have-recommended-labels":
                lambda p: p["metadata"]["labels"].pop("app.kubernetes.io/name"),
            "disallow-latest-tag/forbid-latest":
                lambda p: self.c(p).update(image="registry.example.com/reliable/reliable:latest"),
            "disallow-latest-tag/require-image-tag":
                lambda p: self.c(p).update(image="registry.example.com/reliable/reliable"),
            "disallow-root/no-root-uid": lambda p: self.c(p)["securityContext"].update(runAsUser=0),
            "disallow-root/no-privilege-escalation":
                lambda p: self.c(p)["securityContext"].update(allowPrivilegeEscalation=True),
            "disallow-root/not-privileged": lambda p: self.c(p)["securityContext"].update(privileged=True),
            "disallow-host-path/no-host-path":
                lambda p: p["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}}),
        }
        for rule, change in cases.items():
            with self.subTest(rule=rule):
                self.assertRefusedBy(change, rule)

    def test_root_is_refused_at_pod_or_container_level(self):
        def pod_level(p):
            p["spec"]["securityContext"]["runAsNonRoot"] = False
            self.c(p)["securityContext"].pop("runAsNonRoot")
        self.assertRefusedBy(pod_level, "disallow-root/run-as-non-root")
        self.assertRefusedBy(lambda p: self.c(p)["securityContext"].update(runAsNonRoot=False),
                             "disallow-root/run-as-non-root")

        def container_only(p):
            p["spec"]["securityContext"].pop("runAsNonRoot")
        self.assertEqual(self.refusals(container_only), [], "runAsNonRoot on every container is enough")

    def test_an_init_container_is_checked_too(self):
        def bad_init(p):
            init = copy.deepcopy(self.c(p))
            init.update(name="init", image="busybox:latest")
            p["spec"]["initContainers"] = [init]
        self.assertRefusedBy(bad_init, "disallow-latest-tag/forbid-latest")

    def test_scope(self):
        other = ("team-x", {"kubernetes.io/metadata.name": "team-x"})
        no_probes = lambda p: self.c(p).pop("livenessProbe")  # noqa: E731
        self.assertEqual(self.refusals(no_probes, other), [], "require-probes is for the platform's namespaces")
        self.assertRefusedBy(lambda p: self.c(p).update(image="x:latest"), "disallow-latest-tag/forbid-latest", other)
        system = ("kube-system", {"kubernetes.io/metadata.name": "kube-system"})
        self.assertEqual(self.refusals(lambda p: self.c(p).update(image="x:latest"), system), [])

    def test_unknown_constructs_are_refused_not_passed(self):
        rule = {"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"pattern": {"spec": {"+(hostNetwork)": False}}}}
        policy = {"metadata": {"name": "p"}, "spec": {"rules": [rule]}}
        with self.assertRaises(kyverno.Unsupported):
            kyverno.admit([policy], self.gateway(), "x", {})


class NewNamespaces(unittest.TestCase):
    def test_a_new_namespace_is_closed_but_for_dns(self):
        made = kyverno.generated(policies(), "team-x", {"kubernetes.io/metadata.name": "team-x"})
        self.assertEqual(sorted(o["metadata"]["name"] for o in made), ["allow-dns", "default-deny"])
        cluster = Cluster()
        cluster.load(made)
        dns = cluster.add_kube_dns()
        app = cluster.add_pod("team-x", "app", {"app": "x"}, [{"containerPort": 8080}])
        other = cluster.add_pod("default", "other", {}, [{"containerPort": 8080}])
        self.assertTrue(cluster.allowed(app, dns, 53, "UDP"))
        self.assertTrue(cluster.allowed(app, dns, 53, "TCP"))
        self.assertFalse(cluster.allowed(app, other, 8080))
        self.assertFalse(cluster.allowed(other, app, 8080))
        self.assertFalse(cluster.allowed_to_ip(app, "93.184.216.34", 443))

    def test_system_namespaces_get_nothing(self):
        self.assertEqual(kyverno.generated(policies(), "kube-system", {}), [])


if __name__ == "__main__":
    unittest.main()
