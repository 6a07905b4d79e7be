//! The compute pool: a fixed set of threads that run models.
//!
//! Models are CPU-bound and some are slow; run on the async workers they
//! would stall every other request of the process. The pool's queue is
//! bounded, so a backlog pushes back on the batchers (whose own bounded
//! queues then answer 503) instead of growing. A panic inside a model is
//! caught: the batch's callers get an error, the thread lives on.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct ComputePool {
    sender: Mutex<Option<flume::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the compute pool is stopped")]
pub struct Stopped;

impl ComputePool {
    /// `size` threads (at least one), and a queue of twice as many jobs.
    pub fn new(size: usize) -> std::io::Result<Self> {
        let size = size.max(1);
        let (sender, receiver) = flume::bounded::<Job>(size * 2);
        let mut threads = Vec::with_capacity(size);
        for i in 0..size {
            let receiver = receiver.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("inference-{i}"))
                    .spawn(move || {
                        while let Ok(job) = receiver.recv() {
                            if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                                tracing::error!("a model panicked; its batch failed");
                            }
                        }
                    })?,
            );
        }
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            threads: Mutex::new(threads),
        })
    }

    /// Queues `job`, waiting while the queue is full.
    pub async fn execute(&self, job: impl FnOnce() + Send + 'static) -> Result<(), Stopped> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Stopped)?;
        sender.send_async(Box::new(job)).await.map_err(|_| Stopped)
    }

    /// Lets the queued jobs finish, then joins the threads.
    pub fn shutdown(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panic() {
        let pool = ComputePool::new(2).unwrap();
        pool.execute(|| panic!("model bug")).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        pool.execute(move || {
            let _ = tx.send(std::thread::current().name().map(str::to_string));
        })
        .await
        .unwrap();
        let name = rx.await.unwrap().unwrap();
        assert!(name.starts_with("inference-"));
        pool.shutdown();
        assert!(pool.execute(|| {}).await.is_err());
    }
}
