"""The image build, checked without a container engine (CI here has none):
the build context holds everything the build reads, the runtime stage is
locked down, and the image agrees with the manifests. hadolint and
checkov lint the Dockerfile itself (scripts/deploy-check)."""
import fnmatch
import pathlib
import re
import unittest

from render import DEPLOY, REPO, by_name, render

DOCKERFILE = DEPLOY / "Dockerfile"


def ignore_patterns():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [l.strip() for l in lines if l.strip() and not l.startswith("#")]


def ignored(relative, patterns):
    """Whether the build context leaves `relative` out (.dockerignore, no
    `!` exceptions are used): a pattern matches the path or a parent."""
    parts = pathlib.PurePosixPath(relative).parts
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pattern[3:])
            ):
                return True
    return False


def stages():
    """[(name, [instruction lines])] with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            name = line.split()[-1] if " AS " in line.upper() else str(len(result))
            result.append((name, [line]))
        elif result:
            result[-1][1].append(line)
    return result


def compile_time_files():
    """Files the crates read at compile time (include_str!/include_bytes!)."""
    found = set()
    for source in (REPO / "crates").rglob("*.rs"):
        if "tests" in source.relative_to(REPO).parts:
            continue
        for match in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', source.read_text()):
            target = (source.parent / match.group(1)).resolve()
            found.add(str(target.relative_to(REPO)))
    return found


class Dockerfile(unittest.TestCase):
    def test_the_context_holds_what_the_build_reads(self):
        patterns = ignore_patterns()
        needed = {"Cargo.toml", "Cargo.lock", "crates/reliable/src/main.rs", "models/README.md"}
        # The root manifest patches crates with copies under vendor/.
        needed |= {"vendor/tryhard/Cargo.toml", "vendor/tryhard/src/lib.rs"}
        needed |= {"vendor/mimalloc/Cargo.toml", "vendor/mimalloc/src/lib.rs"}
        needed |= compile_time_files()
        self.assertIn("slo/shortener.yaml", needed)  # the built-in SLO specs are read at compile time
        for relative in sorted(needed):
            self.assertTrue((REPO / relative).exists(), relative)
            self.assertFalse(ignored(relative, patterns), f"{relative} is needed by the build but .dockerignore drops it")
        for relative in ("target/debug/reliable", ".git/HEAD", "data/x.db", "crates/x/y.db"):
            self.assertTrue(ignored(relative, patterns), f"{relative} should stay out of the context")

    def test_every_copy_source_is_in_the_context(self):
        patterns = ignore_patterns()
        for name, lines in stages():
            for line in lines:
                if not line.upper().startswith("COPY ") or "--from=" in line:
                    continue
                sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
                for source in sources:
                    if source == ".":
                        continue
                    self.assertTrue((REPO / source).exists(), f"{name}: COPY {source}")
                    self.assertFalse(ignored(source, patterns), f"{name}: COPY {source} is ignored")

    def test_the_runtime_stage_is_locked_down(self):
        name, lines = stages()[-1]
        self.assertEqual(name, "runtime")
        base = lines[0].split()[1]
        self.assertRegex(base, r"^gcr\.io/distroless/[a-z0-9-]+:nonroot$")
        user = [l.split()[1] for l in lines if l.upper().startswith("USER ")]
        self.assertEqual(user, ["65532:65532"])
        self.assertIn('ENTRYPOINT ["/usr/local/bin/reliable"]', lines)
        self.assertFalse([l for l in lines if l.upper().startswith("RUN ")], "a distroless stage has no shell to RUN")
        names = {n for n, _ in stages()}
        args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.M))
        for _, stage in stages():
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage[0].split()[1])
            if image in names:
                continue  # an earlier stage
            self.assertNotRegex(image, r":latest$|^[^:]+$", f"base image {image} must have a pinned tag")
        builds = [l for _, s in stages() for l in s if "cargo build" in l or "cargo chef cook" in l]
        self.assertTrue(builds and all("--locked" in b and "--release" in b for b in builds), builds)
        # The binary alone: tests or examples in the same build would turn
        # on tokio's test clock for it (vendor/README.md); cargo-chef would
        # build the dependencies against empty copies of the patched crates.
        for build in builds:
            self.assertIn("--package reliable", build)
            self.assertNotRegex(build, r"--(workspace|all-targets|examples|tests)\b|chef", build)

    def test_the_image_agrees_with_the_manifests(self):
        lines = stages()[-1][1]
        env = " ".join(l for l in lines if l.upper().startswith("ENV "))
        self.assertIn("RELIABLE_LISTEN=0.0.0.0:8080", env)
        self.assertIn("EXPOSE 8080", lines)
        repository = re.search(r"RELIABLE_INFERENCE_REPOSITORY=(\S+)", env).group(1)
        self.assertIn(f"COPY --chown=65532:65532 models {repository}", lines)
        deployment = by_name(render("overlays/prod"), "Deployment", "gateway")
        pod = deployment["spec"]["template"]["spec"]
        self.assertEqual(pod["securityContext"]["runAsUser"], 65532)
        self.assertEqual(pod["containers"][0]["ports"][0]["containerPort"], 8080)
        writable = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        workdir = [l.split()[1] for l in lines if l.upper().startswith("WORKDIR ")][-1]
        self.assertIn(workdir, writable, "the working directory (RELIABLE_DATA_DIR) must be a writable mount")

    def test_ignore_matching_catches_what_it_should(self):
        self.assertTrue(ignored("docs/a.md", ["docs/"]))
        self.assertTrue(ignored("a/b/node_modules/x", ["**/node_modules/"]))
        self.assertFalse(ignored("slo/x.yaml", ["docs/", "**/node_modules/"]))


if __name__ == "__main__":
    unittest.main()
