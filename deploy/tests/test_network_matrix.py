"""The rendered NetworkPolicies allow exactly the platform's call graph
(docs/operations/kubernetes.md#who-may-talk-to-whom): every allowed pair
is allowed, every other pair between a platform pod and anything is
denied, and DNS works for every pod. Evaluated with Kubernetes' semantics
by netpol.py over each environment's render, with the cluster's other
parts (ingress controller, Prometheus, Argo Rollouts, the data services,
CoreDNS, a stranger) as stand-in pods. Broken copies show that the check
catches an allow-all rule, a blocked DNS and a missing default deny."""
import unittest

from netpol import Cluster
from render import ENVIRONMENTS, NAMESPACES, by_name, render

MODULES = ("gateway", "shortener", "orders", "notifier", "inference", "llm", "canary")
PUBLIC_IP = "93.184.216.34"

# Stand-ins for what runs beside the platform: (namespace, name, labels, ports).
OTHERS = [
    ("ingress-nginx", "controller", {"app.kubernetes.io/name": "ingress-nginx"}, [80, 443]),
    ("monitoring", "prometheus", {"app.kubernetes.io/name": "prometheus"}, [9090]),
    ("argo-rollouts", "controller", {"app.kubernetes.io/name": "argo-rollouts"}, [8090]),
    ("postgres", "reliable-db-1", {"cnpg.io/cluster": "reliable-db"}, [5432]),
    ("nats", "nats-0", {"app.kubernetes.io/name": "nats"}, [4222]),
    ("redis", "redis-0", {"app.kubernetes.io/name": "redis"}, [6379]),
    ("llm-serving", "llama", {"app": "llama"}, [8000]),
    ("default", "stranger", {"app": "stranger"}, [8080]),
    ("kube-system", "metrics-server", {"k8s-app": "metrics-server"}, [53, 443]),
]
# A pod someone started by hand in the platform's namespace, without labels.
INTRUDER = "intruder"


def expected(namespace):
    """Every allowed (source, destination, port, protocol); names are
    `namespace/pod`."""
    p = lambda name: f"{namespace}/{name}"  # noqa: E731
    allow = {
        ("ingress-nginx/controller", p("gateway"), 8080),
        (p("canary"), p("gateway"), 8082),
        (p("canary"), p("inference"), 8080),
        ("argo-rollouts/controller", p("canary"), 8080),
        (p("canary"), "monitoring/prometheus", 9090),
        (p("llm"), "llm-serving/llama", 8000),
    }
    for m in MODULES:
        allow.add(("monitoring/prometheus", p(m), 8080))
        if m != "gateway":
            allow.add((p("gateway"), p(m), 8080))
    for m, needs in {
        "gateway": ("postgres", "redis"),
        "shortener": ("postgres",),
        "orders": ("postgres", "nats"),
        "notifier": ("postgres", "nats"),
        "llm": ("postgres", "redis"),
        "canary": ("postgres",),
    }.items():
        for service in needs:
            pod, port = {"postgres": ("postgres/reliable-db-1", 5432), "nats": ("nats/nats-0", 4222),
                         "redis": ("redis/redis-0", 6379)}[service]
            allow.add((p(m), pod, port))
    allowed = {(s, d, port, "TCP") for s, d, port in allow}
    for m in MODULES + (INTRUDER,):
        allowed.add((p(m), "kube-system/coredns", 53, "UDP"))
        allowed.add((p(m), "kube-system/coredns", 53, "TCP"))
    return allowed


# (module, address, port): allowed to leave the cluster.
EXTERNAL_ALLOWED = {("notifier", PUBLIC_IP, 443), ("llm", PUBLIC_IP, 443)}
EXTERNAL_PROBES = [PUBLIC_IP, "10.0.0.5", "172.20.1.1", "192.168.1.1", "169.254.169.254", "100.64.0.1"]


def cluster_of(objects, namespace):
    cluster = Cluster()
    cluster.load(objects)
    cluster.add_kube_dns()
    for ns, name, labels, ports in OTHERS:
        cluster.add_pod(ns, name, labels, [{"containerPort": port} for port in ports])
    cluster.add_pod(namespace, INTRUDER, {}, [{"containerPort": 8080}])
    return cluster


def matrix_problems(objects, namespace):
    cluster = cluster_of(objects, namespace)
    want = expected(namespace)
    problems = []
    pods = list(cluster.pods.values())
    for src in pods:
        for dst in pods:
            if src is dst or namespace not in (src.namespace, dst.namespace):
                continue
            for port in dst.ports:
                key = (f"{src.namespace}/{src.name}", f"{dst.namespace}/{dst.name}", port.number, port.protocol)
                got = cluster.allowed(src, dst, port.number, port.protocol)
                if got != (key in want):
                    verdict = "allowed" if got else "denied"
                    problems.append(f"{key[0]} -> {key[1]}:{port.number}/{port.protocol} is {verdict}: "
                                    f"{cluster.explain(src, dst, port.number, port.protocol)}")
    for name in MODULES + (INTRUDER,):
        src = cluster.pod(namespace, name)
        for ip in EXTERNAL_PROBES:
            for port in (80, 443, 5432):
                got = cluster.allowed_to_ip(src, ip, port)
                if got != ((name, ip, port) in EXTERNAL_ALLOWED):
                    problems.append(f"{name} -> {ip}:{port} is {'allowed' if got else 'denied'}")
        for ip in EXTERNAL_PROBES:
            if cluster.allowed_from_ip(ip, src, 8080):
                problems.append(f"{ip} -> {name}:8080 is allowed: only the ingress controller may call in")
    return problems


class Matrix(unittest.TestCase):
    def test_every_environment_allows_exactly_the_call_graph(self):
        for env in ENVIRONMENTS:
            with self.subTest(env=env):
                problems = matrix_problems(render(f"overlays/{env}"), NAMESPACES[env])
                self.assertEqual(problems, [], "\n".join(problems))

    def test_the_matrix_is_not_empty(self):
        # Guards the guard: a render without pods would pass the loop above.
        namespace = NAMESPACES["prod"]
        cluster = cluster_of(render("overlays/prod"), namespace)
        self.assertEqual({n for ns, n in cluster.pods if ns == namespace}, set(MODULES) | {INTRUDER})
        self.assertTrue(cluster.allowed(cluster.pod(namespace, "gateway"), cluster.pod(namespace, "orders"), 8080))
        self.assertFalse(cluster.allowed(cluster.pod(namespace, "inference"), cluster.pod("nats", "nats-0"), 4222))


class CatchesBrokenPolicies(unittest.TestCase):
    namespace = NAMESPACES["prod"]

    def problems_with(self, change):
        objects = render("overlays/prod")
        change(objects)
        return matrix_problems(objects, self.namespace)

    def assertCaught(self, problems, text):
        self.assertTrue(any(text in p for p in problems), f"{text!r} not in:\n" + "\n".join(problems))

    def test_an_allow_all_egress_rule(self):
        def change(objects):
            by_name(objects, "NetworkPolicy", "inference")["spec"]["egress"] = [{}]
        problems = self.problems_with(change)
        self.assertCaught(problems, f"{self.namespace}/inference -> nats/nats-0:4222/TCP is allowed")
        self.assertCaught(problems, f"inference -> {PUBLIC_IP}:443 is allowed")

    def test_dns_blocked(self):
        def change(objects):
            objects.remove(by_name(objects, "NetworkPolicy", "allow-dns"))
        self.assertCaught(self.problems_with(change), "kube-system/coredns:53/UDP is denied")

    def test_ingress_from_every_namespace(self):
        def change(objects):
            by_name(objects, "NetworkPolicy", "orders")["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
        self.assertCaught(self.problems_with(change), f"default/stranger -> {self.namespace}/orders:8080/TCP is allowed")

    def test_no_default_deny(self):
        def change(objects):
            objects.remove(by_name(objects, "NetworkPolicy", "default-deny-all"))
        self.assertCaught(self.problems_with(change), f"default/stranger -> {self.namespace}/intruder:8080/TCP is allowed")

    def test_webhooks_to_the_metadata_address(self):
        def change(objects):
            rule = by_name(objects, "NetworkPolicy", "notifier")["spec"]["egress"][2]
            rule["to"][0]["ipBlock"]["except"].remove("169.254.0.0/16")
            rule["ports"].append({"protocol": "TCP", "port": 80})
        self.assertCaught(self.problems_with(change), "notifier -> 169.254.169.254:443 is allowed")


if __name__ == "__main__":
    unittest.main()
