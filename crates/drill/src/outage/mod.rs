//! `reliable drill outage`: a game day that measures the platform's own
//! incident loop (fault, page, fix, resolve) in one process.
//!
//! Why a simulated clock: the page alert of a 99.9 % / 30-day SLO reads a
//! 1 h and a 6 h window, the ticket 1 d and 3 d, so a faithful drill needs
//! hours of history. The drill runs the real modules (shortener, orders)
//! under real generated load (`crates/load`), and evaluates the real rules
//! (`slo::eval::Evaluator` over the platform's specs, the ones `reliable
//! up` evaluates) tick by tick; only the time between two evaluations is
//! compressed: each tick lets exactly `tick_requests` requests through
//! (the traffic of the live evaluator's 10 s tick) and then moves a manual
//! clock 10 s. The SLIs are ratios of counters, so the same requests in
//! less real time give the same windows, burn rates and alert times.
//!
//! - [`mod@self`]: what to run ([`OutageDrill`], parsed once from the
//!   command line's words) and the refusals ([`InputError`]);
//! - `stage`: the modules, the fault switch and the load;
//! - `gate`: lets each tick's requests through, kind by kind;
//! - `run`: steady state, fault, removal, measured per scenario;
//! - `report`: the table, the window arithmetic, the change event.

mod gate;
mod report;
mod run;
mod stage;

pub use report::{arithmetic, change_event, expected_page_seconds, table};
pub use run::{run, Row};

use serde::Serialize;
use std::time::Duration;

/// The live evaluator's tick (`slo.tick`'s default in `reliable up`).
pub const TICK: Duration = Duration::from_secs(10);

/// A module the drill runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    Shortener,
    Orders,
}

impl Module {
    pub const ALL: [Module; 2] = [Module::Shortener, Module::Orders];

    pub fn name(self) -> &'static str {
        match self {
            Module::Shortener => "shortener",
            Module::Orders => "orders",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == text)
    }
}

/// A dependency the drill makes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The orders database unreachable: its pool closed under load.
    OrdersDb,
    /// The shortener answering a share of 500s through the fault switch.
    ShortenerErrors,
    /// Added latency on the shortener's answers.
    Latency,
}

impl FaultKind {
    pub const ALL: [FaultKind; 3] = [
        FaultKind::OrdersDb,
        FaultKind::ShortenerErrors,
        FaultKind::Latency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::OrdersDb => "orders-db",
            FaultKind::ShortenerErrors => "shortener-errors",
            FaultKind::Latency => "latency",
        }
    }

    /// The module that must be running for the fault to mean anything.
    pub fn module(self) -> Module {
        match self {
            FaultKind::OrdersDb => Module::Orders,
            FaultKind::ShortenerErrors | FaultKind::Latency => Module::Shortener,
        }
    }

    /// The SLO (`service-name`) whose alerts measure it.
    pub fn slo_id(self) -> &'static str {
        match self {
            FaultKind::OrdersDb => "orders-create-success",
            FaultKind::ShortenerErrors => "shortener-redirect-availability",
            FaultKind::Latency => "shortener-redirect-latency",
        }
    }
}

/// One fault, at one strength.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scenario {
    pub fault: FaultKind,
    /// `shortener-errors`: the share of 500s.
    pub error_ratio: Option<f64>,
    /// `latency`: added to every redirect.
    #[serde(rename = "latency_seconds", serialize_with = "seconds")]
    pub latency: Option<Duration>,
}

fn seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Scenario {
    /// The table's name of it.
    pub fn name(&self) -> String {
        match (self.fault, self.error_ratio, self.latency) {
            (FaultKind::ShortenerErrors, Some(r), _) if r >= 1.0 => "full outage".into(),
            (FaultKind::ShortenerErrors, Some(r), _) => format!("{} errors", percent(r)),
            (FaultKind::OrdersDb, _, _) => "orders db unreachable".into(),
            (FaultKind::Latency, _, Some(l)) => {
                format!("latency +{}", humantime::format_duration(l))
            }
            (fault, _, _) => fault.name().into(),
        }
    }

    /// `shortener-errors 10%`.
    pub fn fault_label(&self) -> String {
        match (self.error_ratio, self.latency) {
            (Some(r), _) => format!("{} {}", self.fault.name(), percent(r)),
            (_, Some(l)) => format!("{} +{}", self.fault.name(), humantime::format_duration(l)),
            _ => self.fault.name().to_string(),
        }
    }

    /// The share of the SLO's events the fault makes bad, when known in
    /// advance (the latency fault's share depends on the threshold).
    pub fn bad_share(&self) -> Option<f64> {
        match self.fault {
            FaultKind::ShortenerErrors => self.error_ratio,
            FaultKind::OrdersDb => Some(1.0),
            FaultKind::Latency => None,
        }
    }
}

fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{}%", p.round())
    } else {
        format!("{p}%")
    }
}

/// How the drill runs; build it with [`OutageDrill::parse`].
#[derive(Debug, Clone)]
pub struct OutageDrill {
    pub modules: Vec<Module>,
    pub scenarios: Vec<Scenario>,
    /// Requests let through per tick (the traffic of 10 s).
    pub tick_requests: u32,
    /// Simulated steady state before each fault.
    pub steady: Duration,
    /// Longest simulated fault: it is removed once its alerts fired, or then.
    pub max_fault: Duration,
    /// Longest simulated wait for the alerts to resolve after removal.
    pub max_recovery: Duration,
    /// Whether a missed goal is an error exit.
    pub fail_on_goal: bool,
}

/// What the command line said, before checking.
#[derive(Debug, Clone)]
pub struct OutageRequest {
    pub modules: Vec<String>,
    pub faults: Vec<String>,
    pub error_ratios: Vec<f64>,
    pub latency: Option<Duration>,
    pub tick_requests: u32,
    pub steady: Duration,
    pub max_fault: Duration,
    pub max_recovery: Duration,
    pub fail_on_goal: bool,
}

/// Requests per tick by default: 5 requests a second, simulated.
pub const DEFAULT_TICK_REQUESTS: u32 = 50;
/// The longest page window, so the page arithmetic holds.
pub const DEFAULT_STEADY: Duration = Duration::from_secs(6 * 3600);
/// The default share of errors for `shortener-errors`.
pub const DEFAULT_ERROR_RATIO: f64 = 0.3;
/// Added latency by default: well past the redirect SLO's 100 ms.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(250);
/// The measured set when no `--fault` is given: full outage, 10 %, 2 %.
pub const DEFAULT_RATIOS: [f64; 3] = [1.0, 0.1, 0.02];

impl Default for OutageRequest {
    fn default() -> Self {
        Self {
            modules: Vec::new(),
            faults: Vec::new(),
            error_ratios: Vec::new(),
            latency: None,
            tick_requests: DEFAULT_TICK_REQUESTS,
            steady: DEFAULT_STEADY,
            max_fault: Duration::from_secs(6 * 3600),
            max_recovery: Duration::from_secs(6 * 3600),
            fail_on_goal: false,
        }
    }
}

/// A request the drill refuses before starting anything.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("unknown fault `{0}`: expected orders-db, shortener-errors, latency or all")]
    UnknownFault(String),
    #[error("unknown module `{0}`: expected shortener or orders")]
    UnknownModule(String),
    #[error("the {module} module is not running in this drill; add it to --modules (e.g. --modules shortener,orders) or drop --fault {fault}")]
    ModuleNotRunning {
        fault: &'static str,
        module: &'static str,
    },
    #[error("--error-ratio {0} is outside (0, 1]")]
    Ratio(f64),
    #[error("--error-ratio applies to the shortener-errors fault, which this drill does not run")]
    RatioWithoutErrors,
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    #[error("--steady must be at least 1h: the page alert reads a 1 h window")]
    SteadyTooShort,
    #[error("--tick-requests must be between 2 and 10000, got {0}")]
    TickRequests(u32),
}

impl OutageDrill {
    /// Checks the request; nothing is started.
    pub fn parse(request: &OutageRequest) -> Result<Self, InputError> {
        let mut modules = Vec::new();
        for name in &request.modules {
            let module =
                Module::parse(name).ok_or_else(|| InputError::UnknownModule(name.clone()))?;
            if !modules.contains(&module) {
                modules.push(module);
            }
        }
        if modules.is_empty() {
            modules = Module::ALL.to_vec();
        }
        modules.sort();
        let mut faults = Vec::new();
        for name in &request.faults {
            let named: Vec<FaultKind> = if name == "all" {
                FaultKind::ALL.to_vec()
            } else {
                let fault = FaultKind::ALL
                    .into_iter()
                    .find(|f| f.name() == name)
                    .ok_or_else(|| InputError::UnknownFault(name.clone()))?;
                vec![fault]
            };
            for fault in named {
                if !faults.contains(&fault) {
                    faults.push(fault);
                }
            }
        }
        for ratio in &request.error_ratios {
            if !(ratio.is_finite() && *ratio > 0.0 && *ratio <= 1.0) {
                return Err(InputError::Ratio(*ratio));
            }
        }
        for (flag, d) in [
            ("--steady", request.steady),
            ("--max-fault", request.max_fault),
            ("--max-recovery", request.max_recovery),
        ] {
            if d.is_zero() {
                return Err(InputError::ZeroDuration(flag));
            }
        }
        if request.latency.is_some_and(|l| l.is_zero()) {
            return Err(InputError::ZeroDuration("--latency"));
        }
        if request.steady < Duration::from_secs(3600) {
            return Err(InputError::SteadyTooShort);
        }
        if !(2..=10_000).contains(&request.tick_requests) {
            return Err(InputError::TickRequests(request.tick_requests));
        }
        let defaulted = faults.is_empty();
        if defaulted {
            faults = FaultKind::ALL
                .into_iter()
                .filter(|f| *f != FaultKind::Latency && modules.contains(&f.module()))
                .collect();
        }
        for fault in &faults {
            if !modules.contains(&fault.module()) {
                return Err(InputError::ModuleNotRunning {
                    fault: fault.name(),
                    module: fault.module().name(),
                });
            }
        }
        if !request.error_ratios.is_empty() && !faults.contains(&FaultKind::ShortenerErrors) {
            return Err(InputError::RatioWithoutErrors);
        }
        let ratios = match (&request.error_ratios[..], defaulted) {
            ([], true) => DEFAULT_RATIOS.to_vec(),
            ([], false) => vec![DEFAULT_ERROR_RATIO],
            (given, _) => given.to_vec(),
        };
        let mut scenarios = Vec::new();
        for fault in faults {
            match fault {
                FaultKind::ShortenerErrors => scenarios.extend(ratios.iter().map(|r| Scenario {
                    fault,
                    error_ratio: Some(*r),
                    latency: None,
                })),
                FaultKind::OrdersDb => scenarios.push(Scenario {
                    fault,
                    error_ratio: None,
                    latency: None,
                }),
                FaultKind::Latency => scenarios.push(Scenario {
                    fault,
                    error_ratio: None,
                    latency: Some(request.latency.unwrap_or(DEFAULT_LATENCY)),
                }),
            }
        }
        Ok(Self {
            modules,
            scenarios,
            tick_requests: request.tick_requests,
            steady: request.steady,
            max_fault: request.max_fault,
            max_recovery: request.max_recovery,
            fail_on_goal: request.fail_on_goal,
        })
    }
}

#[cfg(test)]
mod tests;
