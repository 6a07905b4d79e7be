//! `reliable config check|defaults`, black-box: what an operator sees
//! before starting anything.

use std::path::Path;
use std::process::Command;

fn config_check(file: Option<&Path>, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reliable"));
    cmd.args(["config", "check"]);
    if let Some(file) = file {
        cmd.arg("--config").arg(file);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().expect("run reliable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn file_with(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("reliable.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Each bad input is refused with exit code 2 and a message naming the key
/// and where its value came from.
#[test]
fn check_refuses_bad_input_naming_the_key_and_its_source() {
    let dir = tempfile::tempdir().expect("dir");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown key",
            "[shortener]\ncache_size = 10\n",
            &["cache_size", "reliable.toml"],
        ),
        (
            "wrong type",
            "[orders]\nrelay_batch_size = \"many\"\n",
            &["orders.relay_batch_size", "reliable.toml"],
        ),
        (
            "bad enum",
            "[gateway]\nrate_limit_when_down = \"sideways\"\n",
            &["gateway.rate_limit_when_down", "sideways"],
        ),
        (
            "bad duration",
            "[shortener]\ncache_ttl = \"soon\"\n",
            &["shortener.cache_ttl", "reliable.toml"],
        ),
        (
            "missing path",
            "[slo]\nspecs = \"/no/such/specs\"\n",
            &["slo.specs", "/no/such/specs"],
        ),
        (
            "range",
            "[shortener]\nslug_length = 2\n",
            &["shortener.slug_length"],
        ),
        (
            "not an address",
            "[gateway]\nadmin_listen = \"localhost\"\n",
            &["gateway.admin_listen", "reliable.toml"],
        ),
        (
            "zero refresh",
            "[gateway]\nsplit_refresh = \"0s\"\n",
            &["gateway.split_refresh"],
        ),
        (
            "too many connection threads",
            "[http]\nconnection_threads = 5000\n",
            &["http.connection_threads", "at most 1024"],
        ),
        (
            "negative connection threads",
            "[http]\nconnection_threads = -1\n",
            &["http.connection_threads", "reliable.toml"],
        ),
    ];
    for (what, text, needles) in cases {
        let file = file_with(dir.path(), text);
        let (code, _, stderr) = config_check(Some(&file), &[]);
        assert_eq!(code, 2, "{what}: {stderr}");
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "{what}: `{needle}` not in: {stderr}"
            );
        }
    }

    let (code, _, stderr) = config_check(Some(&dir.path().join("absent.toml")), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("absent.toml"), "{stderr}");

    let (code, _, stderr) = config_check(None, &[("RELIABLE_SHORTENER_CACHE_CAPACITY", "lots")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("environment variable RELIABLE_SHORTENER_CACHE_CAPACITY"),
        "{stderr}"
    );

    let (code, _, stderr) = config_check(None, &[("RELIABLE_GATEWAY_ADMIN_LISTEN", "nope")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("environment variable RELIABLE_GATEWAY_ADMIN_LISTEN"),
        "{stderr}"
    );

    let (code, _, stderr) = config_check(None, &[("RELIABLE_HTTP_CONNECTION_THREADS", "all")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("environment variable RELIABLE_HTTP_CONNECTION_THREADS"),
        "{stderr}"
    );

    let (code, _, stderr) = config_check(None, &[("RELIABLE_ORDERS_RELAY_BATCH", "5")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("RELIABLE_ORDERS_RELAY_BATCH"), "{stderr}");

    let (code, _, stderr) =
        config_check(None, &[("RELIABLE_DATABASE_URL_FILE", "/no/such/secret")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("RELIABLE_DATABASE_URL_FILE"), "{stderr}");
}

#[test]
fn check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("db-url");
    std::fs::write(&secret_file, "postgres://app:s3cret-pw@db.internal/app\n").expect("write");
    let file = file_with(dir.path(), "[shortener]\ncache_ttl = \"90s\"\n");
    let (code, stdout, stderr) = config_check(
        Some(&file),
        &[
            (
                "RELIABLE_DATABASE_URL_FILE",
                secret_file.to_str().expect("path"),
            ),
            (
                "RELIABLE_NOTIFIER_WEBHOOK_URL",
                "https://hooks.example.com/orders",
            ),
            ("RELIABLE_NOTIFIER_WEBHOOK_SECRET", "hmac-key-123"),
            ("RELIABLE_SHORTENER_DATABASE_MAX_CONNECTIONS", "3"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    for leaked in ["s3cret-pw", "hmac-key-123"] {
        assert!(
            !stdout.contains(leaked) && !stderr.contains(leaked),
            "{leaked} leaked:\n{stdout}"
        );
    }
    assert!(stdout.contains("database_url = \"[redacted]\""), "{stdout}");
    assert!(stdout.contains("cache_ttl = \"1m 30s\""), "{stdout}");
    assert!(
        stdout.contains("webhook_url = \"https://hooks.example.com/orders\""),
        "{stdout}"
    );
    assert!(stdout.contains("max_connections = 3"), "{stdout}");
}

/// The canary controller's admin key is a setting like any secret: from
/// the environment or, as a Kubernetes pod mounts it, from a file.
#[test]
fn the_canary_admin_key_is_read_from_a_file_and_never_printed() {
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("canary-admin-key");
    std::fs::write(&key_file, "rlk_canary-admin-secret\n").expect("write");
    let path = key_file.to_str().expect("path");
    for var in [
        "RELIABLE_CANARY_ADMIN_KEY_FILE",
        "RELIABLE_CANARY_ADMIN_KEY",
    ] {
        let value = if var.ends_with("_FILE") {
            path
        } else {
            "rlk_canary-admin-secret"
        };
        let (code, stdout, stderr) = config_check(None, &[(var, value)]);
        assert_eq!(code, 0, "{var}: {stderr}");
        assert!(stdout.contains("admin_key = \"[redacted]\""), "{stdout}");
        assert!(!stdout.contains("canary-admin-secret"), "{stdout}");
    }
}

/// With `--target`, the checks that depend on the co-located modules run
/// too: a gateway route naming a pool that exists nowhere is refused.
#[test]
fn check_with_targets_refuses_a_route_to_an_unknown_pool() {
    let dir = tempfile::tempdir().expect("dir");
    let file = file_with(
        dir.path(),
        "[gateway.pools.links]\nendpoints = [\"http://links:8080\"]\n\
         [[gateway.routes]]\nprefix = \"/\"\npool = \"link\"\n",
    );
    let run = |targets: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_reliable"))
            .args(["config", "check", "--config"])
            .arg(&file)
            .args(["--target", targets])
            .output()
            .expect("run reliable");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run("gateway");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("gateway.routes[0].pool") && stderr.contains("`link`"),
        "{stderr}"
    );
    // A co-located module of that name is a pool too.
    let (code, stderr) = run("shortener,gateway");
    assert_eq!(code, 2, "{stderr}");
    let (code, stderr) = run("gatway");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown target `gatway`"), "{stderr}");
    // Without --target, only the file itself is checked.
    let (code, _, stderr) = config_check(Some(&file), &[]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn deprecated_names_still_work_with_a_warning() {
    let dir = tempfile::tempdir().expect("dir");
    let file = file_with(dir.path(), "notify_allow_private = true\n");
    let (code, stdout, stderr) = config_check(
        Some(&file),
        &[
            ("RELIABLE_NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("RELIABLE_NOTIFY_WEBHOOK_SECRET", "k"),
            ("RELIABLE_SHORTENER__CACHE_CAPACITY", "77"),
            ("RELIABLE_RATE_LIMIT_ANON", "10/s"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    for old in [
        "notify_allow_private",
        "RELIABLE_NOTIFY_WEBHOOK_URL",
        "RELIABLE_NOTIFY_WEBHOOK_SECRET",
        "RELIABLE_SHORTENER__CACHE_CAPACITY",
        "RELIABLE_RATE_LIMIT_ANON",
    ] {
        assert!(stderr.contains(old), "no warning for {old}: {stderr}");
    }
    assert!(stdout.contains("allow_private = true"), "{stdout}");
    assert!(
        stdout.contains("webhook_url = \"http://127.0.0.1:9/hook\""),
        "{stdout}"
    );
    assert!(stdout.contains("cache_capacity = 77"), "{stdout}");
    assert!(stdout.contains("anon_rate = \"10/s\""), "{stdout}");
}

/// `trusted_proxies` and the body limit were once keys of the gateway and
/// the shortener; they are now the shared `[http]` settings, and the old
/// keys (file and environment) still set them.
#[test]
fn shared_http_settings_keep_their_old_module_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let file = file_with(
        dir.path(),
        "[gateway]\ntrusted_proxies = [\"10.0.0.0/8\"]\nmax_request_body_bytes = 2048\n",
    );
    let (code, stdout, stderr) = config_check(Some(&file), &[]);
    assert_eq!(code, 0, "{stderr}");
    for old in ["gateway.trusted_proxies", "gateway.max_request_body_bytes"] {
        assert!(stderr.contains(old), "no warning for {old}: {stderr}");
    }
    let http = section(&stdout, "[http]");
    assert!(
        http.contains("trusted_proxies = [\"10.0.0.0/8\"]"),
        "{stdout}"
    );
    assert!(http.contains("body_limit_bytes = 2048"), "{stdout}");
    assert!(
        !section(&stdout, "[gateway]").contains("trusted_proxies"),
        "{stdout}"
    );

    let (code, stdout, stderr) = config_check(
        None,
        &[("RELIABLE_SHORTENER_TRUSTED_PROXIES", "[\"192.0.2.1\"]")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("RELIABLE_SHORTENER_TRUSTED_PROXIES"),
        "{stderr}"
    );
    assert!(
        section(&stdout, "[http]").contains("trusted_proxies = [\"192.0.2.1\"]"),
        "{stdout}"
    );

    // The new key wins over the old one when both are set.
    let file = file_with(
        dir.path(),
        "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n[shortener]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    let (code, stdout, stderr) = config_check(Some(&file), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        section(&stdout, "[http]").contains("trusted_proxies = [\"127.0.0.1\"]"),
        "{stdout}"
    );

    let file = file_with(dir.path(), "[http]\ntrusted_proxies = [\"10.0.0.0/99\"]\n");
    let (code, _, stderr) = config_check(Some(&file), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("http.trusted_proxies[0]"), "{stderr}");
}

/// The lines of a TOML table, from its header to the next one.
fn section<'a>(toml: &'a str, header: &str) -> &'a str {
    let Some(start) = toml.find(&format!("{header}\n")) else {
        return "";
    };
    let rest = &toml[start + header.len()..];
    let end = rest.find("\n[").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// The committed reference page is what the code generates.
#[test]
fn the_configuration_reference_page_is_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_reliable"))
        .args(["config", "defaults", "--markdown"])
        .output()
        .expect("run reliable");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/configuration.md");
    let committed = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/reference/configuration.md is stale: run `cargo run -p reliable -- config defaults --markdown > docs/reference/configuration.md`"
    );
    for key in [
        "shortener.cache_ttl",
        "notifier.webhook_secret",
        "gateway.rate_limit_when_down",
        "database_url",
    ] {
        assert!(generated.contains(&format!("`{key}`")), "{key} missing");
    }
    assert!(generated.contains("**Secret**"));

    let text = Command::new(env!("CARGO_BIN_EXE_reliable"))
        .args(["config", "defaults"])
        .output()
        .expect("run reliable");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("shortener.cache_ttl = \"5m\""), "{text}");
}
