//! toxiproxy's HTTP API: routes, bodies, status codes and the error
//! envelope, including every bad input the API must refuse.

mod proxy_support;

use proxy_support::{call, create_proxy, echo_server, port_outside_ephemeral_range, server};
use serde_json::json;

#[tokio::test]
async fn proxies_and_toxics_round_trip_through_the_api() {
    let server = server().await;
    let echo = echo_server().await;
    let (status, version) = call(&server, "GET", "/version", None).await;
    assert_eq!(status, 200);
    assert!(version["version"].as_str().unwrap().contains("toxiproxy"));

    let listen = create_proxy(&server, "pg", echo).await;
    let (status, proxies) = call(&server, "GET", "/proxies", None).await;
    assert_eq!(status, 200);
    assert_eq!(proxies["pg"]["listen"], listen.to_string());
    assert_eq!(proxies["pg"]["upstream"], echo.to_string());
    assert_eq!(proxies["pg"]["enabled"], true);
    assert_eq!(proxies["pg"]["toxics"], json!([]));

    let (status, toxic) = call(
        &server,
        "POST",
        "/proxies/pg/toxics",
        Some(r#"{"type":"latency","attributes":{"latency":100,"jitter":5}}"#),
    )
    .await;
    assert_eq!(status, 200, "{toxic}");
    assert_eq!(
        toxic,
        json!({"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1.0,
               "attributes":{"latency":100,"jitter":5}})
    );
    let (status, _) = call(
        &server,
        "POST",
        "/proxies/pg/toxics",
        Some(r#"{"name":"cut","type":"timeout","stream":"upstream","toxicity":0.5,"attributes":{"timeout":0}}"#),
    )
    .await;
    assert_eq!(status, 200);
    let (_, toxics) = call(&server, "GET", "/proxies/pg/toxics", None).await;
    let names: Vec<&str> = toxics
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cut", "latency_downstream"],
        "upstream toxics first, as toxiproxy lists them"
    );

    let (status, updated) = call(
        &server,
        "PATCH",
        "/proxies/pg/toxics/latency_downstream",
        Some(r#"{"attributes":{"latency":500}}"#),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["attributes"], json!({"latency":500,"jitter":5}));
    let (status, shown) = call(&server, "GET", "/proxies/pg/toxics/cut", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["toxicity"], 0.5);

    let (status, _) = call(&server, "DELETE", "/proxies/pg/toxics/cut", None).await;
    assert_eq!(status, 204);
    let (status, proxy) = call(&server, "POST", "/proxies/pg", Some(r#"{"enabled":false}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(proxy["enabled"], false);
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "a disabled proxy does not listen"
    );

    let (status, _) = call(&server, "POST", "/reset", None).await;
    assert_eq!(status, 204);
    let (_, proxy) = call(&server, "GET", "/proxies/pg", None).await;
    assert_eq!(proxy["enabled"], true);
    assert_eq!(proxy["toxics"], json!([]));

    let (status, _) = call(&server, "DELETE", "/proxies/pg", None).await;
    assert_eq!(status, 204);
    let (_, proxies) = call(&server, "GET", "/proxies", None).await;
    assert_eq!(proxies, json!({}));
    server.shutdown().await;
}

/// Disabling returns only once the socket is closed, and enabling again
/// binds the same port. The check connects with a blocking call on a
/// one-thread runtime, so the proxy's own tasks cannot run in between:
/// what the caller sees is what `update` left, not what a task did later.
#[tokio::test(flavor = "current_thread")]
async fn disable_closes_the_listener_before_returning() {
    use chaos::proxy::{Proxies, ProxySpec, ProxyUpdate};
    let echo = echo_server().await;
    let proxies = Proxies::new();
    // Below the ephemeral range: while the proxy is disabled, its port is
    // free, and another test's outgoing connection could take a port
    // from that range as its source.
    let spec = ProxySpec {
        listen: format!("127.0.0.1:{}", port_outside_ephemeral_range()),
        ..ProxySpec::new("pg", echo.to_string())
    };
    let made = proxies.create(spec).await.unwrap();
    let listen: std::net::SocketAddr = made.listen.parse().unwrap();
    let toggle = |enabled| ProxyUpdate {
        enabled: Some(enabled),
        ..ProxyUpdate::default()
    };
    for round in 0..3 {
        proxies.update("pg", toggle(false)).await.unwrap();
        assert!(
            std::net::TcpStream::connect(listen).is_err(),
            "round {round}: a disabled proxy accepted a connection"
        );
        let info = proxies.update("pg", toggle(true)).await.unwrap();
        assert_eq!(info.listen, listen.to_string(), "round {round}");
        assert!(
            std::net::TcpStream::connect(listen).is_ok(),
            "round {round}: an enabled proxy refused a connection"
        );
    }
    proxies.shutdown().await;
}

#[tokio::test]
async fn populate_creates_keeps_and_replaces() {
    let server = server().await;
    let echo = echo_server().await;
    let body = format!(
        r#"[{{"name":"a","upstream":"{echo}"}},{{"name":"b","upstream":"{echo}","enabled":false}}]"#
    );
    let (status, out) = call(&server, "POST", "/populate", Some(&body)).await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["proxies"].as_array().unwrap().len(), 2);
    assert_eq!(out["proxies"][1]["enabled"], false);
    let (status, out) = call(&server, "POST", "/populate", Some(r#"[{"name":"c"}]"#)).await;
    assert_eq!(status, 400);
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("upstream at proxy 1"),
        "{out}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_toxiproxys_envelope_and_status() {
    let server = server().await;
    let echo = echo_server().await;
    let listen = create_proxy(&server, "pg", echo).await;
    call(
        &server,
        "POST",
        "/proxies/pg/toxics",
        Some(r#"{"type":"latency","attributes":{"latency":1}}"#),
    )
    .await;

    let taken = format!(r#"{{"name":"other","listen":"{listen}","upstream":"{echo}"}}"#);
    let dup = format!(r#"{{"name":"pg","upstream":"{echo}"}}"#);
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "POST",
            "/proxies/pg/toxics",
            r#"{"type":"latency","attributes":{"latency":-5}}"#.into(),
            400,
            "attributes.latency",
        ),
        (
            "POST",
            "/proxies/pg/toxics",
            r#"{"name":"t","type":"latency","toxicity":1.1,"attributes":{"latency":1}}"#.into(),
            400,
            "toxicity",
        ),
        (
            "POST",
            "/proxies/pg/toxics",
            r#"{"name":"t","type":"latency","toxicity":-1,"attributes":{"latency":1}}"#.into(),
            400,
            "toxicity",
        ),
        (
            "POST",
            "/proxies/pg/toxics",
            r#"{"type":"earthquake"}"#.into(),
            400,
            "invalid toxic type",
        ),
        (
            "POST",
            "/proxies/pg/toxics",
            r#"{"type":"latency","stream":"sideways","attributes":{"latency":1}}"#.into(),
            400,
            "stream was invalid",
        ),
        (
            "POST",
            "/proxies/pg/toxics",
            r#"{"name":"t","type":"limit_data","attributes":{}}"#.into(),
            400,
            "missing required field: attributes.bytes",
        ),
        (
            "POST",
            "/proxies/pg/toxics",
            "{not json".into(),
            400,
            "bad request body",
        ),
        (
            "POST",
            "/proxies/pg/toxics",
            r#"{"type":"latency","attributes":{"latency":2}}"#.into(),
            409,
            "toxic already exists",
        ),
        (
            "POST",
            "/proxies/pg/toxics/latency_downstream",
            r#"{"attributes":{"jitter":-1}}"#.into(),
            400,
            "attributes.jitter",
        ),
        (
            "POST",
            "/proxies",
            "{not json".into(),
            400,
            "bad request body",
        ),
        (
            "POST",
            "/proxies",
            r#"{"upstream":"127.0.0.1:1"}"#.into(),
            400,
            "missing required field: name",
        ),
        (
            "POST",
            "/proxies",
            r#"{"name":"x"}"#.into(),
            400,
            "missing required field: upstream",
        ),
        (
            "POST",
            "/proxies",
            r#"{"name":"x","upstream":"no-such-host.invalid:5432"}"#.into(),
            400,
            "no-such-host.invalid",
        ),
        (
            "POST",
            "/proxies",
            r#"{"name":"x","upstream":"localhost"}"#.into(),
            400,
            "HOST:PORT",
        ),
        (
            "POST",
            "/proxies/pg",
            r#"{"upstream":"no-such-host.invalid:5432"}"#.into(),
            400,
            "no-such-host.invalid",
        ),
        ("POST", "/proxies", taken, 409, "already in use"),
        ("POST", "/proxies", dup, 409, "proxy already exists"),
        (
            "GET",
            "/proxies/nope",
            String::new(),
            404,
            "proxy not found",
        ),
        (
            "DELETE",
            "/proxies/nope",
            String::new(),
            404,
            "proxy not found",
        ),
        (
            "POST",
            "/proxies/nope/toxics",
            r#"{"type":"latency","attributes":{"latency":1}}"#.into(),
            404,
            "proxy not found",
        ),
        (
            "GET",
            "/proxies/pg/toxics/nope",
            String::new(),
            404,
            "toxic not found",
        ),
        (
            "DELETE",
            "/proxies/pg/toxics/nope",
            String::new(),
            404,
            "toxic not found",
        ),
        (
            "POST",
            "/proxies/pg/toxics/nope",
            r#"{"attributes":{}}"#.into(),
            404,
            "toxic not found",
        ),
    ];
    for (method, path, body, status, want) in cases {
        let body = (!body.is_empty()).then_some(body.as_str());
        let (got, json) = call(&server, method, path, body).await;
        assert_eq!(got, status, "{method} {path} {body:?}: {json}");
        assert_eq!(json["status"], status, "{method} {path}: envelope {json}");
        let message = json["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(want),
            "{method} {path} {body:?}: {message}"
        );
    }
    // Nothing refused was created or changed.
    let (_, proxies) = call(&server, "GET", "/proxies", None).await;
    assert_eq!(proxies.as_object().unwrap().len(), 1);
    assert_eq!(proxies["pg"]["upstream"], echo.to_string());
    assert_eq!(proxies["pg"]["toxics"][0]["attributes"]["latency"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_connections_and_bytes() {
    let server = server().await;
    let echo = echo_server().await;
    let listen = create_proxy(&server, "m", echo).await;
    let mut s = tokio::net::TcpStream::connect(listen).await.unwrap();
    proxy_support::round_trip(&mut s, b"hello").await.unwrap();
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("chaos_proxy_connections_total{proxy=\"m\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("chaos_proxy_bytes_total{proxy=\"m\",direction=\"upstream\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("chaos_proxy_toxics_active{proxy=\"m\"} 0"),
        "{text}"
    );
    server.shutdown().await;
}
