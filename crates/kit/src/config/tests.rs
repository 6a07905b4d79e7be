use super::*;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct Root {
    log: String,
    database_url: Option<Secret>,
    shortener: Section,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct Section {
    cache_capacity: u64,
    #[serde(with = "humantime_serde")]
    cache_ttl: Duration,
    peers: Vec<String>,
    database: Pool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct Pool {
    max_connections: u32,
}

impl Default for Root {
    fn default() -> Self {
        Self {
            log: "info".into(),
            database_url: None,
            shortener: Section::default(),
        }
    }
}
impl Default for Section {
    fn default() -> Self {
        Self {
            cache_capacity: 10,
            cache_ttl: Duration::from_secs(1),
            peers: Vec::new(),
            database: Pool::default(),
        }
    }
}
impl Default for Pool {
    fn default() -> Self {
        Self { max_connections: 4 }
    }
}

#[derive(Serialize)]
struct NoFlags {}

const ALIASES: &[Alias] = &[Alias {
    old: "cache_size",
    new: "shortener.cache_capacity",
}];

fn load_env(vars: &[(&str, &str)]) -> Result<Loaded<Root>, ConfigError> {
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    load_from(None, &NoFlags {}, ALIASES, vars)
}

#[test]
fn section_keys_and_nested_keys_come_from_single_underscore_names() {
    let loaded = load_env(&[
        ("RELIABLE_SHORTENER_CACHE_CAPACITY", "99"),
        ("RELIABLE_SHORTENER_CACHE_TTL", "5s"),
        ("RELIABLE_SHORTENER_DATABASE_MAX_CONNECTIONS", "32"),
        ("RELIABLE_LOG", "debug"),
        ("RELIABLE_TEST_SOMETHING", "ignored"),
        ("PATH", "/bin"),
    ])
    .unwrap();
    assert_eq!(loaded.config.shortener.cache_capacity, 99);
    assert_eq!(loaded.config.shortener.cache_ttl, Duration::from_secs(5));
    assert_eq!(loaded.config.shortener.database.max_connections, 32);
    assert_eq!(loaded.config.log, "debug");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn a_list_key_takes_brackets_or_commas() {
    for raw in [
        "[10.0.0.0/8, 127.0.0.1]",
        "10.0.0.0/8,127.0.0.1",
        " 10.0.0.0/8 , 127.0.0.1 ,",
    ] {
        let loaded = load_env(&[("RELIABLE_SHORTENER_PEERS", raw)]).unwrap();
        assert_eq!(
            loaded.config.shortener.peers,
            ["10.0.0.0/8", "127.0.0.1"],
            "{raw}"
        );
    }
    let loaded = load_env(&[("RELIABLE_SHORTENER_PEERS", "")]).unwrap();
    assert!(loaded.config.shortener.peers.is_empty());
}

#[test]
fn the_double_underscore_form_still_works_with_a_warning() {
    let loaded = load_env(&[("RELIABLE_SHORTENER__CACHE_CAPACITY", "7")]).unwrap();
    assert_eq!(loaded.config.shortener.cache_capacity, 7);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains("RELIABLE_SHORTENER_CACHE_CAPACITY"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn an_alias_sets_the_new_key_with_a_warning() {
    let loaded = load_env(&[("RELIABLE_CACHE_SIZE", "12")]).unwrap();
    assert_eq!(loaded.config.shortener.cache_capacity, 12);
    assert!(loaded.warnings[0].contains("deprecated"));
}

#[test]
fn a_file_variable_reads_the_secret_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db-url");
    std::fs::write(&path, "postgres://u:p@db/x\n").unwrap();
    let loaded = load_env(&[("RELIABLE_DATABASE_URL_FILE", path.to_str().unwrap())]).unwrap();
    let url = loaded.config.database_url.unwrap();
    assert_eq!(url.expose(), "postgres://u:p@db/x");
}

#[test]
fn a_missing_secret_file_names_the_variable() {
    let err = load_env(&[("RELIABLE_DATABASE_URL_FILE", "/nonexistent/secret")]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("RELIABLE_DATABASE_URL_FILE"), "{text}");
    assert!(text.contains("/nonexistent/secret"), "{text}");
}

#[test]
fn an_unknown_key_in_a_known_section_is_refused() {
    let err = load_env(&[("RELIABLE_SHORTENER_CACHE_CAPCITY", "1")]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("RELIABLE_SHORTENER_CACHE_CAPCITY"), "{text}");
    assert!(text.contains("cache_capcity"), "{text}");
}

#[test]
fn a_wrong_type_names_the_key_and_the_variable() {
    let err = load_env(&[("RELIABLE_SHORTENER_CACHE_CAPACITY", "lots")]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("shortener.cache_capacity"), "{text}");
    assert!(
        text.contains("environment variable RELIABLE_SHORTENER_CACHE_CAPACITY"),
        "{text}"
    );
}

#[test]
fn file_errors_name_the_file_and_deprecated_file_keys_move() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reliable.toml");
    std::fs::write(&path, "cache_size = 3\n[shortener]\ncache_ttl = \"2s\"\n").unwrap();
    let loaded: Loaded<Root> = load_from(Some(&path), &NoFlags {}, ALIASES, []).unwrap();
    assert_eq!(loaded.config.shortener.cache_capacity, 3);
    assert_eq!(loaded.config.shortener.cache_ttl, Duration::from_secs(2));
    assert_eq!(loaded.warnings.len(), 1);

    std::fs::write(&path, "[shortener]\ncache_ttl = \"soon\"\n").unwrap();
    let err = load_from::<Root, _>(Some(&path), &NoFlags {}, ALIASES, []).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("shortener.cache_ttl"), "{text}");
    assert!(text.contains("reliable.toml"), "{text}");

    std::fs::write(&path, "[shortener]\nbogus = 1\n").unwrap();
    let err = load_from::<Root, _>(Some(&path), &NoFlags {}, ALIASES, []).unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}
