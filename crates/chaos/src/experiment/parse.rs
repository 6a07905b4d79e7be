//! Reading an experiment file: YAML through `yamlspec` (every error names
//! its line and field), `${var}` substitution, then probes and actions
//! dispatched on their `type`, each type's own fields read into its
//! struct (unknown keys refused), and the checks types cannot express
//! (a tolerance in the hypothesis, toxic attributes in range, a process
//! named before it is started).

use super::checks::{check_load, check_processes, check_tolerance, check_toxic, check_url};
use super::model::*;
use super::vars::{self, Vars};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use yamlspec::{Entry, Node, Value};

/// A refusal that names where in the file to look.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ExperimentError {
    /// 1-based; 0 when not about one line (a `--var`).
    pub line: usize,
    /// Dotted path of the field, e.g. `method[2].toxic.toxicity`.
    pub path: String,
    pub message: String,
}

impl ExperimentError {
    pub fn at(line: usize, path: &str, message: impl Into<String>) -> Self {
        Self {
            line,
            path: path.to_string(),
            message: message.into(),
        }
    }

    fn render(&self) -> String {
        match (self.line, self.path.is_empty()) {
            (0, true) => self.message.clone(),
            (0, false) => format!("{}: {}", self.path, self.message),
            (line, true) => format!("line {line}: {}", self.message),
            (line, false) => format!("line {line}: {}: {}", self.path, self.message),
        }
    }
}

const DEFAULT_PROXY_API: &str = "http://127.0.0.1:8474";
const PROBE_TYPES: &str = "http, load, metric, slo, count";
const ACTION_TYPES: &str = "toxic.add, toxic.update, toxic.remove, proxy.update, process.start, process.signal, process.restart, disk.fill, http, pause";

/// Parses `text`; `${var}`s come from `configuration` (environment read
/// from the process) and `overrides` (`--var`).
pub fn parse(
    text: &str,
    base_dir: &Path,
    overrides: &[(String, String)],
) -> Result<Experiment, ExperimentError> {
    parse_with_env(text, base_dir, overrides, &|name| std::env::var(name).ok())
}

/// [`parse`] with the environment read from `env`.
pub fn parse_with_env(
    text: &str,
    base_dir: &Path,
    overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Experiment, ExperimentError> {
    let mut documents =
        yamlspec::parse_documents(text).map_err(|e| ExperimentError::at(e.line, "", e.message))?;
    if documents.len() != 1 {
        return Err(ExperimentError::at(
            1,
            "",
            format!("expected one YAML document, found {}", documents.len()),
        ));
    }
    let mut root = documents.remove(0);
    let Value::Map(entries) = &mut root.value else {
        return Err(ExperimentError::at(
            root.line,
            "",
            "the file must be a map (title, method, ...)",
        ));
    };
    let configuration = entries.iter().find(|e| e.key == "configuration");
    let vars = vars::resolve(configuration.map(|e| &e.value), overrides, env)?;
    for entry in entries.iter_mut().filter(|e| e.key != "configuration") {
        vars::substitute(&mut entry.value, &vars, &entry.key)?;
    }
    let file: ExperimentFile = yamlspec::from_node(&root).map_err(spec_error(""))?;
    let reader = Reader {
        vars: &vars,
        has_load: file.load.is_some(),
    };
    if let Some(load) = &file.load {
        check_load(load, field(&root, "load").map_or(0, |n| n.line))?;
    }
    let hypothesis = match (
        &file.steady_state_hypothesis,
        field(&root, "steady-state-hypothesis"),
    ) {
        (Some(section), Some(node)) => Some(reader.hypothesis(section, node)?),
        _ => None,
    };
    let method = reader.actions(field(&root, "method"), "method")?;
    let rollbacks = reader.actions(field(&root, "rollbacks"), "rollbacks")?;
    check_processes(&method, &rollbacks)?;
    Ok(Experiment {
        title: file.title,
        description: file.description,
        base_dir: base_dir.to_path_buf(),
        load: file.load,
        hypothesis,
        method,
        rollbacks,
    })
}

fn field<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
        _ => None,
    }
}

fn spec_error(prefix: &str) -> impl Fn(yamlspec::SpecError) -> ExperimentError + '_ {
    move |e| {
        let path = match (prefix.is_empty(), e.path.is_empty()) {
            (true, _) => e.path,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{}", e.path),
        };
        ExperimentError::at(e.line, &path, e.message)
    }
}

struct Reader<'a> {
    vars: &'a Vars,
    has_load: bool,
}

/// A probe or action: its `type`, its common keys, and its own fields as
/// a map node.
pub(super) struct Step<'a> {
    path: String,
    line: usize,
    kind: String,
    common: Vec<&'a Entry>,
    own: Node,
}

fn step<'a>(node: &'a Node, path: &str, common_keys: &[&str]) -> Result<Step<'a>, ExperimentError> {
    let Value::Map(entries) = &node.value else {
        return Err(ExperimentError::at(
            node.line,
            path,
            "must be a map with a `type`",
        ));
    };
    let mut kind = None;
    let mut common = Vec::new();
    let mut own = Vec::new();
    for entry in entries {
        if entry.key == "type" {
            match &entry.value.value {
                Value::Scalar { text, .. } => kind = Some(text.clone()),
                _ => {
                    return Err(ExperimentError::at(
                        entry.line,
                        &format!("{path}.type"),
                        "must be a name",
                    ))
                }
            }
        } else if common_keys.contains(&entry.key.as_str()) {
            common.push(entry);
        } else {
            own.push(entry.clone());
        }
    }
    let Some(kind) = kind else {
        return Err(ExperimentError::at(
            node.line,
            &format!("{path}.type"),
            "missing",
        ));
    };
    Ok(Step {
        path: path.to_string(),
        line: node.line,
        kind,
        common,
        own: Node {
            line: node.line,
            value: Value::Map(own),
        },
    })
}

impl Step<'_> {
    fn fields<T: serde::de::DeserializeOwned>(&self) -> Result<T, ExperimentError> {
        yamlspec::from_node(&self.own).map_err(spec_error(&self.path))
    }

    fn common<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, ExperimentError> {
        let Some(entry) = self.common.iter().find(|e| e.key == key) else {
            return Ok(None);
        };
        let path = format!("{}.{key}", self.path);
        yamlspec::from_node(&entry.value)
            .map(Some)
            .map_err(spec_error(&path))
    }

    fn take(&mut self, key: &str) -> Option<Entry> {
        let Value::Map(entries) = &mut self.own.value else {
            return None;
        };
        let at = entries.iter().position(|e| e.key == key)?;
        Some(entries.remove(at))
    }

    pub(super) fn error(&self, key: &str, message: impl Into<String>) -> ExperimentError {
        let path = if key.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{key}", self.path)
        };
        ExperimentError::at(self.line, &path, message)
    }
}

impl Reader<'_> {
    fn hypothesis(
        &self,
        section: &HypothesisSection,
        node: &Node,
    ) -> Result<Hypothesis, ExperimentError> {
        let path = "steady-state-hypothesis.probes";
        let Some(Value::Seq(items)) = field(node, "probes").map(|n| &n.value) else {
            return Err(ExperimentError::at(
                node.line,
                path,
                "must be a list of probes",
            ));
        };
        let mut names = HashSet::new();
        let mut probes = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let probe = self.probe(item, &format!("{path}[{i}]"), true)?;
            if !names.insert(probe.name.clone()) {
                return Err(ExperimentError::at(
                    item.line,
                    &format!("{path}[{i}].name"),
                    format!("`{}` names two probes", probe.name),
                ));
            }
            probes.push(probe);
        }
        let interval = section.interval.map_or(Duration::from_secs(1), |d| d.0);
        if interval.is_zero() {
            return Err(ExperimentError::at(
                node.line,
                "steady-state-hypothesis.interval",
                "must be above zero",
            ));
        }
        Ok(Hypothesis {
            title: section.title.clone(),
            interval,
            after_within: section.after_within.map_or(Duration::ZERO, |d| d.0),
            probes,
        })
    }

    fn probe(
        &self,
        node: &Node,
        path: &str,
        in_hypothesis: bool,
    ) -> Result<Probe, ExperimentError> {
        let mut step = step(node, path, &["name", "tolerance", "when"])?;
        let name: Option<String> = step.common("name")?;
        let tolerance: Option<Tolerance> = step.common("tolerance")?;
        let when: Option<Vec<Phase>> = step.common("when")?;
        match (&tolerance, in_hypothesis) {
            (None, true) => {
                return Err(step.error("tolerance", "missing: a probe in the hypothesis needs a tolerance (e.g. `tolerance: {max: 250}`)"))
            }
            (Some(_), false) => {
                return Err(step.error("tolerance", "only a probe of the hypothesis has a tolerance"))
            }
            (Some(t), true) => check_tolerance(t, &step)?,
            (None, false) => {}
        }
        let spec = match step.kind.as_str() {
            "http" => {
                let probe: HttpProbe = step.fields()?;
                check_url(&probe.url, &step, "url")?;
                if let Some(pointer) = &probe.pointer {
                    if !pointer.is_empty() && !pointer.starts_with('/') {
                        return Err(step.error(
                            "pointer",
                            "a JSON pointer starts with `/` (e.g. `/items/0/id`)",
                        ));
                    }
                }
                if probe.value == Some(HttpValue::Json) && probe.pointer.is_none() {
                    return Err(step.error(
                        "pointer",
                        "missing: `value: json` reads the number at a pointer",
                    ));
                }
                ProbeSpec::Http(probe)
            }
            "load" => {
                let probe: LoadProbe = step.fields()?;
                if !self.has_load {
                    return Err(step.error("", "a `load` probe needs a `load` section"));
                }
                if probe.metric == LoadMetric::StatusCount && probe.status.is_none() {
                    return Err(step.error("status", "missing: `status_count` counts one status"));
                }
                ProbeSpec::Load(probe)
            }
            "metric" => {
                let probe: MetricProbe = step.fields()?;
                check_url(&probe.url, &step, "url")?;
                if let Some(q) = probe.quantile {
                    if !(q > 0.0 && q < 1.0) {
                        return Err(step.error(
                            "quantile",
                            format!("must be between 0 and 1 (exclusive), got {q}"),
                        ));
                    }
                }
                ProbeSpec::Metric(probe)
            }
            "slo" => {
                let probe: SloProbe = step.fields()?;
                check_url(&probe.url, &step, "url")?;
                ProbeSpec::Slo(probe)
            }
            "count" => {
                let (Some(left), Some(right)) = (step.take("left"), step.take("right")) else {
                    return Err(step.error("", "a `count` probe has a `left` and a `right` probe"));
                };
                let left = self.probe(&left.value, &format!("{path}.left"), false)?;
                let right = self.probe(&right.value, &format!("{path}.right"), false)?;
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Rest {
                    #[serde(default)]
                    compare: Compare,
                }
                let rest: Rest = step.fields()?;
                ProbeSpec::Count(Box::new(CountProbe {
                    left,
                    right,
                    compare: rest.compare,
                }))
            }
            other => {
                return Err(ExperimentError::at(
                    step.line,
                    &format!("{path}.type"),
                    format!("unknown probe type `{other}` (known: {PROBE_TYPES})"),
                ))
            }
        };
        Ok(Probe {
            name: name.unwrap_or_else(|| step.kind.clone()),
            line: step.line,
            spec,
            tolerance,
            when: when.unwrap_or_else(|| vec![Phase::Before, Phase::During, Phase::After]),
        })
    }

    fn actions(&self, node: Option<&Node>, path: &str) -> Result<Vec<Action>, ExperimentError> {
        let Some(node) = node else {
            return Ok(Vec::new());
        };
        let Value::Seq(items) = &node.value else {
            return Err(ExperimentError::at(
                node.line,
                path,
                "must be a list of actions",
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.action(item, &format!("{path}[{i}]")))
            .collect()
    }

    fn action(&self, node: &Node, path: &str) -> Result<Action, ExperimentError> {
        let step = step(node, path, &["name", "pauses", "repeat"])?;
        let name: Option<String> = step.common("name")?;
        let pauses: Option<Pauses> = step.common("pauses")?;
        let repeat: Option<Repeat> = step.common("repeat")?;
        let api = || {
            self.vars
                .get("proxy_api")
                .unwrap_or(DEFAULT_PROXY_API)
                .to_string()
        };
        let spec = match step.kind.as_str() {
            "toxic.add" => {
                let mut action: ToxicAdd = step.fields()?;
                check_toxic(&action.toxic, &step)?;
                action.api = Some(action.api.unwrap_or_else(api));
                ActionSpec::ToxicAdd(action)
            }
            "toxic.update" => {
                let mut action: ToxicAdd = step.fields()?;
                check_toxic(&action.toxic, &step)?;
                action.api = Some(action.api.unwrap_or_else(api));
                ActionSpec::ToxicUpdate(action)
            }
            "toxic.remove" => {
                let mut action: ToxicRemove = step.fields()?;
                action.api = Some(action.api.unwrap_or_else(api));
                ActionSpec::ToxicRemove(action)
            }
            "proxy.update" => {
                let mut action: ProxyUpdate = step.fields()?;
                if action.enabled.is_none() && action.upstream.is_none() && action.listen.is_none()
                {
                    return Err(step.error("", "give at least one of enabled, upstream, listen"));
                }
                action.api = Some(action.api.unwrap_or_else(api));
                ActionSpec::ProxyUpdate(action)
            }
            "process.start" => {
                let action: ProcessStart = step.fields()?;
                if action.command.is_empty() {
                    return Err(step.error("command", "must name a program"));
                }
                if let Some(ready) = &action.ready {
                    check_url(ready, &step, "ready")?;
                }
                ActionSpec::ProcessStart(action)
            }
            "process.signal" => {
                let action: ProcessSignal = step.fields()?;
                if action.process.is_some() == action.pidfile.is_some() {
                    return Err(step.error(
                        "",
                        "give exactly one of `process` (started by this experiment) and `pidfile`",
                    ));
                }
                let templated = action
                    .pidfile
                    .as_deref()
                    .is_some_and(|p| p.contains("{{item}}"));
                match &action.item {
                    Some(item) if templated => {
                        if item.urls.is_empty() {
                            return Err(step.error("item.urls", "must list at least one URL"));
                        }
                        for url in &item.urls {
                            check_url(url, &step, "item.urls")?;
                        }
                    }
                    Some(_) => {
                        return Err(step.error(
                            "item",
                            "`item` is read for `{{item}}` in `pidfile`, which has none",
                        ))
                    }
                    None if templated => {
                        return Err(step.error(
                            "pidfile",
                            "has `{{item}}` but no `item: {url, pointer}` says what it is",
                        ))
                    }
                    None => {}
                }
                ActionSpec::ProcessSignal(action)
            }
            "process.restart" => ActionSpec::ProcessRestart(step.fields()?),
            "disk.fill" => ActionSpec::DiskFill(step.fields()?),
            "http" => {
                let action: HttpAction = step.fields()?;
                check_url(&action.url.replace("{{item}}", "item"), &step, "url")?;
                ActionSpec::Http(action)
            }
            "pause" => ActionSpec::Pause(step.fields()?),
            other => {
                return Err(ExperimentError::at(
                    step.line,
                    &format!("{path}.type"),
                    format!("unknown action type `{other}` (known: {ACTION_TYPES})"),
                ))
            }
        };
        Ok(Action {
            name: name.unwrap_or_else(|| step.kind.clone()),
            line: step.line,
            spec,
            pauses: pauses.unwrap_or_default(),
            repeat,
        })
    }
}
