"""NetworkPolicy evaluation with Kubernetes' semantics, without a cluster.

deploy/ enforces its call graph with NetworkPolicies, and a policy that
silently allows everything, or blocks DNS, renders and validates fine. So
the tests load the rendered manifests into a `Cluster` and ask it, pod by
pod and port by port, what a conformant network plugin would let through.

    cluster = Cluster()
    cluster.load(objects)              # Namespaces, NetworkPolicies, workloads, Services
    cluster.add_kube_dns()             # CoreDNS as clusters deploy it
    gateway = cluster.pod("reliable", "gateway")
    cluster.allowed(gateway, cluster.pod("reliable", "shortener"), 8080)
    cluster.allowed(gateway, cluster.pod("kube-system", "coredns"), 53, "UDP")
    cluster.allowed_to_ip(notifier, "203.0.113.7", 443)
    print(cluster.explain(gateway, shortener, 8080))   # why, for a failing assertion

The semantics (networking.k8s.io/v1 API reference, "Network Policies" in the
Kubernetes docs):

- A policy selects the pods of its own namespace matching `podSelector`;
  an empty selector selects every pod there.
- `policyTypes` defaults, when absent or empty, to Ingress, plus Egress
  when the policy has at least one egress rule (the API server's
  defaulting; `egress: []` does not count).
- A pod is isolated for a direction only when some policy selecting it has
  that type; a pod no such policy selects allows everything that way.
- An isolated pod allows a connection when any rule, of any policy
  selecting it with that type, matches it: policies and rules are OR-ed,
  and never deny.
- A rule matches when one of its peers matches and one of its ports
  matches. A missing or empty `from`/`to` matches every peer (outside the
  cluster too); missing or empty `ports` matches every port. So `{}` allows
  everything.
- Peers: `podSelector` alone, pods of the policy's namespace;
  `namespaceSelector` alone, every pod of the matching namespaces; both in
  one peer, pods matching both (AND; two peers are OR); `ipBlock`, the
  addresses in `cidr` outside every `except`. Every namespace carries the
  label kubernetes.io/metadata.name=<name>.
- Selectors: `matchLabels` and `matchExpressions` (In, NotIn, Exists,
  DoesNotExist) all must hold; an empty selector matches everything.
- Ports: `protocol` defaults to TCP; `port` is a number, a range with
  `endPort`, or a name resolved against the destination pod's container
  ports (name, number and protocol must all agree); a rule port without
  `port` matches every port of its protocol.
- A connection between two pods needs the source's egress AND the
  destination's ingress to allow it. Ports are the destination pod's
  (a Service's targetPort): policies see traffic after the Service's DNAT;
  `service_backends()` resolves a Service port to them.

Outside the model: `ipBlock` peers never match pods (whether they match pod
IPs is left to the network plugin by the API), a pod's traffic to itself
and to or from its node (always allowed), and host-network pods. A policy
the API server would refuse (a peer with nothing in it, `ipBlock` beside a
selector, `endPort` with a named port, an unknown operator...) raises
`PolicyError`, naming the policy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Union

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
INGRESS = "Ingress"
EGRESS = "Egress"
# Kinds whose pod template makes pods, and where the template is.
WORKLOAD_TEMPLATES = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "Rollout": ("spec", "template"),
}


class PolicyError(ValueError):
    """A NetworkPolicy (or selector) the API server would refuse, or this model cannot read."""


@dataclass(frozen=True)
class ContainerPort:
    number: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(eq=False)
class Pod:
    """One pod (for a workload: any of its replicas; they are alike to policies)."""

    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[ContainerPort, ...] = ()

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


# --- selectors -------------------------------------------------------------


def selector_matches(selector: dict | None, labels: dict[str, str], where: str = "selector") -> bool:
    """A LabelSelector against a label set; an empty selector matches everything."""
    if selector is None:
        return True
    if not isinstance(selector, dict):
        raise PolicyError(f"{where}: not a label selector: {selector!r}")
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise PolicyError(f"{where}: unknown selector fields {sorted(unknown)}")
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        if not expression_matches(expr, labels, where):
            return False
    return True


def expression_matches(expr: dict, labels: dict[str, str], where: str) -> bool:
    key = expr.get("key")
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if not key:
        raise PolicyError(f"{where}: matchExpressions entry without a key: {expr!r}")
    if op in ("In", "NotIn"):
        if not values:
            raise PolicyError(f"{where}: operator {op} needs values ({key})")
        present = key in labels and labels[key] in values
        return present if op == "In" else not present
    if op in ("Exists", "DoesNotExist"):
        if values:
            raise PolicyError(f"{where}: operator {op} takes no values ({key})")
        return (key in labels) == (op == "Exists")
    raise PolicyError(f"{where}: unknown operator {op!r} ({key})")


# --- policies --------------------------------------------------------------


@dataclass(frozen=True)
class IPBlock:
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    excepts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip in e for e in self.excepts)


@dataclass(frozen=True)
class Peer:
    pod_selector: dict | None
    namespace_selector: dict | None
    ip_block: IPBlock | None


@dataclass(frozen=True)
class RulePort:
    protocol: str
    port: int | str | None
    end_port: int | None


@dataclass(frozen=True)
class Rule:
    peers: tuple[Peer, ...] | None  # None: every peer
    ports: tuple[RulePort, ...] | None  # None: every port


@dataclass
class Policy:
    namespace: str
    name: str
    pod_selector: dict
    types: frozenset[str]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, pod: Pod) -> bool:
        return pod.namespace == self.namespace and selector_matches(self.pod_selector, pod.labels)


def parse_policy(obj: dict, default_namespace: str) -> Policy:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or default_namespace
    name = meta.get("name") or "?"
    where = f"NetworkPolicy {namespace}/{name}"
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise PolicyError(f"{where}: no spec")
    if "podSelector" not in spec:
        raise PolicyError(f"{where}: spec.podSelector is required (use {{}} for every pod)")
    pod_selector = spec.get("podSelector") or {}
    selector_matches(pod_selector, {}, f"{where} spec.podSelector")  # validates it
    ingress_rules = spec.get("ingress") or []
    egress_rules = spec.get("egress") or []
    types = spec.get("policyTypes") or []
    if not types:
        # The API server's defaulting (pkg/apis/networking/v1/defaults.go).
        types = [INGRESS] + ([EGRESS] if len(egress_rules) > 0 else [])
    for t in types:
        if t not in (INGRESS, EGRESS):
            raise PolicyError(f"{where}: unknown policyType {t!r}")
    return Policy(
        namespace=namespace,
        name=name,
        pod_selector=pod_selector,
        types=frozenset(types),
        ingress=tuple(parse_rule(r, "from", f"{where} ingress[{i}]") for i, r in enumerate(ingress_rules)),
        egress=tuple(parse_rule(r, "to", f"{where} egress[{i}]") for i, r in enumerate(egress_rules)),
    )


def parse_rule(rule: dict, peers_field: str, where: str) -> Rule:
    if rule is None:
        rule = {}
    if not isinstance(rule, dict):
        raise PolicyError(f"{where}: not a rule: {rule!r}")
    unknown = set(rule) - {peers_field, "ports"}
    if unknown:
        raise PolicyError(f"{where}: unknown fields {sorted(unknown)}")
    peers = rule.get(peers_field) or []
    ports = rule.get("ports") or []
    return Rule(
        peers=tuple(parse_peer(p, f"{where}.{peers_field}[{i}]") for i, p in enumerate(peers)) or None,
        ports=tuple(parse_port(p, f"{where}.ports[{i}]") for i, p in enumerate(ports)) or None,
    )


def parse_peer(peer: dict, where: str) -> Peer:
    if not isinstance(peer, dict):
        raise PolicyError(f"{where}: not a peer: {peer!r}")
    unknown = set(peer) - {"podSelector", "namespaceSelector", "ipBlock"}
    if unknown:
        raise PolicyError(f"{where}: unknown fields {sorted(unknown)}")
    pod_selector = peer.get("podSelector")
    namespace_selector = peer.get("namespaceSelector")
    block = peer.get("ipBlock")
    if pod_selector is None and namespace_selector is None and block is None:
        raise PolicyError(f"{where}: a peer needs podSelector, namespaceSelector or ipBlock")
    if block is not None and (pod_selector is not None or namespace_selector is not None):
        raise PolicyError(f"{where}: ipBlock cannot be combined with a selector in one peer")
    for selector, name in ((pod_selector, "podSelector"), (namespace_selector, "namespaceSelector")):
        if selector is not None:
            selector_matches(selector, {}, f"{where}.{name}")  # validates it
    return Peer(pod_selector, namespace_selector, parse_ip_block(block, where) if block is not None else None)


def parse_ip_block(block: dict, where: str) -> IPBlock:
    try:
        cidr = ipaddress.ip_network(str(block.get("cidr")), strict=False)
        excepts = tuple(ipaddress.ip_network(str(e), strict=False) for e in block.get("except") or [])
    except ValueError as e:
        raise PolicyError(f"{where}.ipBlock: {e}") from None
    for e in excepts:
        if e.version != cidr.version or not e.subnet_of(cidr) or e == cidr:
            raise PolicyError(f"{where}.ipBlock: except {e} is not a strict subset of {cidr}")
    return IPBlock(cidr, excepts)


def parse_port(port: dict, where: str) -> RulePort:
    if not isinstance(port, dict):
        raise PolicyError(f"{where}: not a port: {port!r}")
    protocol = port.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        raise PolicyError(f"{where}: unknown protocol {protocol!r}")
    number = port.get("port")
    end = port.get("endPort")
    if isinstance(number, bool) or not (number is None or isinstance(number, (int, str))):
        raise PolicyError(f"{where}: port {number!r} is neither a number nor a name")
    if isinstance(number, str) and (number.isdigit() or not number):
        # YAML `port: "8080"` is a string, so a *named* port nothing is called.
        raise PolicyError(f"{where}: port {number!r} is a string; a port number is written unquoted")
    if isinstance(number, int) and not 1 <= number <= 65535:
        raise PolicyError(f"{where}: port {number} out of range")
    if end is not None:
        if not isinstance(number, int):
            raise PolicyError(f"{where}: endPort needs a numeric port")
        if not isinstance(end, int) or end < number or end > 65535:
            raise PolicyError(f"{where}: endPort {end!r} must be a number from port ({number}) to 65535")
    return RulePort(protocol, number, end)


# --- the cluster -----------------------------------------------------------

Endpoint = Union[Pod, ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass
class Side:
    """One direction's verdict: whether it is isolated and which policies allow."""

    direction: str
    isolated_by: list[Policy]
    allowed_by: list[Policy]

    @property
    def allowed(self) -> bool:
        return not self.isolated_by or bool(self.allowed_by)

    def __str__(self) -> str:
        if not self.isolated_by:
            return f"{self.direction}: not isolated (no policy of that type selects it): allowed"
        names = ", ".join(map(str, self.isolated_by))
        if self.allowed_by:
            return f"{self.direction}: isolated by [{names}]; allowed by [{', '.join(map(str, self.allowed_by))}]"
        return f"{self.direction}: isolated by [{names}]; no rule allows it: denied"


@dataclass
class Verdict:
    egress: Side | None  # None: the source is outside the cluster
    ingress: Side | None  # None: the destination is outside the cluster

    @property
    def allowed(self) -> bool:
        return all(side.allowed for side in (self.egress, self.ingress) if side is not None)

    def __str__(self) -> str:
        parts = [str(s) for s in (self.egress, self.ingress) if s is not None]
        return ("allowed" if self.allowed else "DENIED") + " — " + "; ".join(parts)


class Cluster:
    """Namespaces, pods and NetworkPolicies; answers what may connect to what."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[str, str]] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.policies: list[Policy] = []
        self.services: dict[tuple[str, str], dict] = {}

    # building

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """A namespace; its kubernetes.io/metadata.name label is added as the API server does."""
        merged = {**self.namespaces.get(name, {}), **{k: str(v) for k, v in (labels or {}).items()}}
        merged[NAMESPACE_NAME_LABEL] = name
        self.namespaces[name] = merged

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str] | None = None,
        ports: Iterable[ContainerPort | dict] = (),
    ) -> Pod:
        """A pod; `ports` are ContainerPorts or Kubernetes containerPort dicts."""
        key = (namespace, name)
        if key in self.pods:
            raise ValueError(f"pod {namespace}/{name} added twice")
        if namespace not in self.namespaces:
            self.add_namespace(namespace)
        pod = Pod(namespace, name, {k: str(v) for k, v in (labels or {}).items()}, tuple(map(container_port, ports)))
        self.pods[key] = pod
        return pod

    def add_policy(self, obj: dict, default_namespace: str = "default") -> Policy:
        policy = parse_policy(obj, default_namespace)
        if policy.namespace not in self.namespaces:
            self.add_namespace(policy.namespace)
        self.policies.append(policy)
        return policy

    def add_kube_dns(self) -> Pod:
        """CoreDNS as kubeadm and most distributions run it: kube-system, k8s-app=kube-dns."""
        return self.add_pod(
            "kube-system",
            "coredns",
            {"k8s-app": "kube-dns"},
            [ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp"), ContainerPort(9153, "TCP", "metrics")],
        )

    def load(self, objects: Iterable[dict], default_namespace: str = "default") -> None:
        """Namespaces, NetworkPolicies, Services and one pod per workload (named after it).

        A Rollout that points at a Deployment (`workloadRef`) makes no pod
        of its own here: its pods are the Deployment's template's."""
        objects = [o for o in objects if isinstance(o, dict)]
        for obj in objects:
            if obj.get("kind") == "Namespace":
                meta = obj.get("metadata") or {}
                self.add_namespace(meta["name"], meta.get("labels"))
        for obj in objects:
            kind = obj.get("kind")
            meta = obj.get("metadata") or {}
            namespace = meta.get("namespace") or default_namespace
            if kind == "NetworkPolicy":
                self.add_policy(obj, default_namespace)
            elif kind == "Service":
                self.services[(namespace, meta["name"])] = obj
                if namespace not in self.namespaces:
                    self.add_namespace(namespace)
            elif kind in WORKLOAD_TEMPLATES:
                if kind == "Rollout" and (obj.get("spec") or {}).get("workloadRef"):
                    continue
                template = obj
                for step in WORKLOAD_TEMPLATES[kind]:
                    template = (template or {}).get(step)
                if not isinstance(template, dict):
                    raise ValueError(f"{kind} {namespace}/{meta.get('name')}: no pod template")
                spec = template.get("spec") or {}
                containers = list(spec.get("containers") or [])
                # Native sidecars (restartable init containers) serve too.
                containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
                ports = [p for c in containers for p in c.get("ports") or []]
                labels = (template.get("metadata") or {}).get("labels") or {}
                self.add_pod(namespace, meta["name"], labels, ports)

    # questions

    def pod(self, namespace: str, name: str) -> Pod:
        try:
            return self.pods[(namespace, name)]
        except KeyError:
            known = ", ".join(f"{ns}/{n}" for ns, n in sorted(self.pods))
            raise KeyError(f"no pod {namespace}/{name} (pods: {known})") from None

    def policies_selecting(self, pod: Pod, direction: str) -> list[Policy]:
        return [p for p in self.policies if direction in p.types and p.selects(pod)]

    def isolated(self, pod: Pod, direction: str) -> bool:
        return bool(self.policies_selecting(pod, direction))

    def explain(self, src: Endpoint | str, dst: Endpoint | str, port: int | str, protocol: str = "TCP") -> Verdict:
        """The verdict with its reasons; `src`/`dst` are Pods or IP addresses (one must be a Pod)."""
        src = as_endpoint(src)
        dst = as_endpoint(dst)
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}")
        if not isinstance(src, Pod) and not isinstance(dst, Pod):
            raise ValueError("at least one end must be a pod")
        number = self.port_number(dst, port, protocol)
        egress = ingress = None
        if isinstance(src, Pod):
            isolating = self.policies_selecting(src, EGRESS)
            allowing = [p for p in isolating if any(self.rule_matches(r, p, dst, number, protocol, dst) for r in p.egress)]
            egress = Side(EGRESS, isolating, allowing)
        if isinstance(dst, Pod):
            isolating = self.policies_selecting(dst, INGRESS)
            allowing = [p for p in isolating if any(self.rule_matches(r, p, src, number, protocol, dst) for r in p.ingress)]
            ingress = Side(INGRESS, isolating, allowing)
        return Verdict(egress, ingress)

    def allowed(self, src: Pod, dst: Pod, port: int | str, protocol: str = "TCP") -> bool:
        """May `src` open a connection to `dst`'s `port` (a number, or one of dst's port names)?"""
        return self.explain(src, dst, port, protocol).allowed

    def allowed_to_ip(self, src: Pod, ip: str, port: int, protocol: str = "TCP") -> bool:
        """May `src` reach an address outside the cluster (only src's egress applies)?"""
        return self.explain(src, ip, port, protocol).allowed

    def allowed_from_ip(self, ip: str, dst: Pod, port: int | str, protocol: str = "TCP") -> bool:
        """May an address outside the cluster reach `dst` (only dst's ingress applies)?"""
        return self.explain(ip, dst, port, protocol).allowed

    def service_backends(self, namespace: str, service: str, port: int | str) -> list[tuple[Pod, int]]:
        """The pods and pod ports a Service port leads to (its selector, its targetPort)."""
        try:
            svc = self.services[(namespace, service)]
        except KeyError:
            raise KeyError(f"no Service {namespace}/{service}") from None
        spec = svc.get("spec") or {}
        wanted = [p for p in spec.get("ports") or [] if port in (p.get("port"), p.get("name"))]
        if not wanted:
            raise KeyError(f"Service {namespace}/{service} has no port {port!r}")
        sp = wanted[0]
        protocol = sp.get("protocol") or "TCP"
        target = sp.get("targetPort", sp.get("port"))
        selector = spec.get("selector")
        if not selector:
            return []  # no selector: endpoints are managed by hand
        backends = []
        for pod in self.pods.values():
            if pod.namespace != namespace or any(pod.labels.get(k) != str(v) for k, v in selector.items()):
                continue
            if isinstance(target, int):
                backends.append((pod, target))
            else:
                named = [cp.number for cp in pod.ports if cp.name == target and cp.protocol == protocol]
                if named:
                    backends.append((pod, named[0]))
        return backends

    # mechanics

    def port_number(self, dst: Endpoint, port: int | str, protocol: str) -> int:
        if isinstance(port, int) and not isinstance(port, bool):
            return port
        if isinstance(dst, Pod):
            for cp in dst.ports:
                if cp.name == port and cp.protocol == protocol:
                    return cp.number
            raise ValueError(f"{dst} has no {protocol} port named {port!r}")
        raise ValueError(f"a port name ({port!r}) needs a pod to resolve it")

    def rule_matches(self, rule: Rule, policy: Policy, peer: Endpoint, number: int, protocol: str, dst: Endpoint) -> bool:
        if rule.peers is not None and not any(self.peer_matches(p, policy, peer) for p in rule.peers):
            return False
        if rule.ports is None:
            return True
        return any(port_matches(rp, number, protocol, dst) for rp in rule.ports)

    def peer_matches(self, peer: Peer, policy: Policy, endpoint: Endpoint) -> bool:
        if not isinstance(endpoint, Pod):
            return peer.ip_block is not None and peer.ip_block.contains(endpoint)
        if peer.ip_block is not None:
            return False  # see the module doc: ipBlock peers never match pods here
        if peer.namespace_selector is None:
            in_namespace = endpoint.namespace == policy.namespace
        else:
            in_namespace = selector_matches(peer.namespace_selector, self.namespaces.get(endpoint.namespace, {}))
        return in_namespace and selector_matches(peer.pod_selector, endpoint.labels)


def port_matches(rule_port: RulePort, number: int, protocol: str, dst: Endpoint) -> bool:
    if rule_port.protocol != protocol:
        return False
    if rule_port.port is None:
        return True
    if isinstance(rule_port.port, int):
        if rule_port.end_port is not None:
            return rule_port.port <= number <= rule_port.end_port
        return number == rule_port.port
    if not isinstance(dst, Pod):
        return False  # a named port can only be resolved on a pod
    return any(cp.name == rule_port.port and cp.protocol == protocol and cp.number == number for cp in dst.ports)


def container_port(port: ContainerPort | dict) -> ContainerPort:
    if isinstance(port, ContainerPort):
        return port
    if isinstance(port, dict) and isinstance(port.get("containerPort"), int):
        return ContainerPort(port["containerPort"], port.get("protocol") or "TCP", port.get("name"))
    raise ValueError(f"not a container port: {port!r}")


def as_endpoint(value: Endpoint | str) -> Endpoint:
    if isinstance(value, (Pod, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"not a pod or an IP address: {value!r}") from None
