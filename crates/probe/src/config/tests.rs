use super::*;
use kit::config::Loaded;

/// The sections as the platform's config holds them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Platform {
    probes: ProbesConfig,
    status: StatusConfig,
}

fn load(toml: &str) -> Result<Platform, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reliable.toml");
    std::fs::write(&file, toml).unwrap();
    let loaded: Loaded<Platform> = kit::config::load_from(
        Some(&file),
        &std::collections::BTreeMap::<String, String>::new(),
        &[],
        Vec::<(String, String)>::new(),
    )?;
    loaded.config.probes.validate()?;
    loaded.config.status.validate()?;
    Ok(loaded.config)
}

fn probe(extra: &str, check: &str) -> String {
    format!(
        "[[probes.checks]]\nname = \"web\"\ncomponent = \"Website\"\n{extra}\n[probes.checks.check]\n{check}\n"
    )
}

const HTTP: &str = "type = \"http\"\nurl = \"https://example.com/health\"";

#[test]
fn a_full_config_loads_with_its_defaults() {
    let text = probe(
        "interval = \"1m\"\ntimeout = \"2s\"",
        "type = \"http\"\nurl = \"https://example.com/\"\nexpected_status = [\"2xx\", 301]\nbody_contains = \"ok\"\ntls_expiry_warning = \"7d\"",
    ) + &probe("", "type = \"tcp\"\naddress = \"db:5432\"").replace("\"web\"", "\"db\"")
        + &probe("", "type = \"dns\"\nname = \"localhost\"\nexpect = \"127.0.0.1\"")
            .replace("\"web\"", "\"dns\"");
    let config = load(&text).unwrap();
    let checks = &config.probes.checks;
    assert_eq!(checks.len(), 3);
    assert_eq!(checks[0].interval, Duration::from_secs(60));
    let Check::Http(http) = &checks[0].check else {
        panic!("http");
    };
    assert_eq!(http.method, "GET");
    assert!(!http.follow_redirects);
    assert_eq!(http.tls_expiry_warning, Duration::from_secs(7 * 86_400));
    assert!(http.expected_status.iter().any(|p| p.matches(204)));
    assert!(http.expected_status.iter().any(|p| p.matches(301)));
    assert!(!http.expected_status.iter().any(|p| p.matches(302)));
    assert_eq!(checks[1].timeout, Duration::from_secs(5));
    assert!(matches!(checks[2].check, Check::Dns(_)));
    assert!(config.status.enabled);
}

fn error(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

#[test]
fn an_invalid_url_names_the_key() {
    let e = error(&probe("", "type = \"http\"\nurl = \"not a url\""));
    assert!(e.contains("probes.checks[0].check.url"), "{e}");
    let e = error(&probe("", "type = \"http\"\nurl = \"ftp://example.com/\""));
    assert!(
        e.contains("probes.checks[0].check.url") && e.contains("ftp"),
        "{e}"
    );
}

#[test]
fn zero_and_sub_second_intervals_are_refused() {
    for interval in ["0s", "500ms"] {
        let e = error(&probe(&format!("interval = \"{interval}\""), HTTP));
        assert!(e.contains("probes.checks[0].interval"), "{e}");
    }
    let e = error(&probe("interval = \"5s\"\ntimeout = \"5s\"", HTTP));
    assert!(e.contains("probes.checks[0].timeout"), "{e}");
}

#[test]
fn an_unknown_check_type_names_the_key() {
    let e = error(&probe("", "type = \"ftp\"\nurl = \"x\""));
    assert!(e.contains("probes.checks"), "{e}");
    assert!(e.contains("ftp") && e.contains("http"), "{e}");
}

#[test]
fn names_are_labels_and_unique() {
    let e = error(&probe("", HTTP).replace("\"web\"", "\"Web Site\""));
    assert!(e.contains("probes.checks[0].name"), "{e}");
    let e = error(&format!("{}{}", probe("", HTTP), probe("", HTTP)));
    assert!(
        e.contains("probes.checks[1].name") && e.contains("web"),
        "{e}"
    );
}

#[test]
fn statuses_and_other_fields_are_checked() {
    let e = error(&probe("", &format!("{HTTP}\nexpected_status = [\"9xx\"]")));
    assert!(e.contains("expected_status"), "{e}");
    let e = error(&probe("", &format!("{HTTP}\nexpected_status = []")));
    assert!(e.contains("expected_status"), "{e}");
    let e = error(&probe("", "type = \"tcp\"\naddress = \"nohost\""));
    assert!(e.contains("probes.checks[0].check.address"), "{e}");
    let e = error(&probe("", &format!("{HTTP}\nsurprise = 1")));
    assert!(e.contains("surprise"), "{e}");
    let e = error("[status]\ntitle = \"\"");
    assert!(e.contains("status.title"), "{e}");
}

#[test]
fn status_classes_match_their_hundreds() {
    let class = StatusPattern::Class("3xx".to_string());
    assert!(class.matches(302) && !class.matches(200));
    assert!(StatusPattern::Class("404".to_string()).matches(404));
    assert!(valid_name("shortener-redirect_2"));
    assert!(!valid_name(&"a".repeat(65)));
}
