"""The part of Kyverno's policy language deploy/cluster/kyverno uses,
evaluated without a cluster, so the tests can show each ClusterPolicy
admits the platform's pods and refuses the pods it exists to refuse.

Kyverno's CLI (`kyverno apply`) is a Go binary outside the registries this
project installs from; this module follows Kyverno's documented
semantics for the constructs the policies use, and refuses (raises
`Unsupported`) any other, so a policy that grows a construct this model
does not know fails the tests instead of passing untested:

- `match`/`exclude` with `any` of `resources` (`kinds`, `namespaces`,
  `namespaceSelector` with matchLabels);
- `validate.pattern` and `validate.anyPattern` over the Pod;
- `validate.foreach` with `list` over the containers
  (`request.object.spec.[ephemeralContainers, initContainers, containers][]`)
  and a per-element `pattern`;
- patterns (docs: "Validate Rules", "Anchors", "Wildcards", "Operators"):
  a map requires each key (a missing key fails, unless anchored); a list
  with one pattern requires every element to match it; `=(key)` is the
  equality anchor (checked only when present); `X(key)` the negation
  anchor (the key must be absent); scalars: `*` and `?` wildcards (`?*`:
  any non-empty value), a leading `!` negates, `>N`, `>=N`, `<N`, `<=N`
  compare numbers; `"true"`/`"false"` match booleans.

Kyverno applies Pod rules to pod controllers by auto-generating rules for
their templates; the tests evaluate the pod templates as Pods, which is
what the generated rules check.
"""
import fnmatch
import re


class Unsupported(Exception):
    """A construct this model does not evaluate."""


CONTAINER_LISTS = "request.object.spec.[ephemeralContainers, initContainers, containers][]"


def matches_resources(block, kind, namespace, namespace_labels):
    resources = block.get("resources", {})
    unknown = set(resources) - {"kinds", "namespaces", "namespaceSelector"}
    if unknown or set(block) - {"resources"}:
        raise Unsupported(f"match/exclude fields {sorted(unknown | (set(block) - {'resources'}))}")
    if kind not in resources.get("kinds", [kind]):
        return False
    if "namespaces" in resources and namespace not in resources["namespaces"]:
        return False
    selector = resources.get("namespaceSelector")
    if selector is not None:
        if set(selector) - {"matchLabels"}:
            raise Unsupported("namespaceSelector beyond matchLabels")
        if any(namespace_labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
            return False
    return True


def applies(rule, kind, namespace, namespace_labels):
    match = rule.get("match", {})
    if set(match) - {"any"}:
        raise Unsupported("match without `any`")
    if not any(matches_resources(b, kind, namespace, namespace_labels) for b in match.get("any", [])):
        return False
    exclude = rule.get("exclude", {})
    if set(exclude) - {"any"}:
        raise Unsupported("exclude without `any`")
    return not any(matches_resources(b, kind, namespace, namespace_labels) for b in exclude.get("any", []))


def scalar_matches(pattern, value):
    if isinstance(pattern, bool) or isinstance(value, bool):
        text = str(value).lower() if isinstance(value, bool) else value
        return str(pattern).lower() == text
    if isinstance(pattern, (int, float)):
        return value == pattern
    if not isinstance(pattern, str):
        raise Unsupported(f"scalar pattern {pattern!r}")
    if value is None:
        return False
    if pattern.startswith("!"):
        return not scalar_matches(pattern[1:], value)
    compare = re.fullmatch(r"(>=|<=|>|<)(-?\d+(?:\.\d+)?)", pattern)
    if compare:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        op, limit = compare.group(1), float(compare.group(2))
        return {">": number > limit, ">=": number >= limit, "<": number < limit, "<=": number <= limit}[op]
    if pattern in ("true", "false"):
        return str(value).lower() == pattern
    text = str(value)
    if pattern == "?*":
        return text != ""
    return fnmatch.fnmatchcase(text, pattern)


def pattern_matches(pattern, value):
    """Whether `value` (a resource fragment) satisfies `pattern`."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        for key, sub in pattern.items():
            if key.startswith("=(") and key.endswith(")"):
                name = key[2:-1]
                if name in value and not pattern_matches(sub, value[name]):
                    return False
            elif key.startswith("X(") and key.endswith(")"):
                if key[2:-1] in value:
                    return False
            elif key[:1] in "(^<+" and key.endswith(")"):
                raise Unsupported(f"anchor {key}")
            else:
                if key not in value or not pattern_matches(sub, value[key]):
                    return False
        return True
    if isinstance(pattern, list):
        if len(pattern) != 1:
            raise Unsupported("a list pattern with more than one element")
        if not isinstance(value, list):
            return False
        return all(pattern_matches(pattern[0], v) for v in value)
    return scalar_matches(pattern, value)


def containers_of(pod):
    spec = pod.get("spec", {})
    return spec.get("ephemeralContainers", []) + spec.get("initContainers", []) + spec.get("containers", [])


def validate(rule, pod):
    """None when `pod` passes the rule's validation, else its message."""
    v = rule["validate"]
    known = {"failureAction", "message", "pattern", "anyPattern", "foreach"}
    if set(v) - known:
        raise Unsupported(f"validate fields {sorted(set(v) - known)}")
    ok = True
    if "pattern" in v:
        ok = pattern_matches(v["pattern"], pod)
    elif "anyPattern" in v:
        ok = any(pattern_matches(p, pod) for p in v["anyPattern"])
    elif "foreach" in v:
        for each in v["foreach"]:
            if each.get("list") != CONTAINER_LISTS or set(each) - {"list", "pattern"}:
                raise Unsupported(f"foreach {each.get('list')}")
            ok = ok and all(pattern_matches(each["pattern"], c) for c in containers_of(pod))
    else:
        raise Unsupported("validate without pattern, anyPattern or foreach")
    return None if ok else v.get("message", rule["name"])


def admit(policies, pod, namespace, namespace_labels):
    """The refusals (policy/rule: message) of `pod` in `namespace`."""
    refusals = []
    for policy in policies:
        for rule in policy["spec"]["rules"]:
            if "validate" not in rule or not applies(rule, "Pod", namespace, namespace_labels):
                continue
            message = validate(rule, pod)
            if message is not None:
                refusals.append(f"{policy['metadata']['name']}/{rule['name']}: {message}")
    return refusals


def generated(policies, namespace, namespace_labels):
    """The objects the generate rules create for a new `namespace`."""
    out = []
    for policy in policies:
        for rule in policy["spec"]["rules"]:
            if "generate" not in rule or not applies(rule, "Namespace", namespace, namespace_labels):
                continue
            g = rule["generate"]
            if "data" not in g:
                raise Unsupported("generate without data (clone)")
            out.append({
                "apiVersion": g["apiVersion"], "kind": g["kind"],
                "metadata": {"name": g["name"],
                             "namespace": g["namespace"].replace("{{request.object.metadata.name}}", namespace)},
                **g["data"],
            })
    return out
