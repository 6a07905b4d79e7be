//! The DAU helper: arrival rates derived from daily active users.
//!
//! Capacity plans start from users, not from "N concurrent users", and the
//! arithmetic from one to the other is where mistakes hide, so the helper
//! prints it before the run:
//!
//! ```text
//! writes/s average = users x actions_per_user_per_day / 86,400
//! peak             = average x peak_factor
//! viral            = average x spike_factor
//! reads            = writes x read_write_ratio
//! dau.X            = writes + reads of profile X
//! ```

/// Seconds in a day: the average spreads a day's actions evenly.
const SECONDS_PER_DAY: f64 = 86_400.0;

/// The file's `dau:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Dau {
    pub users: f64,
    pub actions_per_user_per_day: f64,
    /// Reads per write; 0 means a write-only model.
    pub read_write_ratio: f64,
    /// The busiest hour against the average; needed by `dau.peak`.
    pub peak_factor: Option<f64>,
    /// A viral spike against the average; needed by `dau.viral`.
    pub spike_factor: Option<f64>,
}

/// Which of the three traffic levels a rate names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Baseline,
    Peak,
    Viral,
}

impl Profile {
    /// `baseline`, `peak` or `viral`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "baseline" => Some(Profile::Baseline),
            "peak" => Some(Profile::Peak),
            "viral" => Some(Profile::Viral),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Baseline => "baseline",
            Profile::Peak => "peak",
            Profile::Viral => "viral",
        }
    }
}

/// One profile's rates, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfileRates {
    pub writes: f64,
    pub reads: f64,
}

impl ProfileRates {
    /// What `dau.X` means as a scenario rate.
    pub fn total(&self) -> f64 {
        self.writes + self.reads
    }
}

impl Dau {
    /// The first field that makes no sense, and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("users", Some(self.users)),
            (
                "actions_per_user_per_day",
                Some(self.actions_per_user_per_day),
            ),
            ("peak_factor", self.peak_factor),
            ("spike_factor", self.spike_factor),
        ];
        for (field, value) in positive {
            if let Some(value) = value {
                if !(value.is_finite() && value > 0.0) {
                    return Err((field, format!("must be a positive number, got {value}")));
                }
            }
        }
        if !(self.read_write_ratio.is_finite() && self.read_write_ratio >= 0.0) {
            return Err((
                "read_write_ratio",
                format!("must be zero or more, got {}", self.read_write_ratio),
            ));
        }
        Ok(())
    }

    /// Writes per second, averaged over a day.
    pub fn average_writes(&self) -> f64 {
        self.users * self.actions_per_user_per_day / SECONDS_PER_DAY
    }

    /// The profile's rates; the error names the missing factor.
    pub fn rates(&self, profile: Profile) -> Result<ProfileRates, String> {
        let factor = match profile {
            Profile::Baseline => 1.0,
            Profile::Peak => self.peak_factor.ok_or("dau.peak needs `dau.peak_factor`")?,
            Profile::Viral => self
                .spike_factor
                .ok_or("dau.viral needs `dau.spike_factor`")?,
        };
        let writes = self.average_writes() * factor;
        Ok(ProfileRates {
            writes,
            reads: writes * self.read_write_ratio,
        })
    }

    /// The arithmetic, as printed before the run.
    pub fn explain(&self) -> String {
        let average = self.average_writes();
        let mut line = format!(
            "{} users x {}/day = {} writes/day = {}/s average",
            count(self.users),
            count(self.actions_per_user_per_day),
            count(self.users * self.actions_per_user_per_day),
            rate(average),
        );
        let mut levels = vec![average];
        if let Some(peak) = self.peak_factor {
            line.push_str(&format!("; peak x{peak} = {}/s", rate(average * peak)));
            levels.push(average * peak);
        }
        if let Some(spike) = self.spike_factor {
            line.push_str(&format!("; viral x{spike} = {}/s", rate(average * spike)));
            levels.push(average * spike);
        }
        if self.read_write_ratio > 0.0 {
            let reads: Vec<String> = levels
                .iter()
                .map(|writes| format!("{}/s", rate(writes * self.read_write_ratio)))
                .collect();
            line.push_str(&format!(
                "; reads x{}: {}",
                self.read_write_ratio,
                reads.join(", ")
            ));
        }
        let totals: Vec<String> = [Profile::Baseline, Profile::Peak, Profile::Viral]
            .into_iter()
            .filter_map(|p| {
                let rates = self.rates(p).ok()?;
                Some(format!("dau.{} = {}/s", p.name(), rate(rates.total())))
            })
            .collect();
        format!("{line}\nrates (writes + reads): {}", totals.join(", "))
    }
}

/// A count: whole numbers with thousands separators (`5,000`).
fn count(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        group_thousands(value as i64)
    } else {
        format!("{value}")
    }
}

/// A rate: two significant digits below 100 (`0.058`, `5.8`, `14`), whole
/// numbers with separators from 100 up (`579`, `14,468`).
fn rate(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return format!("{value}");
    }
    if value >= 100.0 {
        return group_thousands(value.round() as i64);
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (1 - magnitude).max(0) as usize;
    format!("{value:.decimals$}")
}

fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shortener() -> Dau {
        Dau {
            users: 1_000.0,
            actions_per_user_per_day: 5.0,
            read_write_ratio: 100.0,
            peak_factor: Some(2.5),
            spike_factor: Some(100.0),
        }
    }

    #[test]
    fn the_arithmetic_is_printed_as_the_format_doc_shows() {
        let explanation = shortener().explain();
        let first = explanation.lines().next().unwrap();
        assert_eq!(
            first,
            "1,000 users x 5/day = 5,000 writes/day = 0.058/s average; peak x2.5 = 0.14/s; \
             viral x100 = 5.8/s; reads x100: 5.8/s, 14/s, 579/s"
        );
        assert!(
            explanation.ends_with(
                "rates (writes + reads): dau.baseline = 5.8/s, dau.peak = 15/s, dau.viral = 584/s"
            ),
            "{explanation}"
        );
    }

    #[test]
    fn rates_are_writes_plus_reads_of_each_profile() {
        let dau = shortener();
        let average = 5_000.0 / 86_400.0;
        let baseline = dau.rates(Profile::Baseline).unwrap();
        assert!((baseline.writes - average).abs() < 1e-12);
        assert!((baseline.total() - average * 101.0).abs() < 1e-9);
        let peak = dau.rates(Profile::Peak).unwrap();
        assert!((peak.writes - average * 2.5).abs() < 1e-12);
        let viral = dau.rates(Profile::Viral).unwrap();
        assert!((viral.reads - average * 100.0 * 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_profile_without_its_factor_says_which_is_missing() {
        let dau = Dau {
            peak_factor: None,
            spike_factor: None,
            read_write_ratio: 0.0,
            ..shortener()
        };
        assert!(dau
            .rates(Profile::Peak)
            .unwrap_err()
            .contains("peak_factor"));
        assert!(dau
            .rates(Profile::Viral)
            .unwrap_err()
            .contains("spike_factor"));
        assert_eq!(
            dau.explain(),
            "1,000 users x 5/day = 5,000 writes/day = 0.058/s average\n\
             rates (writes + reads): dau.baseline = 0.058/s"
        );
    }

    #[test]
    fn nonsense_is_refused_by_field() {
        let negative = Dau {
            users: -1.0,
            ..shortener()
        };
        assert_eq!(negative.check().unwrap_err().0, "users");
        let ratio = Dau {
            read_write_ratio: f64::NAN,
            ..shortener()
        };
        assert_eq!(ratio.check().unwrap_err().0, "read_write_ratio");
        assert!(shortener().check().is_ok());
    }

    #[test]
    fn numbers_read_like_a_person_wrote_them() {
        assert_eq!(rate(0.05787), "0.058");
        assert_eq!(rate(14.47), "14");
        assert_eq!(rate(578.7), "579");
        assert_eq!(rate(14_468.0), "14,468");
        assert_eq!(count(1_000_000.0), "1,000,000");
        assert_eq!(count(0.5), "0.5");
    }
}
