//! Routing each span to its module's `service.name` (see the design in
//! the parent module's doc): [`ModuleSlot`] rides in the OpenTelemetry
//! `Context` of an entry span and its children, [`ModuleTagger`] copies it
//! onto each span at start, and [`ModuleExporter`] splits every batch by
//! module and exports each part under its module's Resource.

use super::TelemetryError;
use opentelemetry::trace::Span as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The span attribute that carries the module from span start to export;
/// the exporter removes it (the Resource says it).
pub(crate) const MODULE_KEY: &str = "reliable.module";

/// The module a span and its descendants belong to. Shared, so that an
/// HTTP request can name its module once the router has matched a route,
/// after its server span started.
#[derive(Debug, Clone)]
pub(crate) struct ModuleSlot(Arc<Slot>);

#[derive(Debug)]
struct Slot {
    /// The module until [`ModuleSlot::name`] says otherwise.
    default: &'static str,
    named: OnceLock<&'static str>,
}

impl ModuleSlot {
    pub(crate) fn new(default: &'static str) -> Self {
        Self(Arc::new(Slot {
            default,
            named: OnceLock::new(),
        }))
    }

    /// Names the module; only the first call counts.
    pub(crate) fn name(&self, module: &'static str) {
        let _ = self.0.named.set(module);
    }

    pub(crate) fn get(&self) -> &'static str {
        self.0.named.get().copied().unwrap_or(self.0.default)
    }
}

/// Tags each span, as it starts, with the module in its parent context.
#[derive(Debug)]
pub(crate) struct ModuleTagger;

impl SpanProcessor for ModuleTagger {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if let Some(module) = cx.get::<ModuleSlot>() {
            span.set_attribute(KeyValue::new(MODULE_KEY, module.get()));
        }
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

type BuildExporter<E> = Box<dyn Fn() -> Result<E, String> + Send + Sync>;

/// Exports each batch as one export per module, each through an exporter
/// whose Resource is the provider's with `service.name` set to the module.
pub(crate) struct ModuleExporter<E> {
    /// The module of untagged spans (the process's own name).
    default: &'static str,
    build: BuildExporter<E>,
    /// Built at start to fail early on bad settings; the first module to
    /// export takes it.
    spare: Mutex<Option<E>>,
    /// The provider's Resource (environment attributes, SDK attributes).
    base: Resource,
    by_module: Mutex<HashMap<String, Arc<E>>>,
}

impl<E> fmt::Debug for ModuleExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleExporter")
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl<E: SpanExporter + 'static> ModuleExporter<E> {
    pub(crate) fn new(
        default: &'static str,
        build: impl Fn() -> Result<E, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let spare = build()?;
        Ok(Self {
            default,
            build: Box::new(build),
            spare: Mutex::new(Some(spare)),
            base: Resource::builder_empty().build(),
            by_module: Mutex::new(HashMap::new()),
        })
    }

    fn exporter_of(&self, module: &str) -> Result<Arc<E>, OTelSdkError> {
        let mut by_module = self.by_module.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(exporter) = by_module.get(module) {
            return Ok(exporter.clone());
        }
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut exporter = match spare {
            Some(exporter) => exporter,
            None => (self.build)().map_err(OTelSdkError::InternalFailure)?,
        };
        exporter.set_resource(&self.resource_of(module));
        let exporter = Arc::new(exporter);
        by_module.insert(module.to_string(), exporter.clone());
        Ok(exporter)
    }

    fn resource_of(&self, module: &str) -> Resource {
        let inherited = self
            .base
            .iter()
            .filter(|(key, _)| key.as_str() != "service.name")
            .map(|(key, value)| KeyValue::new(key.clone(), value.clone()));
        Resource::builder_empty()
            .with_attributes(inherited)
            .with_service_name(module.to_string())
            .build()
    }

    fn every_exporter(&self) -> Vec<Arc<E>> {
        self.by_module
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Splits `batch` by module (the last tag wins: a server span is
/// re-tagged when its route is known), removing the tag; order is kept.
pub(crate) fn by_module(batch: Vec<SpanData>, default: &str) -> Vec<(String, Vec<SpanData>)> {
    let mut groups: Vec<(String, Vec<SpanData>)> = Vec::new();
    for mut span in batch {
        let mut module = None;
        span.attributes.retain(|kv| {
            if kv.key.as_str() == MODULE_KEY {
                module = Some(kv.value.as_str().into_owned());
                false
            } else {
                true
            }
        });
        let module = module.unwrap_or_else(|| default.to_string());
        match groups.iter_mut().find(|(m, _)| *m == module) {
            Some((_, spans)) => spans.push(span),
            None => groups.push((module, vec![span])),
        }
    }
    groups
}

impl<E: SpanExporter + 'static> SpanExporter for ModuleExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut result = Ok(());
        for (module, spans) in by_module(batch, self.default) {
            let exported = match self.exporter_of(&module) {
                Ok(exporter) => exporter.export(spans).await,
                Err(e) => Err(e),
            };
            if exported.is_err() && result.is_ok() {
                result = exported;
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let mut result = Ok(());
        for exporter in self.every_exporter() {
            let done = exporter.shutdown_with_timeout(timeout);
            if done.is_err() && result.is_ok() {
                result = done;
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut result = Ok(());
        for exporter in self.every_exporter() {
            let done = exporter.force_flush();
            if done.is_err() && result.is_ok() {
                result = done;
            }
        }
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.base = resource.clone();
    }
}

/// The tracer provider: module tagging, then batched export per module.
pub(super) fn provider(service: &'static str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = ModuleExporter::new(service, || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| e.to_string())
    })
    .map_err(TelemetryError::Exporter)?;
    Ok(SdkTracerProvider::builder()
        .with_span_processor(ModuleTagger)
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
