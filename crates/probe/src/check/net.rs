//! TCP connect and DNS resolve checks (the system resolver, as the
//! platform's own clients use it).

use std::net::IpAddr;

pub async fn connect(address: &str) -> Result<(), String> {
    tokio::net::TcpStream::connect(address)
        .await
        .map(drop)
        .map_err(|e| format!("connect {address}: {e}"))
}

pub async fn resolve(name: &str, expect: Option<IpAddr>) -> Result<(), String> {
    let found: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|e| format!("resolve {name}: {e}"))?
        .map(|a| a.ip())
        .collect();
    if found.is_empty() {
        return Err(format!("resolve {name}: no addresses"));
    }
    match expect {
        Some(ip) if !found.contains(&ip) => Err(format!(
            "resolve {name}: {ip} not among {}",
            found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Ok(()),
    }
}
