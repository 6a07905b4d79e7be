//! Shopify toxiproxy's Python client (PyPI `toxiproxy-python`, pinned in
//! scripts/chaos-proxy-client.requirements.txt) drives the proxy: existing
//! toxiproxy clients must work unchanged. The venv is made by
//! scripts/test; without it the test fails saying so (never skips).

mod proxy_support;

use std::path::PathBuf;
use std::process::Command;

fn venv_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("RELIABLE_CHAOS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/chaos-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no {}: run scripts/test, which installs the toxiproxy Python client into target/chaos-venv",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxiproxys_python_client_works_unchanged() {
    let python = venv_python();
    let server = proxy_support::server().await;
    let echo = proxy_support::echo_server().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/proxy_python_client.py");
    let api_port = server.addr().port().to_string();
    let echo_port = echo.port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([api_port, echo_port])
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python client: ok"), "{stdout}");
    server.shutdown().await;
}
