//! Memory a module holds, by module and component, for cost attribution
//! (docs/operations/cost.md): `reliable_memory_bytes{module,component}`.
//!
//! Every module shares one process, so its resident memory (RSS) cannot be
//! split by reading the operating system. What can be measured is what a
//! module keeps on purpose: a cache's entries, a model's weights. A module
//! registers each such part once and either sets its figure when it
//! changes ([`MemoryGauge::set`]) or gives a function read on every render
//! of `/metrics` ([`measured`]). The cost report counts RSS less the sum of
//! these as shared memory.
//!
//! A registration lasts as long as its handle: dropping it (a module
//! stopped, a test's app gone) takes it out. Two live registrations of the
//! same labels (two instances of a module in one test process) are summed.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The gauge's name.
pub const MEMORY_BYTES: &str = "reliable_memory_bytes";

type Reader = dyn Fn() -> u64 + Send + Sync;

struct Part {
    module: &'static str,
    component: &'static str,
    read: Weak<Reader>,
}

/// Every registered part of the process.
#[derive(Default)]
pub struct MemoryParts {
    parts: Mutex<Vec<Part>>,
}

/// One (module, component)'s bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentMemory {
    pub module: &'static str,
    pub component: &'static str,
    pub bytes: u64,
}

/// Keeps a part registered; dropping it takes the part out.
#[must_use = "the part is reported only while its registration is kept"]
pub struct MemoryRegistration {
    _read: Arc<Reader>,
}

/// A part whose figure the module sets when it changes.
#[must_use = "the part is reported only while its gauge is kept"]
pub struct MemoryGauge {
    bytes: Arc<AtomicU64>,
    _registration: MemoryRegistration,
}

impl MemoryGauge {
    pub fn set(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl MemoryParts {
    /// Registers `read`, called on every render.
    pub fn register(
        &self,
        module: &'static str,
        component: &'static str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> MemoryRegistration {
        let read: Arc<Reader> = Arc::new(read);
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts.retain(|p| p.read.strong_count() > 0);
        parts.push(Part {
            module,
            component,
            read: Arc::downgrade(&read),
        });
        MemoryRegistration { _read: read }
    }

    /// Registers a gauge at zero, for the module to set.
    pub fn gauge(&self, module: &'static str, component: &'static str) -> MemoryGauge {
        let bytes = Arc::new(AtomicU64::new(0));
        let read = bytes.clone();
        MemoryGauge {
            _registration: self.register(module, component, move || read.load(Ordering::Relaxed)),
            bytes,
        }
    }

    /// Every live part's figure, summed by labels, sorted.
    pub fn snapshot(&self) -> Vec<ComponentMemory> {
        let readers: Vec<(&'static str, &'static str, Arc<Reader>)> = {
            let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            parts.retain(|p| p.read.strong_count() > 0);
            parts
                .iter()
                .filter_map(|p| Some((p.module, p.component, p.read.upgrade()?)))
                .collect()
        };
        // Read outside the lock: a reader may take its own locks.
        let mut all: Vec<ComponentMemory> = Vec::new();
        for (module, component, read) in readers {
            let bytes = read();
            match all
                .iter_mut()
                .find(|c| c.module == module && c.component == component)
            {
                Some(found) => found.bytes = found.bytes.saturating_add(bytes),
                None => all.push(ComponentMemory {
                    module,
                    component,
                    bytes,
                }),
            }
        }
        all.sort_by_key(|c| (c.module, c.component));
        all
    }

    /// The gauges in Prometheus text format.
    pub fn render_into(&self, out: &mut String) {
        let all = self.snapshot();
        if all.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP {MEMORY_BYTES} Memory a module holds that can be measured (caches, model weights), by module and component; the rest of the resident memory is shared\n# TYPE {MEMORY_BYTES} gauge"
        );
        for part in all {
            // Module and component names are the platform's own
            // identifiers: nothing to escape.
            let _ = writeln!(
                out,
                "{MEMORY_BYTES}{{module=\"{}\",component=\"{}\"}} {}",
                part.module, part.component, part.bytes
            );
        }
    }
}

/// The process's parts.
pub fn parts() -> &'static MemoryParts {
    static PARTS: OnceLock<MemoryParts> = OnceLock::new();
    PARTS.get_or_init(MemoryParts::default)
}

/// Registers `read` in the process's parts, read on every `/metrics`.
pub fn measured(
    module: &'static str,
    component: &'static str,
    read: impl Fn() -> u64 + Send + Sync + 'static,
) -> MemoryRegistration {
    parts().register(module, component, read)
}

/// A gauge in the process's parts, for the module to set.
pub fn gauge(module: &'static str, component: &'static str) -> MemoryGauge {
    parts().gauge(module, component)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_summed_by_labels_and_leave_when_dropped() {
        let parts = MemoryParts::default();
        let cache = parts.gauge("shortener", "link_cache");
        cache.set(4096);
        let second = parts.gauge("shortener", "link_cache");
        second.set(1024);
        let entries = Arc::new(AtomicU64::new(3));
        let read = entries.clone();
        let weights = parts.register("inference", "model_weights", move || {
            read.load(Ordering::Relaxed) * 100
        });
        entries.store(5, Ordering::Relaxed);
        let mut out = String::new();
        parts.render_into(&mut out);
        assert!(out.contains("# TYPE reliable_memory_bytes gauge"), "{out}");
        assert!(
            out.contains(
                "reliable_memory_bytes{module=\"shortener\",component=\"link_cache\"} 5120\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "reliable_memory_bytes{module=\"inference\",component=\"model_weights\"} 500\n"
            ),
            "read at render time: {out}"
        );
        drop(second);
        drop(weights);
        assert_eq!(
            parts.snapshot(),
            vec![ComponentMemory {
                module: "shortener",
                component: "link_cache",
                bytes: 4096
            }]
        );
        drop(cache);
        let mut out = String::new();
        parts.render_into(&mut out);
        assert_eq!(out, "", "nothing registered, nothing rendered");
    }
}
