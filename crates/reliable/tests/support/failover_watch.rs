//! Watching a failover from outside while a drill runs: every gateway's
//! `ratelimit_degraded` gauge (when global limiting was lost, when it came
//! back) and the deployment's promotion of a new master, in unix ms, so a
//! drill's table can say how long decisions were not global and how long
//! after the promotion they were again. Both watchers are tracked and
//! stopped by [`Watch::finish`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When global limiting was lost and came back, and when the deployment
/// promoted a new master, as this harness saw it (unix ms).
#[derive(Default, Debug)]
pub struct Timeline {
    pub first_degraded: Option<u64>,
    pub last_recovered: Option<u64>,
    pub promoted: Option<u64>,
}

/// Watches `ratelimit_degraded` on every gateway and `promoted()` on the
/// deployment until [`Watch::finish`].
pub struct Watch {
    stop: Arc<AtomicBool>,
    timeline: Arc<Mutex<Timeline>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watch {
    pub fn start(metrics: Vec<String>, promoted: impl Fn() -> bool + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let (s, t) = (stop.clone(), timeline.clone());
        let gauges = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut was_degraded = false;
            while !s.load(Ordering::Acquire) {
                // A round where a gateway did not answer says nothing.
                let mut degraded = Some(false);
                for url in &metrics {
                    let text = match http.get(url).timeout(Duration::from_secs(2)).send().await {
                        Ok(response) => response.text().await.ok(),
                        Err(_) => None,
                    };
                    let Some(text) = text.filter(|t| t.contains("ratelimit_degraded")) else {
                        degraded = None;
                        break;
                    };
                    if text.lines().any(|l| {
                        l.starts_with("ratelimit_degraded") && l.trim_end().ends_with(" 1")
                    }) {
                        degraded = Some(true);
                    }
                }
                let Some(degraded) = degraded else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                {
                    let mut timeline = t.lock().expect("timeline");
                    if degraded && timeline.first_degraded.is_none() {
                        timeline.first_degraded = Some(now_ms());
                    }
                    if was_degraded && !degraded {
                        timeline.last_recovered = Some(now_ms());
                    }
                }
                was_degraded = degraded;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let (s, t) = (stop.clone(), timeline.clone());
        let promotion = tokio::task::spawn_blocking(move || {
            while !s.load(Ordering::Acquire) {
                if promoted() {
                    t.lock().expect("timeline").promoted = Some(now_ms());
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self {
            stop,
            timeline,
            tasks: vec![gauges, promotion],
        }
    }

    pub async fn finish(self) -> Timeline {
        self.stop.store(true, Ordering::Release);
        for task in self.tasks {
            task.await.expect("watch");
        }
        let mut timeline = self.timeline.lock().expect("timeline");
        std::mem::take(&mut *timeline)
    }
}
