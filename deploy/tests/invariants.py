"""What every rendered environment must hold, as checks that return the
problems they find (an empty list: all good). The tests run them on the
real overlays and on deliberately broken copies, so a check that cannot
fail would show.

The invariants are those of docs/operations/kubernetes.md: probes that
match the start sequence, requests and limits, a locked-down security
context, immutable image tags, the app.kubernetes.io labels, a PDB, HPA
floors equal to the environment's replicas, monitors Prometheus selects,
secrets as files and a grace period longer than the drain.
"""
import re

from render import by_name, of_kind

SHA_TAG = re.compile(r"^[^:@]+:[0-9a-f]{40}$")
REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/component")
PROMETHEUS_RELEASE = {"release": "kube-prometheus-stack"}
# The canary controller has no leader election: one replica everywhere.
SINGLE_REPLICA = {"canary"}
# Drain after SIGTERM (docs/operations/kubernetes.md#shutdown): shutdown
# grace + in-flight requests (http.request_timeout 10 s) + a module's final
# flush (at most 10 s); the grace period must also cover the preStop pause.
DRAIN_SECONDS = 20
MIN_STARTUP_SECONDS = 60


def duration_seconds(text):
    match = re.fullmatch(r"(\d+)(ms|s|m)", text)
    if not match:
        raise ValueError(f"not a duration: {text}")
    n, unit = int(match.group(1)), match.group(2)
    return {"ms": n / 1000, "s": n, "m": n * 60}[unit]


def workloads(objects):
    """(name, Deployment, Rollout or None) per module."""
    rollouts = {r["spec"]["workloadRef"]["name"]: r for r in of_kind(objects, "Rollout") if "workloadRef" in r["spec"]}
    return [(d["metadata"]["name"], d, rollouts.get(d["metadata"]["name"])) for d in of_kind(objects, "Deployment")]


def config_of(objects):
    maps = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("reliable-config")]
    return maps[0]["data"] if len(maps) == 1 else {}


def check_containers(objects):
    problems = []
    config = config_of(objects)
    grace = duration_seconds(config.get("RELIABLE_SHUTDOWN_GRACE", "0s"))
    for name, deployment, _ in workloads(objects):
        pod = deployment["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext", {})
        where = f"{name}"
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        if pod_sc.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            w = f"{where}/{c['name']}"
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        problems.append(f"{w}: no resources.{part}.{r}")
            image = c.get("image", "")
            if not SHA_TAG.match(image):
                problems.append(f"{w}: image {image!r} is not tagged with a commit SHA")
            if image.endswith(":latest"):
                problems.append(f"{w}: image uses latest")
            probes = {p: c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")}
            for p, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
                got = (probes[p] or {}).get("httpGet", {}).get("path")
                if got != want:
                    problems.append(f"{w}: {p} path is {got!r}, want {want}")
            startup = probes["startupProbe"] or {}
            budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
            if budget < MIN_STARTUP_SECONDS:
                problems.append(f"{w}: startup probe allows {budget} s, less than {MIN_STARTUP_SECONDS} s for migrations")
            ports = {p.get("name") for p in c.get("ports", [])}
            for p in probes.values():
                port = (p or {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports:
                    problems.append(f"{w}: probe port {port!r} is not a container port")
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{w}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{w}: allowPrivilegeEscalation is not false")
            if sc.get("privileged", False):
                problems.append(f"{w}: privileged")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{w}: capabilities.drop is not [ALL]")
            if sc.get("capabilities", {}).get("add"):
                problems.append(f"{w}: adds capabilities")
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                problems.append(f"{w}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser", 1)) == 0:
                problems.append(f"{w}: runs as UID 0")
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
            if seccomp != "RuntimeDefault":
                problems.append(f"{w}: seccompProfile is {seccomp!r}")
            pause = (c.get("lifecycle", {}).get("preStop") or {}).get("sleep", {}).get("seconds")
            if not pause:
                problems.append(f"{w}: no preStop sleep")
                pause = 0
            tgps = pod.get("terminationGracePeriodSeconds", 30)
            if tgps <= pause + grace + DRAIN_SECONDS:
                problems.append(f"{w}: terminationGracePeriodSeconds {tgps} does not cover preStop {pause} s"
                                f" + shutdown grace {grace} s + drain {DRAIN_SECONDS} s")
        for v in pod.get("volumes", []):
            if "hostPath" in v:
                problems.append(f"{where}: hostPath volume {v['name']}")
    return problems


def check_labels(objects):
    problems = []
    for o in objects:
        if o["kind"] in ("Deployment", "Rollout", "Service", "ServiceAccount", "PodDisruptionBudget",
                         "HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy"):
            labels = o["metadata"].get("labels", {})
            need = REQUIRED_LABELS if o["kind"] != "NetworkPolicy" or "app.kubernetes.io/name" in labels \
                else ("app.kubernetes.io/part-of",)
            for label in need:
                if label not in labels:
                    problems.append(f"{o['kind']} {o['metadata']['name']}: no label {label}")
    for name, deployment, _ in workloads(objects):
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        for label in REQUIRED_LABELS:
            if label not in labels:
                problems.append(f"{name}: pod template has no label {label}")
    return problems


def selects(selector, labels):
    """matchLabels/matchExpressions against labels (In, NotIn, Exists, DoesNotExist)."""
    for k, v in (selector or {}).get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for e in (selector or {}).get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def check_availability(objects, replicas):
    """Replicas per environment, HPA floors, PDBs, and the service account."""
    problems = []
    pdbs = of_kind(objects, "PodDisruptionBudget")
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    accounts = {a["metadata"]["name"]: a for a in of_kind(objects, "ServiceAccount")}
    for name, deployment, rollout in workloads(objects):
        want = 1 if name in SINGLE_REPLICA else replicas
        owner = rollout or deployment
        got = owner["spec"].get("replicas", 1)
        if got != want:
            problems.append(f"{name}: {owner['kind']} has {got} replicas, want {want}")
        if rollout and deployment["spec"].get("replicas") != 0:
            problems.append(f"{name}: the Deployment behind a Rollout must stay at 0 replicas")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        if not any(selects(p["spec"].get("selector"), pod_labels) for p in pdbs):
            problems.append(f"{name}: no PodDisruptionBudget selects its pods")
        for p in pdbs:
            if selects(p["spec"].get("selector"), pod_labels) and p["spec"].get("minAvailable") == want:
                problems.append(f"{name}: PDB minAvailable equals the replicas: no node could drain")
        scaler = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == name]
        if name not in SINGLE_REPLICA:
            if len(scaler) != 1:
                problems.append(f"{name}: {len(scaler)} HPAs, want 1")
            else:
                ref = scaler[0]["spec"]["scaleTargetRef"]
                if ref["kind"] != owner["kind"]:
                    problems.append(f"{name}: HPA scales a {ref['kind']}, but the {owner['kind']} owns the replicas")
                if scaler[0]["spec"].get("minReplicas") != want:
                    problems.append(f"{name}: HPA minReplicas {scaler[0]['spec'].get('minReplicas')}, want {want}")
        elif scaler:
            problems.append(f"{name}: a single-replica module must not be autoscaled")
        account = accounts.get(deployment["spec"]["template"]["spec"].get("serviceAccountName", "default"))
        if account is None:
            problems.append(f"{name}: its ServiceAccount is not in the render")
        elif account.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: ServiceAccount mounts a token")
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        for o in of_kind(objects, kind):
            problems.append(f"{kind} {o['metadata']['name']}: the applications need no API rights")
    return problems


def check_monitoring(objects):
    """Each module's ServiceMonitor is picked up by kube-prometheus-stack and
    finds its Service, whose port finds the pods'."""
    problems = []
    services = of_kind(objects, "Service")
    for name, deployment, _ in workloads(objects):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        pod_ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        monitor = by_name(objects, "ServiceMonitor", name)
        if monitor is None:
            problems.append(f"{name}: no ServiceMonitor")
            continue
        for k, v in PROMETHEUS_RELEASE.items():
            if monitor["metadata"].get("labels", {}).get(k) != v:
                problems.append(f"{name}: ServiceMonitor lacks {k}={v}, so Prometheus ignores it")
        matched = [s for s in services if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        matched = [s for s in matched if selects({"matchLabels": s["spec"].get("selector", {})}, pod_labels)]
        if not matched:
            problems.append(f"{name}: the ServiceMonitor's selector matches no Service of its pods")
        for e in monitor["spec"]["endpoints"]:
            if not any(p.get("name") == e.get("port") for s in matched for p in s["spec"]["ports"]):
                problems.append(f"{name}: ServiceMonitor port {e.get('port')!r} is not a port of its Service")
            if e.get("honorLabels") is not True:
                problems.append(f"{name}: ServiceMonitor without honorLabels: the metrics' `service` label"
                                " would become `exported_service` and the SLO rules would see nothing")
            if e.get("path", "/metrics") != "/metrics":
                problems.append(f"{name}: metrics path {e.get('path')}")
        for s in matched:
            for p in s["spec"]["ports"]:
                if isinstance(p.get("targetPort"), str) and p["targetPort"] not in pod_ports:
                    problems.append(f"{name}: Service port {p['name']} targets {p['targetPort']!r}, no such pod port")
    return problems


def check_secrets_and_config(objects):
    """Settings come from ConfigMaps in the render; credentials are files
    from Secrets the ExternalSecrets create, mounted where `*_FILE` points."""
    problems = []
    maps = {c["metadata"]["name"] for c in of_kind(objects, "ConfigMap")}
    secrets = {e["spec"]["target"]["name"] for e in of_kind(objects, "ExternalSecret")}
    certificates = {c["spec"]["secretName"] for c in of_kind(objects, "Certificate")}
    for name, deployment, _ in workloads(objects):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in maps:
                problems.append(f"{name}: volume {v['name']} names ConfigMap {v['configMap']['name']}, not in the render")
            if "secret" in v and v["secret"]["secretName"] not in certificates:
                problems.append(f"{name}: mount secrets through the projected volume")
            for source in v.get("projected", {}).get("sources", []):
                if "secret" in source and source["secret"]["name"] not in secrets:
                    problems.append(f"{name}: Secret {source['secret']['name']} has no ExternalSecret")
        for c in pod["containers"]:
            for ref in c.get("envFrom", []):
                if "secretRef" in ref:
                    problems.append(f"{name}: secrets as environment (envFrom secretRef); use files")
                if "configMapRef" in ref and ref["configMapRef"]["name"] not in maps:
                    problems.append(f"{name}: envFrom names ConfigMap {ref['configMapRef']['name']}, not in the render")
            mounted = {}
            for m in c.get("volumeMounts", []):
                v = volumes.get(m["name"])
                if v is None:
                    problems.append(f"{name}: mount of unknown volume {m['name']}")
                    continue
                for source in v.get("projected", {}).get("sources", []):
                    for item in source.get("secret", {}).get("items", []):
                        mounted[f"{m['mountPath']}/{item['path']}"] = source["secret"]["name"]
                if v.get("secret", {}).get("secretName") in certificates:
                    for key in CERTIFICATE_KEYS:
                        mounted[f"{m['mountPath']}/{key}"] = v["secret"]["secretName"]
            for e in c.get("env", []):
                if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]:
                    problems.append(f"{name}: {e['name']} from a Secret as environment; use a *_FILE file")
                if e["name"].endswith("_FILE") and e.get("value") not in mounted:
                    problems.append(f"{name}: {e['name']} points at {e.get('value')}, which no secret mount provides")
    return problems


# What cert-manager writes into a Certificate's Secret.
CERTIFICATE_KEYS = ("tls.crt", "tls.key", "ca.crt")
TLS_FILES = {"RELIABLE_TLS_CERT_FILE": "tls.crt", "RELIABLE_TLS_KEY_FILE": "tls.key", "RELIABLE_TLS_CA_FILE": "ca.crt"}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def tls_modules(objects):
    """The modules whose pods serve HTTPS (RELIABLE_TLS_CERT_FILE set)."""
    names = set()
    for name, deployment, _ in workloads(objects):
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            if any(e["name"] == "RELIABLE_TLS_CERT_FILE" for e in c.get("env", [])):
                names.add(name)
    return names


def gateway_pools(objects):
    """{pool name: [endpoint, ...]} from the gateway's config file."""
    import tomllib
    maps = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("gateway-config")]
    if len(maps) != 1:
        return {}
    pools = tomllib.loads(maps[0]["data"]["gateway.toml"]).get("gateway", {}).get("pools", {})
    return {n: p.get("endpoints", []) for n, p in pools.items()}


def check_mtls(objects):
    """A module with an identity (deploy/components/mtls) holds it from its
    own cert-manager Certificate (spiffe://reliable/<module>, from the
    platform CA), mounted as a directory; what talks to it (probes,
    Prometheus, the gateway's pools) speaks HTTPS, and what talks to a
    module without one does not. No mount hides inside another."""
    problems = []
    tls = tls_modules(objects)
    certificates = {c["spec"]["secretName"]: c for c in of_kind(objects, "Certificate")}
    for name, deployment, _ in workloads(objects):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            paths = [m["mountPath"].rstrip("/") for m in c.get("volumeMounts", [])]
            for a in paths:
                for b in paths:
                    if a != b and b.startswith(a + "/"):
                        problems.append(f"{name}: mount {b} is inside mount {a}")
            want = "HTTPS" if name in tls else "HTTP"
            for probe in PROBES:
                got = c.get(probe, {}).get("httpGet", {}).get("scheme", "HTTP")
                if probe in c and got != want:
                    problems.append(f"{name}: {probe} speaks {got}, the pod serves {want}")
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if name not in tls:
                continue
            directories = set()
            for var, key in TLS_FILES.items():
                path = env.get(var) or ""
                directory, _, file = path.rpartition("/")
                if file != key:
                    problems.append(f"{name}: {var} is {path!r}, want <mount>/{key}")
                directories.add(directory)
            if env.get("RELIABLE_TLS_CLIENT_AUTH") == "required":
                problems.append(f"{name}: client_auth required refuses the kubelet's probes")
            mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"].rstrip("/") in directories]
            if len(directories) != 1 or len(mounts) != 1:
                problems.append(f"{name}: the TLS files are not one mounted directory")
                continue
            secret = volumes.get(mounts[0]["name"], {}).get("secret", {}).get("secretName")
            cert = certificates.get(secret)
            if cert is None:
                problems.append(f"{name}: its TLS volume is not a Certificate's Secret")
                continue
            if cert["spec"].get("uris") != [f"spiffe://reliable/{name}"]:
                problems.append(f"{name}: Certificate {cert['metadata']['name']} is not spiffe://reliable/{name}")
            if name not in cert["spec"].get("dnsNames", []):
                problems.append(f"{name}: Certificate lacks the DNS name {name} the gateway dials")
            issuer = cert["spec"].get("issuerRef", {})
            if (issuer.get("kind"), issuer.get("name")) != ("ClusterIssuer", "reliable-ca"):
                problems.append(f"{name}: Certificate not issued by the ClusterIssuer reliable-ca")
            if not {"server auth", "client auth"} <= set(cert["spec"].get("usages", [])):
                problems.append(f"{name}: Certificate not for both server and client auth")
    for name in {n for n, _, _ in workloads(objects)}:
        monitor = by_name(objects, "ServiceMonitor", name)
        for endpoint in (monitor or {}).get("spec", {}).get("endpoints", []):
            scheme = endpoint.get("scheme", "http")
            if name in tls and (scheme != "https" or endpoint.get("tlsConfig", {}).get("serverName") != name):
                problems.append(f"{name}: Prometheus scrapes it without HTTPS and its server name")
            if name not in tls and scheme != "http":
                problems.append(f"{name}: Prometheus scrapes it with {scheme}, it serves http")
    for pool, endpoints in gateway_pools(objects).items():
        for endpoint in endpoints:
            host = endpoint.split("://", 1)[-1].split(":", 1)[0].split("/", 1)[0]
            scheme = endpoint.split("://", 1)[0]
            want = "https" if host in tls else "http"
            if host in {n for n, _, _ in workloads(objects)} and scheme != want:
                problems.append(f"gateway: pool {pool} reaches {host} with {scheme}, it serves {want}")
    return problems


def check_environment(objects, env, namespace):
    problems = []
    namespaces = of_kind(objects, "Namespace")
    if [n["metadata"]["name"] for n in namespaces] != [namespace]:
        problems.append(f"the render must create exactly its namespace {namespace}")
    for n in namespaces:
        if n["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            problems.append(f"namespace {namespace} does not enforce Pod Security restricted")
    for o in objects:
        ns = o["metadata"].get("namespace")
        if o["kind"] != "Namespace" and ns != namespace:
            problems.append(f"{o['kind']} {o['metadata']['name']} is in namespace {ns}, not {namespace}")
    for e in of_kind(objects, "ExternalSecret"):
        for d in e["spec"].get("data", []):
            if d["remoteRef"]["key"] != f"reliable/{env}":
                problems.append(f"ExternalSecret {e['metadata']['name']} reads {d['remoteRef']['key']}, not reliable/{env}")
    for t in of_kind(objects, "AnalysisTemplate"):
        url = t["spec"]["metrics"][0]["provider"]["web"]["url"]
        if not url.startswith(f"http://canary.{namespace}.svc:8080/"):
            problems.append(f"AnalysisTemplate calls {url.split('/canary')[0]}, not this namespace's judge")
    spread = [name for name, d, _ in workloads(objects) if d["spec"]["template"]["spec"].get("topologySpreadConstraints")]
    if env == "prod" and len(spread) != len(workloads(objects)):
        problems.append("prod: every module needs topology spread constraints")
    return problems


def check_rollouts(objects):
    problems = []
    for r in of_kind(objects, "Rollout"):
        canary = r["spec"]["strategy"]["canary"]
        weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
        if weights != [10, 30, 50, 80]:
            problems.append(f"Rollout {r['metadata']['name']}: steps {weights}, want 10/30/50/80")
        templates = [t["templateName"] for t in canary.get("analysis", {}).get("templates", [])]
        for t in templates:
            if by_name(objects, "AnalysisTemplate", t) is None:
                problems.append(f"Rollout {r['metadata']['name']}: AnalysisTemplate {t} is not in the render")
        if not templates:
            problems.append(f"Rollout {r['metadata']['name']}: no analysis")
    return problems


def all_checks(objects, env, namespace, replicas):
    return (check_containers(objects) + check_labels(objects) + check_availability(objects, replicas)
            + check_monitoring(objects) + check_secrets_and_config(objects)
            + check_environment(objects, env, namespace) + check_rollouts(objects) + check_mtls(objects))
