//! Loading a set of spec files into checked [`Slo`]s.
//!
//! Files are read whole (after a size check on the file's metadata, so a
//! 100 MB file is refused without being read), every YAML document is
//! sniffed (`version: prometheus/v1` is Sloth, `apiVersion: openslo/v1` is
//! OpenSLO), OpenSLO `indicatorRef`s are resolved across all files, and
//! SLO ids (`service-name`) must be unique across all files. All errors
//! are collected, so one run lists every problem.

use crate::error::{SpecError, SpecErrors};
use crate::model::Slo;
use crate::openslo::{self, Document, Indicator};
use crate::sloth;
use crate::yaml::{self, Node, Value, MAX_SPEC_BYTES};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Parses spec texts, `(file name, contents)`, into SLOs.
pub fn load_texts(sources: &[(String, String)]) -> Result<Vec<Slo>, SpecErrors> {
    let mut errors = Vec::new();
    let mut slos = Vec::new();
    let mut pending = Vec::new();
    let mut slis = HashMap::new();
    for (file, text) in sources {
        let docs = match yaml::parse_documents(text) {
            Ok(docs) => docs,
            Err(e) => {
                errors.push(SpecError {
                    file: file.clone(),
                    line: e.line,
                    field: String::new(),
                    message: e.message,
                });
                continue;
            }
        };
        if docs.is_empty() {
            errors.push(SpecError {
                file: file.clone(),
                line: 0,
                field: String::new(),
                message: "file holds no YAML document".into(),
            });
        }
        for doc in &docs {
            match format_of(doc) {
                Some(Format::Sloth) => match sloth::parse(file, doc) {
                    Ok(found) => slos.extend(found),
                    Err(e) => errors.push(e),
                },
                Some(Format::OpenSlo) => match openslo::parse(file, doc) {
                    Ok(Document::Slo(p)) => pending.push(p),
                    Ok(Document::Sli { name, line, spec }) => {
                        if slis.insert(name.clone(), spec).is_some() {
                            errors.push(SpecError { file: file.clone(), line, field: "metadata.name".into(), message: format!("a second SLI named `{name}`") });
                        }
                    }
                    Ok(Document::Service) => {}
                    Err(e) => errors.push(e),
                },
                None => errors.push(SpecError {
                    file: file.clone(),
                    line: doc.line,
                    field: String::new(),
                    message: format!("not an SLO spec: expected `version: {}` (Sloth) or `apiVersion: {}` (OpenSLO)", sloth::VERSION, openslo::API_VERSION),
                }),
            }
        }
    }
    for p in pending {
        let spec = match &p.indicator {
            Indicator::Inline(spec) => spec.clone(),
            Indicator::Ref { name, line } => match slis.get(name) {
                Some(spec) => spec.clone(),
                None => {
                    errors.push(SpecError {
                        file: p.slo.source.file.clone(),
                        line: *line,
                        field: "spec.indicatorRef".into(),
                        message: format!("no SLI named `{name}` in the loaded files"),
                    });
                    continue;
                }
            },
        };
        match openslo::resolve(*p, &spec) {
            Ok(slo) => slos.push(slo),
            Err(e) => errors.push(e),
        }
    }
    // Spec order: by file, then by line, whichever format each SLO is in.
    slos.sort_by(|a, b| (&a.source.file, a.source.line).cmp(&(&b.source.file, b.source.line)));
    let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for slo in &slos {
        if let Some((file, line)) = seen.get(&slo.id()) {
            errors.push(SpecError {
                file: slo.source.file.clone(),
                line: slo.source.line,
                field: "name".into(),
                message: format!(
                    "a second SLO `{}` of service `{}` (the first is at {file}:{line})",
                    slo.name, slo.service
                ),
            });
        } else {
            seen.insert(slo.id(), (slo.source.file.clone(), slo.source.line));
        }
    }
    if errors.is_empty() {
        Ok(slos)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(SpecErrors(errors))
    }
}

enum Format {
    Sloth,
    OpenSlo,
}

fn format_of(doc: &Node) -> Option<Format> {
    let Value::Map(entries) = &doc.value else {
        return None;
    };
    let get = |key: &str| {
        entries
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| match &e.value.value {
                Value::Scalar { text, .. } => Some(text.as_str()),
                _ => None,
            })
    };
    if get("version").is_some() {
        Some(Format::Sloth)
    } else if get("apiVersion").is_some_and(|v| v.starts_with("openslo/")) {
        Some(Format::OpenSlo)
    } else {
        None
    }
}

/// The spec files under `path`: the file itself, or the `*.yaml`/`*.yml`
/// files of a directory (not recursive), in name order.
pub fn spec_files(path: &Path) -> Result<Vec<PathBuf>, SpecErrors> {
    let io = |e: std::io::Error| {
        SpecErrors(vec![SpecError {
            file: path.display().to_string(),
            line: 0,
            field: String::new(),
            message: e.to_string(),
        }])
    };
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(io(std::io::Error::other(
            "no *.yaml or *.yml spec files here",
        )));
    }
    Ok(files)
}

/// Reads and parses every spec file under each path.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Slo>, SpecErrors> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        for file in spec_files(path)? {
            let name = file.display().to_string();
            match read_capped(&file) {
                Ok(text) => sources.push((name, text)),
                Err(message) => errors.push(SpecError {
                    file: name,
                    line: 0,
                    field: String::new(),
                    message,
                }),
            }
        }
    }
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    load_texts(&sources)
}

/// The file's text, refused before reading when it is too large.
fn read_capped(file: &Path) -> Result<String, String> {
    let len = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    if len > MAX_SPEC_BYTES as u64 {
        return Err(format!(
            "file is {len} bytes, more than the {MAX_SPEC_BYTES} bytes a spec may have"
        ));
    }
    std::fs::read_to_string(file).map_err(|e| e.to_string())
}

/// The platform's own specs (`slo/` at the repository's root), compiled
/// in so `reliable up` needs no files.
pub const PLATFORM_SPECS: &[(&str, &str)] = &[
    (
        "slo/gateway.yaml",
        include_str!("../../../slo/gateway.yaml"),
    ),
    (
        "slo/inference.yaml",
        include_str!("../../../slo/inference.yaml"),
    ),
    ("slo/orders.yaml", include_str!("../../../slo/orders.yaml")),
    ("slo/probes.yaml", include_str!("../../../slo/probes.yaml")),
    (
        "slo/shortener.yaml",
        include_str!("../../../slo/shortener.yaml"),
    ),
];

/// [`PLATFORM_SPECS`], loaded.
pub fn load_platform() -> Result<Vec<Slo>, SpecErrors> {
    let sources: Vec<(String, String)> = PLATFORM_SPECS
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    load_texts(&sources)
}
