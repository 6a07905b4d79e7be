"""deploy/load, the load agents' Job: N indexed pods that begin together
and print their histograms, locked down like the platform's pods, talking
only to DNS and HTTP(S), and started with flags the binary accepts."""
import pathlib
import re
import subprocess
import tempfile
import unittest

from invariants import SHA_TAG
from render import by_name, of_kind, reliable_binary, render


def job(objects):
    jobs = of_kind(objects, "Job")
    assert len(jobs) == 1, jobs
    return jobs[0]


def agent(objects):
    return job(objects)["spec"]["template"]["spec"]["containers"][0]


def env_value(objects, container, name):
    """The value a `valueFrom.configMapKeyRef` env var gets in the pod."""
    ref = next(e for e in container["env"] if e["name"] == name)["valueFrom"]["configMapKeyRef"]
    config = by_name(objects, "ConfigMap", ref["name"])
    assert config is not None, f"no ConfigMap {ref['name']}"
    return config["data"][ref["key"]]


class LoadJob(unittest.TestCase):
    def setUp(self):
        self.objects = render("load")

    def test_n_indexed_agents_all_at_once_never_retried(self):
        spec = job(self.objects)["spec"]
        self.assertEqual(spec["completionMode"], "Indexed")
        self.assertEqual(spec["parallelism"], spec["completions"])
        self.assertGreaterEqual(spec["parallelism"], 2)
        self.assertEqual(spec["backoffLimit"], 0)
        self.assertEqual(spec["template"]["spec"]["restartPolicy"], "Never")

    def test_every_variable_the_args_use_comes_from_the_generated_config(self):
        c = agent(self.objects)
        used = set(re.findall(r"\$\((\w+)\)", " ".join(c["args"])))
        self.assertEqual(used, {"TARGET", "START_AT"})
        for name in used:
            self.assertTrue(env_value(self.objects, c, name), name)
        self.assertRegex(env_value(self.objects, c, "TARGET"), r"^https?://")
        args = c["args"]
        self.assertEqual(args[args.index("--out-hist") + 1], "-", "the pod's log is the file")
        self.assertIn("--no-thresholds", args, "the merge judges the thresholds")
        volumes = {v["name"]: v for v in job(self.objects)["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
        directory, file = args[1].rsplit("/", 1)
        config = by_name(self.objects, "ConfigMap", mounts[directory]["configMap"]["name"])
        self.assertIn("scenarios:", config["data"][file])

    def test_locked_down_like_the_platform(self):
        pod = job(self.objects)["spec"]["template"]["spec"]
        c = agent(self.objects)
        self.assertIs(pod["automountServiceAccountToken"], False)
        self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
        sc = c["securityContext"]
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertRegex(c["image"], SHA_TAG)
        # Whole cores, never throttled: a throttled generator measures itself.
        self.assertEqual(c["resources"]["requests"]["cpu"], c["resources"]["limits"]["cpu"])
        for label in ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/component"):
            self.assertIn(label, job(self.objects)["spec"]["template"]["metadata"]["labels"])

    def test_nothing_in_and_only_dns_and_http_out(self):
        policies = of_kind(self.objects, "NetworkPolicy")
        self.assertEqual(len(policies), 1)
        spec = policies[0]["spec"]
        self.assertEqual(spec["podSelector"], {})
        self.assertEqual(sorted(spec["policyTypes"]), ["Egress", "Ingress"])
        self.assertNotIn("ingress", spec)
        ports = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
        self.assertEqual(ports, {53, 80, 443})

    def test_the_binary_accepts_the_agents_flags(self):
        """The pod's own args, with its scenario file and a start in the past:
        every flag parses, and the start is refused as too late (exit 2)."""
        c = agent(self.objects)
        with tempfile.TemporaryDirectory() as tmp:
            directory, file = c["args"][1].rsplit("/", 1)
            config = by_name(self.objects, "ConfigMap",
                             next(v for v in job(self.objects)["spec"]["template"]["spec"]["volumes"]
                                  if v["name"] == "scenario")["configMap"]["name"])
            scenario = pathlib.Path(tmp, file)
            scenario.write_text(config["data"][file])
            values = {"TARGET": "http://127.0.0.1:9", "START_AT": "2020-01-01T00:00:00Z"}
            args = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in c["args"]]
            args[1] = str(scenario)
            run = subprocess.run([reliable_binary(), *args], capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 2, run.stderr)
            self.assertIn("in the past", run.stderr)


if __name__ == "__main__":
    unittest.main()
