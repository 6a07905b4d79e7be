// Validates the custom resources in Kubernetes YAML files against the
// schemas their projects publish, as the npm @kubernetes-models/* packages
// (generated from each project's CRDs and Go types). scripts/deploy-check
// runs it, through deploy_check.py, over every rendered kustomization and
// every raw manifest that Argo CD would apply.
//
//   node validate-crds.mjs FILE...     validate; exit 1 on any error
//   node validate-crds.mjs --kinds     print the covered apiVersion/kind pairs (JSON)
//
// Two checks per object:
// - the package's validate(): types, enums, required fields, patterns;
// - unknown fields: validate() lets any unknown field through (the CRDs do
//   not say additionalProperties: false; the API server prunes such fields,
//   or refuses them under kubectl's strict field validation). A misspelt
//   `selfheal` would then do nothing, silently. So each object is walked
//   along the package's TypeScript declarations (generated from the same
//   schema) and a field the declarations do not have is an error, as
//   kubernetes-validate --strict does for core kinds. Maps
//   (additionalProperties, index signatures) and preserve-unknown-fields
//   values (`any`, `{}`) accept any key.
//
// Only the kinds in KINDS are handled here; deploy_check.py sends every
// other object to kubernetes-validate and fails on one neither covers.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import ts from "typescript";

// Every custom resource kind deploy/ may use, and the package whose schema
// covers it. A kind missing here fails the check (deploy_check.py): add it
// when the manifests start using it.
const KINDS = [
  ["@kubernetes-models/argo-cd", "argoproj.io/v1alpha1", ["Application", "ApplicationSet", "AppProject"]],
  [
    "@kubernetes-models/argo-rollouts",
    "argoproj.io/v1alpha1",
    ["Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun", "Experiment"],
  ],
  [
    "@kubernetes-models/external-secrets",
    "external-secrets.io/v1",
    ["ExternalSecret", "ClusterExternalSecret", "SecretStore", "ClusterSecretStore"],
  ],
  [
    "@kubernetes-models/external-secrets",
    "external-secrets.io/v1beta1",
    ["ExternalSecret", "ClusterExternalSecret", "SecretStore", "ClusterSecretStore"],
  ],
  [
    "@kubernetes-models/prometheus-operator",
    "monitoring.coreos.com/v1",
    ["ServiceMonitor", "PodMonitor", "PrometheusRule", "Probe"],
  ],
  ["@kubernetes-models/kyverno", "kyverno.io/v1", ["ClusterPolicy", "Policy"]],
  ["@kubernetes-models/kyverno", "kyverno.io/v2", ["PolicyException", "CleanupPolicy", "ClusterCleanupPolicy"]],
  ["@kubernetes-models/autoscaler", "autoscaling.k8s.io/v1", ["VerticalPodAutoscaler"]],
  ["@kubernetes-models/cert-manager", "cert-manager.io/v1", ["Certificate", "Issuer", "ClusterIssuer"]],
].flatMap(([pkg, apiVersion, kinds]) => kinds.map((kind) => ({ pkg, apiVersion, kind })));

const key = (apiVersion, kind) => `${apiVersion} ${kind}`;
const byKey = new Map(KINDS.map((k) => [key(k.apiVersion, k.kind), k]));
const moduleOf = (k) => `${k.pkg}/${k.apiVersion.split("/")[0]}/${k.apiVersion.split("/")[1]}/${k.kind}`;

const here = path.dirname(fileURLToPath(import.meta.url));

// One TypeScript program over the declarations of every kind in KINDS, so
// the unknown-field walk can ask for the declared properties of any type.
function loadDeclarations(kinds) {
  const entry = path.join(here, "__kinds__.ts");
  const source = kinds
    .map((k, i) => `import type { I${k.kind} as K${i} } from "${moduleOf(k)}";\nexport type T${i} = K${i};`)
    .join("\n");
  const options = {
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) =>
    name === entry ? ts.createSourceFile(name, source, lang) : getSourceFile.call(host, name, lang, ...rest);
  host.fileExists = (name) => name === entry || fileExists.call(host, name);
  host.readFile = (name) => (name === entry ? source : readFile.call(host, name));
  const program = ts.createProgram([entry], options, host);
  // Only the entry file's diagnostics: whether each import resolved. A full
  // check of every declaration file would take seconds for nothing.
  const problems = program
    .getSemanticDiagnostics(program.getSourceFile(entry))
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
  if (problems.length > 0) {
    throw new Error(`the schema packages' declarations do not load:\n${problems.join("\n")}`);
  }
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  const types = new Map();
  for (const stmt of file.statements) {
    if (ts.isTypeAliasDeclaration(stmt) && stmt.name.text.startsWith("T")) {
      const i = Number(stmt.name.text.slice(1));
      types.set(key(kinds[i].apiVersion, kinds[i].kind), checker.getTypeAtLocation(stmt.name));
    }
  }
  return { checker, types };
}

// The unknown-field walk. `types` is the list of types the value may have
// (a union is flattened into it); a key is unknown when no object type in
// the list declares it and none is open (index signature, `any`, `{}`).
function unknownFields(checker, value, types, where, out) {
  if (value === null || typeof value !== "object") return;
  const flat = types.flatMap((t) => (t.isUnion() ? t.types : [t]));
  if (flat.some((t) => t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown | ts.TypeFlags.NonPrimitive))) return;
  if (Array.isArray(value)) {
    const items = flat.filter((t) => checker.isArrayType(t)).map((t) => checker.getTypeArguments(t)[0]);
    if (items.length === 0) return; // not an array by the schema: validate() says so
    value.forEach((item, i) => unknownFields(checker, item, items, `${where}[${i}]`, out));
    return;
  }
  const objects = flat.filter((t) => t.flags & ts.TypeFlags.Object && !checker.isArrayType(t));
  if (objects.length === 0) return; // not an object by the schema: validate() says so
  const indexTypes = objects
    .map((t) => checker.getIndexInfoOfType(t, ts.IndexKind.String))
    .filter(Boolean)
    .map((info) => info.type);
  const open = objects.some((t) => checker.getPropertiesOfType(t).length === 0 && !checker.getIndexInfoOfType(t, ts.IndexKind.String));
  for (const [field, child] of Object.entries(value)) {
    const declared = objects
      .map((t) => checker.getPropertyOfType(t, field))
      .filter(Boolean)
      .map((symbol) => checker.getNonNullableType(checker.getTypeOfSymbol(symbol)));
    const childTypes = [...declared, ...indexTypes];
    const at = where ? `${where}.${field}` : field;
    if (childTypes.length === 0) {
      if (!open) out.push(`${at}: unknown field "${field}"`);
      continue;
    }
    unknownFields(checker, child, childTypes, at, out);
  }
}

async function loadModels(kinds) {
  const models = new Map();
  for (const k of kinds) {
    const mod = await import(moduleOf(k));
    if (typeof mod[k.kind] !== "function") throw new Error(`${moduleOf(k)} exports no class ${k.kind}`);
    models.set(key(k.apiVersion, k.kind), mod[k.kind]);
  }
  return models;
}

function describe(file, index, obj) {
  const ns = obj?.metadata?.namespace ? `${obj.metadata.namespace}/` : "";
  return `${file} #${index + 1} ${obj?.kind ?? "?"} ${ns}${obj?.metadata?.name ?? "?"}`;
}

async function main(argv) {
  if (argv[0] === "--kinds") {
    console.log(JSON.stringify(KINDS.map(({ apiVersion, kind }) => ({ apiVersion, kind }))));
    return 0;
  }
  if (argv.length === 0) {
    console.error("usage: validate-crds.mjs FILE... | --kinds");
    return 2;
  }
  const found = [];
  const errors = [];
  for (const file of argv) {
    // YAML 1.1, as Kubernetes reads manifests (sigs.k8s.io/yaml): `on` is a
    // boolean there, and a string under YAML 1.2.
    const docs = parseAllDocuments(readFileSync(file, "utf8"), { version: "1.1" });
    docs.forEach((doc, index) => {
      if (doc.errors.length > 0) {
        errors.push(`${file} #${index + 1}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
        return;
      }
      const obj = doc.toJS();
      if (obj && byKey.has(key(obj.apiVersion, obj.kind))) found.push({ file, index, obj });
    });
  }
  const used = KINDS.filter((k) => found.some(({ obj }) => key(obj.apiVersion, obj.kind) === key(k.apiVersion, k.kind)));
  const models = await loadModels(used);
  const { checker, types } = used.length > 0 ? loadDeclarations(used) : { checker: null, types: new Map() };
  for (const { file, index, obj } of found) {
    const k = key(obj.apiVersion, obj.kind);
    const Model = models.get(k);
    const problems = [];
    try {
      new Model(obj).validate();
    } catch (e) {
      problems.push(String(e.message ?? e).trim());
    }
    unknownFields(checker, obj, [types.get(k)], "", problems);
    for (const p of problems) errors.push(`${describe(file, index, obj)}: ${p}`);
  }
  for (const e of errors) console.log(`ERROR ${e}`);
  const kinds = [...new Set(found.map(({ obj }) => obj.kind))].sort().join(", ");
  console.log(`validate-crds: ${found.length} custom resources (${kinds || "none"}), ${errors.length} errors`);
  return errors.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`validate-crds: ${e.stack ?? e}`);
    process.exit(2);
  },
);
