//! What each action type does. Toxics and proxies are changed only
//! through toxiproxy's HTTP API (`reliable chaos proxy` or a real
//! toxiproxy). Processes the experiment starts and files it writes are
//! its own: they are stopped and removed at the end of the run, after the
//! rollbacks, whatever happened.

use super::model::*;
use super::pids;
use super::probes::{describe, send};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// A process started by `process.start`.
struct Owned {
    spec: ProcessStart,
    child: tokio::process::Child,
}

/// The state actions share during a run.
pub struct Actors {
    http: reqwest::Client,
    processes: tokio::sync::Mutex<HashMap<String, Owned>>,
    files: Mutex<Vec<PathBuf>>,
}

impl Actors {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            processes: tokio::sync::Mutex::new(HashMap::new()),
            files: Mutex::new(Vec::new()),
        }
    }

    /// Runs one action; `Ok` carries a short note for the journal.
    pub async fn run(&self, action: &ActionSpec) -> Result<String, String> {
        match action {
            ActionSpec::ToxicAdd(add) => self.toxic_add(add).await,
            ActionSpec::ToxicUpdate(update) => self.toxic_update(update).await,
            ActionSpec::ToxicRemove(remove) => self.toxic_remove(remove).await,
            ActionSpec::ProxyUpdate(update) => self.proxy_update(update).await,
            ActionSpec::ProcessStart(start) => self.start(start).await,
            ActionSpec::ProcessSignal(signal) => self.signal(signal).await,
            ActionSpec::ProcessRestart(restart) => self.restart(restart).await,
            ActionSpec::DiskFill(fill) => self.fill(fill).await,
            ActionSpec::Http(request) => self.http(request).await,
            ActionSpec::Pause(pause) => {
                tokio::time::sleep(pause.duration.0).await;
                Ok(format!(
                    "paused {}",
                    humantime::format_duration(pause.duration.0)
                ))
            }
        }
    }

    async fn api(
        &self,
        method: &str,
        url: String,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, String), String> {
        let response = send(
            &self.http,
            method,
            &url,
            &Default::default(),
            body.as_ref(),
            None,
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| format!("toxiproxy API {url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, text))
    }

    async fn toxic_add(&self, add: &ToxicAdd) -> Result<String, String> {
        let api = add.api.as_deref().unwrap_or_default().trim_end_matches('/');
        let body = serde_json::json!({
            "name": add.toxic.name,
            "type": add.toxic.kind,
            "stream": add.toxic.stream.as_str(),
            "toxicity": add.toxic.toxicity.unwrap_or(1.0),
            "attributes": add.toxic.attributes,
        });
        let url = format!("{api}/proxies/{}/toxics", add.proxy);
        match self.api("POST", url, Some(body)).await? {
            (200..=299, _) => Ok(format!(
                "toxic `{}` ({}) on proxy `{}`",
                add.toxic.name, add.toxic.kind, add.proxy
            )),
            (status, text) => Err(format!(
                "adding toxic `{}` to `{}`: {status} {}",
                add.toxic.name,
                add.proxy,
                text.trim()
            )),
        }
    }

    async fn toxic_update(&self, update: &ToxicAdd) -> Result<String, String> {
        let api = update
            .api
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/');
        let body = serde_json::json!({
            "toxicity": update.toxic.toxicity.unwrap_or(1.0),
            "attributes": update.toxic.attributes,
        });
        let url = format!(
            "{api}/proxies/{}/toxics/{}",
            update.proxy, update.toxic.name
        );
        match self.api("POST", url, Some(body)).await? {
            (200..=299, _) => Ok(format!(
                "toxic `{}` on `{}` updated",
                update.toxic.name, update.proxy
            )),
            (status, text) => Err(format!(
                "updating toxic `{}` on `{}`: {status} {}",
                update.toxic.name,
                update.proxy,
                text.trim()
            )),
        }
    }

    async fn toxic_remove(&self, remove: &ToxicRemove) -> Result<String, String> {
        let api = remove
            .api
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/');
        let url = format!("{api}/proxies/{}/toxics/{}", remove.proxy, remove.toxic);
        match self.api("DELETE", url, None).await? {
            (200..=299, _) => Ok(format!(
                "toxic `{}` removed from `{}`",
                remove.toxic, remove.proxy
            )),
            (404, _) => Ok(format!(
                "toxic `{}` was not on `{}`",
                remove.toxic, remove.proxy
            )),
            (status, text) => Err(format!(
                "removing toxic `{}`: {status} {}",
                remove.toxic,
                text.trim()
            )),
        }
    }

    async fn proxy_update(&self, update: &ProxyUpdate) -> Result<String, String> {
        let api = update
            .api
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/');
        let mut body = serde_json::Map::new();
        if let Some(enabled) = update.enabled {
            body.insert("enabled".into(), enabled.into());
        }
        if let Some(upstream) = &update.upstream {
            body.insert("upstream".into(), upstream.clone().into());
        }
        if let Some(listen) = &update.listen {
            body.insert("listen".into(), listen.clone().into());
        }
        let note = serde_json::Value::Object(body.clone()).to_string();
        let url = format!("{api}/proxies/{}", update.proxy);
        match self.api("POST", url, Some(body.into())).await? {
            (200..=299, _) => Ok(format!("proxy `{}` now {note}", update.proxy)),
            (status, text) => Err(format!(
                "updating proxy `{}`: {status} {}",
                update.proxy,
                text.trim()
            )),
        }
    }

    async fn start(&self, start: &ProcessStart) -> Result<String, String> {
        let owned = spawn(start)?;
        let pid = owned.child.id().unwrap_or(0);
        let mut processes = self.processes.lock().await;
        if let Some(mut previous) = processes.insert(start.process.clone(), owned) {
            stop(&mut previous.child).await;
        }
        let owned = processes
            .get_mut(&start.process)
            .ok_or("process vanished")?;
        wait_ready(&self.http, owned).await?;
        Ok(format!("`{}` started (pid {pid})", start.process))
    }

    async fn signal(&self, signal: &ProcessSignal) -> Result<String, String> {
        let mut target = String::new();
        let pid = match (&signal.process, &signal.pidfile) {
            (Some(name), _) => {
                let processes = self.processes.lock().await;
                let owned = processes
                    .get(name)
                    .ok_or_else(|| format!("no process `{name}`"))?;
                owned
                    .child
                    .id()
                    .ok_or_else(|| format!("`{name}` has already exited"))?
            }
            (None, Some(pidfile)) => {
                let (pid, pidfile) =
                    pids::read_pidfile(&self.http, pidfile, signal.item.as_ref()).await?;
                target = format!(" ({pidfile})");
                pid
            }
            (None, None) => return Err("no process named".into()),
        };
        send_signal(pid, signal.signal)?;
        let Some(wait) = signal.wait else {
            return Ok(format!("{:?} sent to pid {pid}{target}", signal.signal));
        };
        let started = Instant::now();
        while pids::is_running(pid) {
            if started.elapsed() > wait.0 {
                return Err(format!(
                    "pid {pid}{target} still runs {} after {:?}",
                    humantime::format_duration(wait.0),
                    signal.signal
                ));
            }
            // Polling the process table, not waiting for time to pass.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(format!(
            "{:?} sent to pid {pid}{target}; exited after {} ms",
            signal.signal,
            started.elapsed().as_millis()
        ))
    }

    async fn restart(&self, restart: &ProcessRestart) -> Result<String, String> {
        let mut processes = self.processes.lock().await;
        let owned = processes
            .get_mut(&restart.process)
            .ok_or_else(|| format!("no process `{}`", restart.process))?;
        let signal = restart.signal.unwrap_or(SignalName::Term);
        if let Some(pid) = owned.child.id() {
            send_signal(pid, signal)?;
        }
        if tokio::time::timeout(Duration::from_secs(30), owned.child.wait())
            .await
            .is_err()
        {
            stop(&mut owned.child).await;
        }
        let spec = owned.spec.clone();
        *owned = spawn(&spec)?;
        wait_ready(&self.http, owned).await?;
        Ok(format!("`{}` restarted after {signal:?}", restart.process))
    }

    async fn fill(&self, fill: &DiskFill) -> Result<String, String> {
        let path = PathBuf::from(&fill.dir).join(fill.file.as_deref().unwrap_or("chaos-fill"));
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(path.clone());
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        while written < fill.bytes {
            let n = (fill.bytes - written).min(chunk.len() as u64) as usize;
            if let Err(e) = file.write_all(&chunk[..n]).await {
                // A full disk or quota is what this action is for.
                return Ok(format!("{} full after {written} bytes: {e}", fill.dir));
            }
            written += n as u64;
        }
        if let Err(e) = file.sync_all().await {
            return Ok(format!("{} full after {written} bytes: {e}", fill.dir));
        }
        Ok(format!("{written} bytes written to {}", path.display()))
    }

    async fn http(&self, request: &HttpAction) -> Result<String, String> {
        let timeout = request.timeout.map_or(Duration::from_secs(10), |d| d.0);
        let items = match &request.for_each {
            None => vec![None],
            Some(each) => {
                let response = send(
                    &self.http,
                    "GET",
                    &each.url,
                    &Default::default(),
                    None,
                    None,
                    timeout,
                )
                .await?;
                if !response.status().is_success() {
                    return Err(format!("{} answered {}", each.url, response.status()));
                }
                let body: serde_json::Value = response.json().await.map_err(|e| describe(&e))?;
                let list = body
                    .pointer(&each.items)
                    .and_then(|v| v.as_array())
                    .ok_or_else(|| format!("no list at `{}` in {}", each.items, each.url))?;
                list.iter()
                    .map(|item| {
                        item.pointer(&each.field)
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                            .map(Some)
                            .ok_or_else(|| format!("an item has nothing at `{}`", each.field))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let count = items.len();
        let mut failures = Vec::new();
        for item in items {
            let url = match &item {
                Some(item) => request.url.replace("{{item}}", item),
                None => request.url.clone(),
            };
            let method = request.method.as_deref().unwrap_or("POST");
            let outcome = send(
                &self.http,
                method,
                &url,
                &request.headers,
                request.json.as_ref(),
                request.body.as_deref(),
                timeout,
            )
            .await;
            match outcome {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let expected = if request.expect.is_empty() {
                        (200..300).contains(&status)
                    } else {
                        request.expect.contains(&status)
                    };
                    if !expected {
                        let text = response.text().await.unwrap_or_default();
                        failures.push(format!(
                            "{method} {url}: {status} {}",
                            text.chars().take(200).collect::<String>()
                        ));
                    }
                }
                Err(e) => failures.push(format!("{method} {url}: {e}")),
            }
        }
        if failures.is_empty() {
            Ok(format!("{count} request(s) answered as expected"))
        } else {
            Err(format!(
                "{} of {count} request(s) failed: {}",
                failures.len(),
                failures.join("; ")
            ))
        }
    }

    /// Stops the processes the run started and removes the files it wrote.
    pub async fn clean_up(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let mut processes = self.processes.lock().await;
        for (name, mut owned) in processes.drain() {
            stop(&mut owned.child).await;
            notes.push(format!("stopped `{name}`"));
        }
        let files = std::mem::take(&mut *self.files.lock().unwrap_or_else(PoisonError::into_inner));
        for path in files {
            match std::fs::remove_file(&path) {
                Ok(()) => notes.push(format!("removed {}", path.display())),
                Err(e) => notes.push(format!("could not remove {}: {e}", path.display())),
            }
        }
        notes
    }
}

fn spawn(start: &ProcessStart) -> Result<Owned, String> {
    let (program, args) = start.command.split_first().ok_or("empty command")?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .envs(&start.env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting `{program}`: {e}"))?;
    Ok(Owned {
        spec: start.clone(),
        child,
    })
}

async fn wait_ready(http: &reqwest::Client, owned: &mut Owned) -> Result<(), String> {
    let Some(url) = owned.spec.ready.clone() else {
        return Ok(());
    };
    let limit = owned
        .spec
        .ready_timeout
        .map_or(Duration::from_secs(60), |d| d.0);
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = owned.child.try_wait() {
            return Err(format!(
                "`{}` exited with {status} before it was ready",
                owned.spec.process
            ));
        }
        let ready = http.get(&url).timeout(Duration::from_secs(2)).send().await;
        if matches!(&ready, Ok(r) if r.status().is_success()) {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "`{}` not ready at {url} within {}",
                owned.spec.process,
                humantime::format_duration(limit)
            ));
        }
        // Polling a readiness endpoint, not waiting for time to pass.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, up to 10 s to exit, then SIGKILL.
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = send_signal(pid, SignalName::Cont);
        let _ = send_signal(pid, SignalName::Term);
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

fn send_signal(pid: u32, signal: SignalName) -> Result<(), String> {
    use rustix::process::{kill_process, Pid, Signal};
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    if raw <= 1 {
        return Err(format!("refusing to signal pid {raw}"));
    }
    let pid = Pid::from_raw(raw).ok_or_else(|| format!("pid {raw} is not a process"))?;
    let signal = match signal {
        SignalName::Kill => Signal::KILL,
        SignalName::Term => Signal::TERM,
        SignalName::Int => Signal::INT,
        SignalName::Hup => Signal::HUP,
        SignalName::Stop => Signal::STOP,
        SignalName::Cont => Signal::CONT,
    };
    kill_process(pid, signal).map_err(|e| format!("signalling pid {raw}: {e}"))
}
