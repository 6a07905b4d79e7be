"""The NetworkPolicy evaluator (netpol.py) against Kubernetes' semantics, on
small hand-written policies: each test is one rule of the API reference,
with the case that must be allowed and the one that must not."""

import unittest

from netpol import Cluster, ContainerPort, PolicyError


def policy(name, spec, namespace="app"):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
HTTP = [ContainerPort(8080, "TCP", "http")]


class Fixture(unittest.TestCase):
    """Namespaces app (team=a) and other (team=b), a web server and a client in each."""

    def setUp(self):
        self.c = Cluster()
        self.c.add_namespace("app", {"team": "a"})
        self.c.add_namespace("other", {"team": "b"})
        self.web = self.c.add_pod("app", "web", {"role": "web"}, HTTP)
        self.client = self.c.add_pod("app", "client", {"role": "client"}, [])
        self.other_client = self.c.add_pod("other", "client", {"role": "client"}, [])
        self.other_web = self.c.add_pod("other", "web", {"role": "web"}, HTTP)

    def add(self, name, spec, namespace="app"):
        return self.c.add_policy(policy(name, spec, namespace))

    def assertAllowed(self, src, dst, port, protocol="TCP"):
        verdict = self.c.explain(src, dst, port, protocol)
        self.assertTrue(verdict.allowed, f"{src} -> {dst}:{port}/{protocol}: {verdict}")

    def assertDenied(self, src, dst, port, protocol="TCP"):
        verdict = self.c.explain(src, dst, port, protocol)
        self.assertFalse(verdict.allowed, f"{src} -> {dst}:{port}/{protocol}: {verdict}")


class Isolation(Fixture):
    def test_without_policies_everything_is_allowed(self):
        self.assertAllowed(self.client, self.web, 8080)
        self.assertAllowed(self.other_client, self.web, 1234, "UDP")
        self.assertTrue(self.c.allowed_to_ip(self.web, "198.51.100.1", 443))
        self.assertTrue(self.c.allowed_from_ip("198.51.100.1", self.web, 8080))

    def test_default_deny_ingress_isolates_only_ingress(self):
        self.add("deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})
        self.assertDenied(self.client, self.web, 8080)
        self.assertFalse(self.c.allowed_from_ip("198.51.100.1", self.web, 8080))
        # Egress stays open: app's pods reach outside and other's unisolated pods.
        self.assertTrue(self.c.allowed_to_ip(self.web, "198.51.100.1", 443))
        self.assertAllowed(self.client, self.other_web, 8080)

    def test_default_deny_both_ways(self):
        self.add("deny", DENY_ALL)
        self.assertDenied(self.client, self.web, 8080)
        self.assertDenied(self.client, self.other_web, 8080)  # client's egress
        self.assertDenied(self.other_client, self.web, 8080)  # web's ingress
        self.assertFalse(self.c.allowed_to_ip(self.client, "198.51.100.1", 443))

    def test_empty_pod_selector_selects_only_its_own_namespace(self):
        self.add("deny", DENY_ALL)
        self.assertAllowed(self.other_client, self.other_web, 8080)

    def test_pod_selector_selects_matching_pods_only(self):
        self.add("deny-web", {"podSelector": {"matchLabels": {"role": "web"}}, "policyTypes": ["Ingress"]})
        self.assertDenied(self.other_client, self.web, 8080)
        self.c.add_pod("app", "api", {"role": "api"}, HTTP)
        self.assertAllowed(self.other_client, self.c.pod("app", "api"), 8080)

    def test_connection_needs_source_egress_and_destination_ingress(self):
        # Egress of the client allows web; web's ingress refuses it.
        self.add("client-out", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                "egress": [{"to": [{"podSelector": {"matchLabels": {"role": "web"}}}]}]})
        self.add("web-in", {"podSelector": {"matchLabels": {"role": "web"}}, "policyTypes": ["Ingress"]})
        self.assertDenied(self.client, self.web, 8080)
        verdict = self.c.explain(self.client, self.web, 8080)
        self.assertTrue(verdict.egress.allowed)
        self.assertFalse(verdict.ingress.allowed)
        self.assertIn("app/web-in", str(verdict))
        # And the other way round: web's ingress opened, client's egress closed.
        c = Cluster()
        web = c.add_pod("app", "web", {"role": "web"}, HTTP)
        client = c.add_pod("app", "client", {"role": "client"})
        c.add_policy(policy("client-out", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"]}))
        c.add_policy(policy("web-in", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{}]}))
        self.assertFalse(c.allowed(client, web, 8080))
        self.assertFalse(c.explain(client, web, 8080).egress.allowed)
        self.assertTrue(c.explain(client, web, 8080).ingress.allowed)

    def test_policies_are_or_ed_and_never_deny(self):
        self.add("deny", DENY_ALL)
        self.add("web-80", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"ports": [{"port": 80}]}]})
        self.add("web-443", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"ports": [{"port": 443}]}]})
        self.add("client-out", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                "egress": [{}]})
        self.assertAllowed(self.client, self.web, 80)
        self.assertAllowed(self.client, self.web, 443)
        self.assertDenied(self.client, self.web, 8080)
        ingress = self.c.explain(self.client, self.web, 80).ingress
        self.assertEqual({p.name for p in ingress.isolated_by}, {"deny", "web-80", "web-443"})
        self.assertEqual([p.name for p in ingress.allowed_by], ["web-80"])


class PolicyTypesDefaulting(Fixture):
    def test_ingress_rules_only_default_to_ingress(self):
        self.add("web-in", {"podSelector": {"matchLabels": {"role": "web"}},
                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
        self.assertAllowed(self.client, self.web, 8080)
        self.assertDenied(self.other_client, self.web, 8080)
        self.assertFalse(self.c.isolated(self.web, "Egress"))
        self.assertTrue(self.c.allowed_to_ip(self.web, "198.51.100.1", 443))

    def test_egress_rules_without_policy_types_isolate_ingress_too(self):
        # The classic surprise: written as an egress policy, it also denies all ingress.
        self.add("web-out", {"podSelector": {"matchLabels": {"role": "web"}},
                             "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]})
        self.assertTrue(self.c.isolated(self.web, "Egress"))
        self.assertTrue(self.c.isolated(self.web, "Ingress"))
        self.assertDenied(self.client, self.web, 8080)
        self.assertTrue(self.c.allowed_to_ip(self.web, "198.51.100.1", 53, "UDP"))
        self.assertFalse(self.c.allowed_to_ip(self.web, "198.51.100.1", 443))

    def test_empty_egress_list_does_not_add_egress(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "egress": []})
        self.assertTrue(self.c.isolated(self.web, "Ingress"))
        self.assertFalse(self.c.isolated(self.web, "Egress"))

    def test_empty_policy_types_list_is_defaulted(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "policyTypes": []})
        self.assertTrue(self.c.isolated(self.web, "Ingress"))
        self.assertFalse(self.c.isolated(self.web, "Egress"))

    def test_egress_only_policy_ignores_its_ingress_rules(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "policyTypes": ["Egress"],
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "nobody"}}}]}]})
        self.assertFalse(self.c.isolated(self.web, "Ingress"))
        self.assertAllowed(self.other_client, self.web, 8080)
        self.assertFalse(self.c.allowed_to_ip(self.web, "198.51.100.1", 443))

    def test_explicit_ingress_type_without_rules_denies_ingress(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "policyTypes": ["Ingress", "Egress"],
                         "egress": [{}]})
        self.assertDenied(self.client, self.web, 8080)
        self.assertTrue(self.c.allowed_to_ip(self.web, "198.51.100.1", 443))


class Rules(Fixture):
    def test_empty_rule_allows_everything(self):
        self.add("deny", DENY_ALL)
        self.add("web-all", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{}]})
        self.add("clients-all", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})
        self.assertAllowed(self.client, self.web, 8080)
        self.assertAllowed(self.client, self.web, 9999, "UDP")
        self.assertAllowed(self.other_client, self.web, 8080, "SCTP")
        self.assertTrue(self.c.allowed_from_ip("2001:db8::1", self.web, 8080))
        self.assertTrue(self.c.allowed_to_ip(self.client, "198.51.100.1", 25))

    def test_missing_from_allows_every_peer_on_the_listed_ports(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"ports": [{"port": 8080}]}]})
        self.assertAllowed(self.other_client, self.web, 8080)
        self.assertTrue(self.c.allowed_from_ip("198.51.100.1", self.web, 8080))
        self.assertDenied(self.other_client, self.web, 8081)

    def test_empty_from_list_is_every_peer(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"from": [], "ports": []}]})
        self.assertAllowed(self.other_client, self.web, 1)

    def test_missing_ports_allows_every_port_from_the_listed_peers(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}},
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
        self.assertAllowed(self.client, self.web, 1)
        self.assertAllowed(self.client, self.web, 65535, "UDP")
        self.assertDenied(self.other_client, self.web, 8080)

    def test_rules_are_or_ed_within_a_policy(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": 8080}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}], "ports": [{"port": 9090}]},
        ]})
        self.assertAllowed(self.client, self.web, 8080)
        self.assertDenied(self.client, self.web, 9090)
        self.assertAllowed(self.other_client, self.web, 9090)
        self.assertDenied(self.other_client, self.web, 8080)


class Peers(Fixture):
    def test_pod_selector_alone_means_the_policy_namespace(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}},
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})
        self.assertAllowed(self.client, self.web, 8080)
        self.assertDenied(self.other_client, self.web, 8080)  # same labels, other namespace

    def test_namespace_selector_alone_means_every_pod_there(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}},
                         "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]})
        self.assertAllowed(self.other_client, self.web, 8080)
        self.assertAllowed(self.other_web, self.web, 8080)
        self.assertDenied(self.client, self.web, 8080)  # its own namespace is team=a

    def test_empty_namespace_selector_is_every_pod_but_no_outside_address(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}},
                         "ingress": [{"from": [{"namespaceSelector": {}}]}]})
        self.assertAllowed(self.other_client, self.web, 8080)
        self.assertAllowed(self.client, self.web, 8080)
        self.assertFalse(self.c.allowed_from_ip("198.51.100.1", self.web, 8080))

    def test_both_selectors_in_one_peer_are_and(self):
        self.c.add_pod("other", "batch", {"role": "batch"})
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"role": "client"}}},
        ]}]})
        self.assertAllowed(self.other_client, self.web, 8080)
        self.assertDenied(self.c.pod("other", "batch"), self.web, 8080)  # right namespace, wrong pod
        self.assertDenied(self.client, self.web, 8080)  # right pod, wrong namespace

    def test_two_peers_are_or(self):
        self.c.add_pod("other", "batch", {"role": "batch"})
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "b"}}},
            {"podSelector": {"matchLabels": {"role": "client"}}},
        ]}]})
        self.assertAllowed(self.other_client, self.web, 8080)
        self.assertAllowed(self.c.pod("other", "batch"), self.web, 8080)  # by its namespace
        self.assertAllowed(self.client, self.web, 8080)  # by its labels, in app

    def test_every_namespace_has_its_name_label(self):
        self.c.add_namespace("bare")
        bare = self.c.add_pod("bare", "job")
        self.assertEqual(self.c.namespaces["app"]["kubernetes.io/metadata.name"], "app")
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "bare"}}}]}]})
        self.assertAllowed(bare, self.web, 8080)
        self.assertDenied(self.other_client, self.web, 8080)

    def test_ip_block_with_except(self):
        self.add("client-out", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]}]})
        self.assertTrue(self.c.allowed_to_ip(self.client, "10.0.0.5", 443))
        self.assertTrue(self.c.allowed_to_ip(self.client, "10.0.255.255", 443))
        self.assertFalse(self.c.allowed_to_ip(self.client, "10.0.1.5", 443))
        self.assertFalse(self.c.allowed_to_ip(self.client, "10.1.0.1", 443))
        self.assertFalse(self.c.allowed_to_ip(self.client, "::ffff:10.0.0.5", 443))  # another family
        self.assertDenied(self.client, self.web, 8080)  # pods never match an ipBlock here

    def test_ipv6_block(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}},
                         "ingress": [{"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]}]})
        self.assertTrue(self.c.allowed_from_ip("2001:db8:1::1", self.web, 8080))
        self.assertFalse(self.c.allowed_from_ip("2001:db9::1", self.web, 8080))
        self.assertFalse(self.c.allowed_from_ip("192.0.2.1", self.web, 8080))


class Selectors(Fixture):
    def setUp(self):
        super().setUp()
        self.tiers = {
            name: self.c.add_pod("app", name, labels, [])
            for name, labels in {
                "fe": {"tier": "frontend", "track": "stable"},
                "fe-canary": {"tier": "frontend", "track": "canary"},
                "be": {"tier": "backend"},
                "plain": {},
            }.items()
        }

    def allowed_sources(self, selector):
        c = Cluster()
        for pod in self.tiers.values():
            c.add_pod(pod.namespace, pod.name, pod.labels)
        web = c.add_pod("app", "web", {"role": "web"}, HTTP)
        c.add_policy(policy("web", {"podSelector": {"matchLabels": {"role": "web"}},
                                    "ingress": [{"from": [{"podSelector": selector}]}]}))
        return {name for name in self.tiers if c.allowed(c.pod("app", name), web, 8080)}

    def test_match_expressions(self):
        expr = lambda op, values=None: {"matchExpressions": [{"key": "tier", "operator": op, **({"values": values} if values else {})}]}
        self.assertEqual(self.allowed_sources(expr("In", ["frontend", "x"])), {"fe", "fe-canary"})
        self.assertEqual(self.allowed_sources(expr("NotIn", ["frontend"])), {"be", "plain"})  # absent key matches NotIn
        self.assertEqual(self.allowed_sources(expr("Exists")), {"fe", "fe-canary", "be"})
        self.assertEqual(self.allowed_sources(expr("DoesNotExist")), {"plain"})

    def test_match_labels_and_expressions_all_hold(self):
        selector = {"matchLabels": {"tier": "frontend"},
                    "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]}
        self.assertEqual(self.allowed_sources(selector), {"fe"})

    def test_empty_selector_matches_everything(self):
        self.assertEqual(self.allowed_sources({}), set(self.tiers))


class Ports(Fixture):
    def test_protocol_defaults_to_tcp(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"ports": [{"port": 53}]}]})
        self.assertAllowed(self.client, self.web, 53, "TCP")
        self.assertDenied(self.client, self.web, 53, "UDP")

    def test_port_without_number_is_every_port_of_its_protocol(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [{"ports": [{"protocol": "UDP"}]}]})
        self.assertAllowed(self.client, self.web, 5353, "UDP")
        self.assertDenied(self.client, self.web, 5353, "TCP")

    def test_end_port_range_is_inclusive(self):
        self.add("web", {"podSelector": {"matchLabels": {"role": "web"}},
                         "ingress": [{"ports": [{"port": 32000, "endPort": 32768}]}]})
        for port in (32000, 32100, 32768):
            self.assertAllowed(self.client, self.web, port)
        for port in (31999, 32769):
            self.assertDenied(self.client, self.web, port)

    def test_named_port_resolves_on_the_destination(self):
        c = Cluster()
        client = c.add_pod("app", "client", {"role": "client"})
        a = c.add_pod("app", "a", {"role": "web"}, [{"name": "http", "containerPort": 8080}])
        b = c.add_pod("app", "b", {"role": "web"}, [{"name": "http", "containerPort": 9090},
                                                   {"name": "admin", "containerPort": 8080}])
        udp = c.add_pod("app", "udp", {"role": "web"}, [{"name": "http", "containerPort": 8080, "protocol": "UDP"}])
        c.add_policy(policy("web", {"podSelector": {"matchLabels": {"role": "web"}},
                                    "ingress": [{"ports": [{"port": "http"}]}]}))
        self.assertTrue(c.allowed(client, a, 8080))
        self.assertTrue(c.allowed(client, a, "http"))
        self.assertTrue(c.allowed(client, b, 9090))
        self.assertFalse(c.allowed(client, b, 8080))  # 8080 is b's admin port
        self.assertFalse(c.allowed(client, udp, 8080, "UDP"))  # the rule's protocol is TCP
        self.assertFalse(c.allowed(client, udp, 8080, "TCP"))  # udp's http is a UDP port

    def test_named_port_in_egress_resolves_on_the_peer_and_never_on_an_address(self):
        c = Cluster()
        client = c.add_pod("app", "client", {"role": "client"})
        web = c.add_pod("app", "web", {"role": "web"}, HTTP)
        c.add_policy(policy("out", {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
                                    "egress": [{"ports": [{"port": "http"}]}]}))
        self.assertTrue(c.allowed(client, web, 8080))
        self.assertFalse(c.allowed(client, web, 8081))
        self.assertFalse(c.allowed_to_ip(client, "198.51.100.1", 8080))

    def test_dns_allowed_to_kube_dns_only(self):
        self.add("deny", DENY_ALL)
        self.add("dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]})
        dns = self.c.add_kube_dns()
        self.assertAllowed(self.client, dns, 53, "UDP")
        self.assertAllowed(self.client, dns, "dns-tcp", "TCP")
        self.assertDenied(self.client, dns, 9153)
        self.assertFalse(self.c.allowed_to_ip(self.client, "8.8.8.8", 53, "UDP"))
        self.c.add_pod("kube-system", "other-dns", {"k8s-app": "other"}, [ContainerPort(53, "UDP")])
        self.assertDenied(self.client, self.c.pod("kube-system", "other-dns"), 53, "UDP")


class Refusals(unittest.TestCase):
    """Policies the API server would refuse are errors, not silent guesses."""

    def refused(self, spec):
        with self.assertRaises(PolicyError) as caught:
            Cluster().add_policy(policy("bad", spec))
        self.assertIn("app/bad", str(caught.exception))

    def test_each_invalid_policy_is_refused(self):
        cases = {
            "empty peer": {"podSelector": {}, "ingress": [{"from": [{}]}]},
            "ipBlock with a selector": {"podSelector": {}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
            "except outside the cidr": {"podSelector": {}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]},
            "bad cidr": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}]},
            "unknown operator": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}},
            "In without values": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            "Exists with values": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}},
            "endPort with a named port": {"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
            "endPort below port": {"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
            "quoted port number": {"podSelector": {}, "ingress": [{"ports": [{"port": "8080"}]}]},
            "unknown protocol": {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": "ICMP"}]}]},
            "unknown policy type": {"podSelector": {}, "policyTypes": ["Inbound"]},
            "misspelt peer field": {"podSelector": {}, "ingress": [{"from": [{"podselector": {}}]}]},
            "misspelt rule field": {"podSelector": {}, "egress": [{"from": [{"podSelector": {}}]}]},
            "no podSelector": {"ingress": [{}]},
        }
        for name, spec in cases.items():
            with self.subTest(name):
                self.refused(spec)


class Loading(unittest.TestCase):
    OBJECTS = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"env": "prod"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"},
         "spec": {"template": {"metadata": {"labels": {"app": "api"}}, "spec": {
             "containers": [{"name": "api", "ports": [{"name": "http", "containerPort": 8080}]}],
             "initContainers": [{"name": "proxy", "restartPolicy": "Always", "ports": [{"name": "proxy", "containerPort": 15001}]},
                                {"name": "migrate", "ports": [{"name": "never", "containerPort": 1}]}]}}}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "api", "namespace": "shop"},
         "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report"},
         "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "report"}},
                                                        "spec": {"containers": [{"name": "r"}]}}}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
         "spec": {"selector": {"app": "api"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}},
        policy("api-in", {"podSelector": {"matchLabels": {"app": "api"}},
                          "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}],
                                       "ports": [{"port": "http"}]}]}, namespace="shop"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}},
    ]

    def test_load_reads_namespaces_workloads_services_and_policies(self):
        c = Cluster()
        c.load(self.OBJECTS, default_namespace="batch")
        api = c.pod("shop", "api")
        report = c.pod("batch", "report")  # default namespace applied
        self.assertEqual(api.labels, {"app": "api"})
        self.assertEqual({p.name for p in api.ports}, {"http", "proxy"})  # sidecar yes, init container no
        self.assertEqual(c.namespaces["shop"], {"env": "prod", "kubernetes.io/metadata.name": "shop"})
        self.assertEqual(c.service_backends("shop", "api", 80), [(api, 8080)])
        self.assertEqual(c.service_backends("shop", "api", "web"), [(api, 8080)])
        self.assertTrue(c.allowed(c.add_pod("shop", "web", {}), api, 8080))
        self.assertFalse(c.allowed(report, api, 8080))  # batch is not env=prod
        with self.assertRaises(KeyError):
            c.pod("shop", "nope")

    def test_a_pod_added_twice_is_an_error(self):
        c = Cluster()
        c.add_pod("a", "x")
        with self.assertRaises(ValueError):
            c.add_pod("a", "x")

    def test_unknown_port_name_is_an_error(self):
        c = Cluster()
        a = c.add_pod("a", "x", ports=HTTP)
        with self.assertRaises(ValueError):
            c.allowed(a, a, "grpc")


if __name__ == "__main__":
    unittest.main()
