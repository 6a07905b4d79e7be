//! The grammar inside `{{ ... }}`, parsed once when the file is compiled so
//! that sending a request never parses anything.
//!
//! ```text
//! target | vars.NAME | env.NAME | counter | uuid
//! random.int(MIN, MAX) | random.string(LEN)
//! pool.NAME [ | hot(TRAFFIC%, KEYS%) | zipf(S) | take | uniform ]
//! ```

use super::state::KeyChoice;

/// Longest `random.string(LEN)`: a body that size is a mistake, not a test.
pub const MAX_RANDOM_STRING: usize = 1 << 20;

/// One placeholder, parsed but not yet bound to the file's vars and pools.
#[derive(Debug, Clone, PartialEq)]
pub enum Placeholder<'a> {
    Target,
    Var(&'a str),
    Env(&'a str),
    Pool { name: &'a str, pick: PoolPick },
    Counter,
    Uuid,
    RandomInt { min: i64, max: i64 },
    RandomString { len: usize },
}

/// What a pool placeholder does with the pool.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolPick {
    /// Reads a value and leaves it.
    Choose(KeyChoice),
    /// Removes the oldest value.
    Take,
}

/// Parses the text between `{{` and `}}`; the error says what is wrong.
pub fn parse(expr: &str) -> Result<Placeholder<'_>, String> {
    let (head, filter) = match expr.split_once('|') {
        Some((head, filter)) => (head.trim(), Some(filter.trim())),
        None => (expr.trim(), None),
    };
    if let Some(name) = head.strip_prefix("pool.") {
        let name = name_of("pool", name)?;
        let pick = match filter {
            None => PoolPick::Choose(KeyChoice::Uniform),
            Some(filter) => parse_filter(filter)?,
        };
        return Ok(Placeholder::Pool { name, pick });
    }
    if filter.is_some() {
        return Err("only `pool.NAME` takes a `| ...` key choice".into());
    }
    if let Some(name) = head.strip_prefix("vars.") {
        return Ok(Placeholder::Var(name_of("vars", name)?));
    }
    if let Some(name) = head.strip_prefix("env.") {
        return Ok(Placeholder::Env(name_of("env", name)?));
    }
    if let Some(args) = call(head, "random.int")? {
        let [min, max] = arguments::<2>(args, "random.int(MIN, MAX)")?;
        let min = integer(min)?;
        let max = integer(max)?;
        if min > max {
            return Err(format!("random.int: MIN {min} is larger than MAX {max}"));
        }
        return Ok(Placeholder::RandomInt { min, max });
    }
    if let Some(args) = call(head, "random.string")? {
        let [len] = arguments::<1>(args, "random.string(LEN)")?;
        let len: usize = len
            .parse()
            .map_err(|_| format!("random.string: LEN `{len}` is not a whole number"))?;
        if len == 0 || len > MAX_RANDOM_STRING {
            return Err(format!(
                "random.string: LEN must be between 1 and {MAX_RANDOM_STRING}, got {len}"
            ));
        }
        return Ok(Placeholder::RandomString { len });
    }
    match head {
        "target" => Ok(Placeholder::Target),
        "counter" => Ok(Placeholder::Counter),
        "uuid" => Ok(Placeholder::Uuid),
        "" => Err("empty placeholder".into()),
        _ => Err(
            "unknown placeholder; expected target, vars.NAME, env.NAME, pool.NAME, counter, \
             uuid, random.int(MIN, MAX) or random.string(LEN)"
                .into(),
        ),
    }
}

fn parse_filter(filter: &str) -> Result<PoolPick, String> {
    match filter {
        "take" => return Ok(PoolPick::Take),
        "uniform" => return Ok(PoolPick::Choose(KeyChoice::Uniform)),
        _ => {}
    }
    if let Some(args) = call(filter, "hot")? {
        let [traffic, keys] = arguments::<2>(args, "hot(TRAFFIC%, KEYS%)")?;
        let traffic = fraction(traffic)?;
        let keys = fraction(keys)?;
        return Ok(PoolPick::Choose(KeyChoice::HotSet { traffic, keys }));
    }
    if let Some(args) = call(filter, "zipf")? {
        let [s] = arguments::<1>(args, "zipf(S)")?;
        let s: f64 = s
            .parse()
            .map_err(|_| format!("zipf: exponent `{s}` is not a number"))?;
        if !(s.is_finite() && s > 0.0) {
            return Err(format!(
                "zipf: exponent must be positive and finite, got {s}"
            ));
        }
        return Ok(PoolPick::Choose(KeyChoice::Zipf { s }));
    }
    Err(format!(
        "unknown key choice `{filter}`; expected hot(TRAFFIC%, KEYS%), zipf(S), take or uniform"
    ))
}

/// A name after `pool.`, `vars.` or `env.`.
fn name_of<'a>(kind: &str, name: &'a str) -> Result<&'a str, String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "`{kind}.{name}`: a name is letters, digits, `_` and `-`"
        ))
    }
}

/// `Some(arguments)` when `text` is `function(arguments)`.
fn call<'a>(text: &'a str, function: &str) -> Result<Option<&'a str>, String> {
    let Some(rest) = text.strip_prefix(function) else {
        return Ok(None);
    };
    let rest = rest.trim_start();
    if rest.is_empty() && function.starts_with("random.") {
        return Err(format!("{function} needs arguments in parentheses"));
    }
    match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        Some(args) => Ok(Some(args)),
        None if rest.starts_with('(') => Err(format!("{function}: missing `)`")),
        None => Ok(None),
    }
}

fn arguments<'a, const N: usize>(args: &'a str, usage: &str) -> Result<[&'a str; N], String> {
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    <[&str; N]>::try_from(parts.as_slice())
        .map_err(|_| format!("expected {usage}, got {} argument(s)", parts.len()))
}

fn integer(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("random.int: `{text}` is not an integer"))
}

/// `80%` or `0.8`, strictly between 0 and 1.
fn fraction(text: &str) -> Result<f64, String> {
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| format!("hot: `{text}` is not a percentage like 80%"))?;
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(format!(
            "hot: `{text}` must be between 0% and 100%, exclusive"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_grammar_parses() {
        assert_eq!(parse(" target "), Ok(Placeholder::Target));
        assert_eq!(parse("vars.api"), Ok(Placeholder::Var("api")));
        assert_eq!(parse("env.TOKEN"), Ok(Placeholder::Env("TOKEN")));
        assert_eq!(parse("counter"), Ok(Placeholder::Counter));
        assert_eq!(parse("uuid"), Ok(Placeholder::Uuid));
        assert_eq!(
            parse("random.int(-5, 10)"),
            Ok(Placeholder::RandomInt { min: -5, max: 10 })
        );
        assert_eq!(
            parse("random.string(12)"),
            Ok(Placeholder::RandomString { len: 12 })
        );
        assert_eq!(
            parse("pool.slugs"),
            Ok(Placeholder::Pool {
                name: "slugs",
                pick: PoolPick::Choose(KeyChoice::Uniform)
            })
        );
        assert_eq!(
            parse("pool.slugs | hot(80%, 20%)"),
            Ok(Placeholder::Pool {
                name: "slugs",
                pick: PoolPick::Choose(KeyChoice::HotSet {
                    traffic: 0.8,
                    keys: 0.2
                })
            })
        );
        assert_eq!(
            parse("pool.slugs|zipf(1.1)"),
            Ok(Placeholder::Pool {
                name: "slugs",
                pick: PoolPick::Choose(KeyChoice::Zipf { s: 1.1 })
            })
        );
        assert_eq!(
            parse("pool.orders | take"),
            Ok(Placeholder::Pool {
                name: "orders",
                pick: PoolPick::Take
            })
        );
    }

    #[test]
    fn mistakes_are_explained() {
        let cases = [
            ("", "empty"),
            ("targt", "unknown placeholder"),
            ("vars.", "a name is"),
            ("pool.a b", "a name is"),
            ("uuid | take", "only `pool.NAME`"),
            ("pool.a | hot(80%)", "expected hot(TRAFFIC%, KEYS%)"),
            ("pool.a | hot(120%, 20%)", "between 0% and 100%"),
            ("pool.a | hot(eighty, 20%)", "not a percentage"),
            ("pool.a | zipf(0)", "positive"),
            ("pool.a | zipf(x)", "not a number"),
            ("pool.a | pareto", "unknown key choice"),
            ("random.int(5, 1)", "larger than MAX"),
            ("random.int(1.5, 2)", "not an integer"),
            ("random.int", "needs arguments"),
            ("random.int(1, 2", "missing `)`"),
            ("random.string(0)", "between 1 and"),
        ];
        for (expr, expected) in cases {
            let error = parse(expr).expect_err(expr);
            assert!(error.contains(expected), "`{expr}`: {error}");
        }
    }
}
