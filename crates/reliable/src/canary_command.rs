//! `reliable canary`: the controller's client. `run` submits a spec and
//! follows its decisions until it is promoted or rolled back; `status`,
//! `abort` and `promote` act on runs; `check` validates a spec against the
//! SLO specs without a controller (for a pull request's CI).
//!
//! The controller is the `canary` module (`reliable up`, or `serve
//! --target canary`), reached at `--controller` (default
//! `RELIABLE_CANARY_URL`, else `http://127.0.0.1:8080`), with the API key
//! in `RELIABLE_CANARY_ADMIN_KEY` when a gateway fronts it.

use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct CanaryArgs {
    #[command(subcommand)]
    command: CanaryCommand,
}

#[derive(Debug, Args)]
struct ControllerFlags {
    /// The controller's base URL.
    #[arg(
        long,
        env = "RELIABLE_CANARY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    controller: String,
}

#[derive(Debug, Subcommand)]
enum CanaryCommand {
    /// Start a canary from SPEC and print each decision with its evidence
    /// until it finishes. Exit 0 promoted, 1 rolled back or aborted, 3
    /// paused, 2 refused.
    Run {
        spec: PathBuf,
        #[command(flatten)]
        flags: ControllerFlags,
        /// Start it and return without following.
        #[arg(long)]
        detach: bool,
    },
    /// The unfinished and latest runs, or one run (id or target key such
    /// as `gateway/links`) with its recent decisions.
    Status {
        run: Option<String>,
        #[command(flatten)]
        flags: ControllerFlags,
    },
    /// Roll a run back now.
    Abort {
        run: String,
        /// Who asks (recorded with the decision).
        #[arg(long, env = "USER", default_value = "an operator")]
        by: String,
        #[command(flatten)]
        flags: ControllerFlags,
    },
    /// Promote a run now, whatever the judge says (a manual override,
    /// recorded with who asked).
    Promote {
        run: String,
        #[arg(long, env = "USER", default_value = "an operator")]
        by: String,
        #[command(flatten)]
        flags: ControllerFlags,
    },
    /// Check a spec against the SLO specs, without a controller.
    Check {
        spec: PathBuf,
        /// The SLO specs (file or directory); default: the platform's own.
        #[arg(long)]
        slo: Option<PathBuf>,
    },
}

pub fn run(args: CanaryArgs) -> ExitCode {
    if let CanaryCommand::Check { spec, slo } = &args.command {
        return check(spec, slo);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match command(args.command).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

fn check(spec: &PathBuf, slo_dir: &Option<PathBuf>) -> ExitCode {
    let text = match std::fs::read_to_string(spec) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", spec.display());
            return ExitCode::from(2);
        }
    };
    let slos = match canary::load_slos(slo_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: SLO specs: {e}");
            return ExitCode::from(2);
        }
    };
    match canary::spec::compile(&text, &slos) {
        Ok(plan) => {
            let weights: Vec<String> = plan
                .steps
                .iter()
                .map(|s| format!("{}%", s.weight))
                .collect();
            let metrics: Vec<String> = plan
                .metrics
                .iter()
                .map(|m| format!("{} ({})", m.slo, m.kind.as_str()))
                .collect();
            println!(
                "{}: ok: {} on {}, steps {}, judged on {}",
                spec.display(),
                plan.name,
                plan.target_key(),
                weights.join(" → "),
                metrics.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}:{e}", spec.display());
            ExitCode::from(2)
        }
    }
}

struct Api {
    base: url::Url,
    client: reqwest::Client,
    key: Option<String>,
}

impl Api {
    fn new(flags: &ControllerFlags) -> anyhow::Result<Self> {
        let mut base = url::Url::parse(&flags.controller)
            .map_err(|e| anyhow::anyhow!("--controller {}: {e}", flags.controller))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            key: canary::target::key_from_env(canary::target::DEFAULT_KEY_ENV),
        })
    }

    fn url(&self, path: &str) -> anyhow::Result<url::Url> {
        Ok(self.base.join(path)?)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let request = match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("the controller at {} did not answer: {e}", self.base))?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn refusal(status: u16, body: &Value) -> String {
    let mut text = format!(
        "HTTP {status}: {}",
        body["detail"]
            .as_str()
            .or(body["title"].as_str())
            .unwrap_or("no detail")
    );
    for param in body["invalid_params"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n  {}: {}",
            param["name"].as_str().unwrap_or("?"),
            param["reason"].as_str().unwrap_or("?")
        ));
    }
    text
}

async fn command(command: CanaryCommand) -> anyhow::Result<ExitCode> {
    match command {
        CanaryCommand::Check { .. } => Ok(ExitCode::SUCCESS),
        CanaryCommand::Run {
            spec,
            flags,
            detach,
        } => {
            let text = std::fs::read_to_string(&spec)
                .map_err(|e| anyhow::anyhow!("{}: {e}", spec.display()))?;
            let api = Api::new(&flags)?;
            let request = api
                .client
                .post(api.url("canary/v1/runs")?)
                .header("content-type", "application/yaml")
                .body(text);
            let (status, body) = api.send(request).await?;
            if status != 201 {
                eprintln!("refused: {}", refusal(status, &body));
                return Ok(ExitCode::from(2));
            }
            let id = body["id"].as_str().unwrap_or_default().to_string();
            println!(
                "started {id} on {} at {}%",
                body["target"].as_str().unwrap_or("?"),
                body["weight"]
            );
            if detach {
                return Ok(ExitCode::SUCCESS);
            }
            follow(&api, &id).await
        }
        CanaryCommand::Status { run, flags } => {
            let api = Api::new(&flags)?;
            match run {
                Some(id) => {
                    let id = resolve(&api, &id).await?;
                    let (status, body) = api
                        .send(
                            api.client
                                .get(api.url(&format!("canary/v1/runs/{}", segment(&id)))?),
                        )
                        .await?;
                    if status != 200 {
                        eprintln!("{}", refusal(status, &body));
                        return Ok(ExitCode::FAILURE);
                    }
                    print_run(&body["run"]);
                    let decisions = body["decisions"].as_array().cloned().unwrap_or_default();
                    for d in decisions.iter().rev().take(10).rev() {
                        print_decision(d);
                    }
                }
                None => {
                    let (status, body) = api
                        .send(api.client.get(api.url("canary/v1/runs?limit=20")?))
                        .await?;
                    if status != 200 {
                        eprintln!("{}", refusal(status, &body));
                        return Ok(ExitCode::FAILURE);
                    }
                    let runs = body.as_array().cloned().unwrap_or_default();
                    if runs.is_empty() {
                        println!("no canary runs");
                    }
                    for run in &runs {
                        print_run(run);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CanaryCommand::Abort { run, by, flags } => act("abort", &run, &by, &flags).await,
        CanaryCommand::Promote { run, by, flags } => act("promote", &run, &by, &flags).await,
    }
}

/// A run id, or the id of the unfinished run on a target key
/// (`gateway/links`): a gateway in front refuses an encoded `/` in a path.
async fn resolve(api: &Api, run: &str) -> anyhow::Result<String> {
    if !run.contains('/') {
        return Ok(run.to_string());
    }
    let mut url = api.url("canary/v1/runs")?;
    url.query_pairs_mut()
        .append_pair("unfinished", "true")
        .append_pair("target", run);
    let (status, body) = api.send(api.client.get(url)).await?;
    if status != 200 {
        anyhow::bail!("{}", refusal(status, &body));
    }
    body.as_array()
        .and_then(|runs| runs.first())
        .and_then(|r| r["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no unfinished canary on {run}"))
}

async fn act(verb: &str, run: &str, by: &str, flags: &ControllerFlags) -> anyhow::Result<ExitCode> {
    let api = Api::new(flags)?;
    let run = &resolve(&api, run).await?;
    let request = api
        .client
        .post(api.url(&format!("canary/v1/runs/{}/{verb}", segment(run)))?)
        .json(&serde_json::json!({ "by": by }));
    let (status, body) = api.send(request).await?;
    if status != 200 {
        eprintln!("{}", refusal(status, &body));
        return Ok(ExitCode::FAILURE);
    }
    print_run(&body);
    Ok(ExitCode::SUCCESS)
}

/// Polls the run's decisions and prints each new one until it finishes.
async fn follow(api: &Api, id: &str) -> anyhow::Result<ExitCode> {
    let mut after = 0_i64;
    let mut failures = 0;
    loop {
        let url = api.url(&format!("canary/v1/runs/{}?after={after}", segment(id)))?;
        let (status, body) = match api.send(api.client.get(url)).await {
            Ok(answer) => answer,
            // The controller restarting is not the canary failing.
            Err(e) if failures < 30 => {
                failures += 1;
                eprintln!("(controller unreachable, retrying: {e})");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        failures = 0;
        if status != 200 {
            anyhow::bail!("{}", refusal(status, &body));
        }
        for d in body["decisions"].as_array().into_iter().flatten() {
            print_decision(d);
            after = after.max(d["seq"].as_i64().unwrap_or(after));
        }
        match body["run"]["phase"].as_str() {
            Some("promoted") => return Ok(ExitCode::SUCCESS),
            Some("rolled_back") | Some("aborted") => return Ok(ExitCode::FAILURE),
            Some("paused") => {
                println!("paused: decide with `reliable canary promote {id}` or `reliable canary abort {id}`");
                return Ok(ExitCode::from(3));
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

fn print_run(run: &Value) {
    println!(
        "{}  {}  {}  step {} at {}%  {}",
        run["id"].as_str().unwrap_or("?"),
        run["target"].as_str().unwrap_or("?"),
        run["phase"].as_str().unwrap_or("?"),
        run["step"].as_u64().map_or(0, |s| s + 1),
        run["weight"],
        run["reason"].as_str().unwrap_or("")
    );
}

fn print_decision(d: &Value) {
    println!(
        "{}  {:>5}%  {:<8} {}",
        d["at"].as_str().unwrap_or("?"),
        d["weight"],
        d["action"].as_str().unwrap_or("?"),
        d["summary"].as_str().unwrap_or("")
    );
    for m in d["judgement"]["metrics"].as_array().into_iter().flatten() {
        println!(
            "          {:<12} {:<24} {}",
            m["verdict"].as_str().unwrap_or("?"),
            m["slo"].as_str().unwrap_or("?"),
            m["evidence"].as_str().unwrap_or("")
        );
    }
    if let Some(guard) = d["judgement"]["guard"].as_str() {
        println!("          guard        {guard}");
    }
}
