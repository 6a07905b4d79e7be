//! The server list of the NATS URL (`RELIABLE_NATS_URL`): one URL or
//! several, comma-separated (`nats://h1:4222,nats://h2:4222`). The client
//! connects to any of them and, once connected, also learns the cluster's
//! other servers from the one it reached, so a list of one node of a
//! cluster works too; listing every node lets a client start while any
//! one of them is up.
//!
//! The list may carry credentials (`nats://user:pass@host:4222`), so it
//! is only ever shown as `host:port` pairs: [`Servers::shown`]. A parse
//! error names the entry's position, never its text.

use crate::BusError;
use async_nats::ServerAddr;

/// The parsed server list.
#[derive(Debug, Clone)]
pub(crate) struct Servers {
    addrs: Vec<ServerAddr>,
}

impl Servers {
    /// Parses a comma-separated list of NATS URLs (`nats://`, `tls://`,
    /// `ws://`, `wss://`; a bare `host:port` means `nats://`).
    pub(crate) fn parse(list: &str) -> Result<Self, BusError> {
        let entries: Vec<&str> = list.split(',').map(str::trim).collect();
        let count = entries.len();
        let mut addrs = Vec::with_capacity(count);
        for (i, entry) in entries.iter().enumerate() {
            let position = i + 1;
            if entry.is_empty() {
                return Err(BusError::Config(format!(
                    "the NATS server list has an empty entry (entry {position} of {count}); \
                     write nats://host:port[,nats://host:port...]"
                )));
            }
            // The parse error does not repeat the entry (it may hold a
            // password).
            let addr: ServerAddr = entry.parse().map_err(|e: std::io::Error| {
                BusError::Config(format!(
                    "entry {position} of {count} of the NATS server list is not a NATS URL \
                     (nats://[user:pass@]host:port): {e}"
                ))
            })?;
            addrs.push(addr);
        }
        Ok(Self { addrs })
    }

    /// The addresses to connect to.
    pub(crate) fn addrs(&self) -> Vec<ServerAddr> {
        self.addrs.clone()
    }

    /// `host:port, host:port`: the list without schemes or credentials,
    /// for logs and errors.
    pub(crate) fn shown(&self) -> String {
        self.addrs
            .iter()
            .map(|a| match a.host() {
                host if host.contains(':') => format!("[{host}]:{}", a.port()),
                host => format!("{host}:{}", a.port()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn len(&self) -> usize {
        self.addrs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_split_on_commas_and_shown_without_credentials() {
        let servers =
            Servers::parse("nats://app:s3cret@10.0.0.1:4222, tls://10.0.0.2:4223,10.0.0.3")
                .unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(
            servers.shown(),
            "10.0.0.1:4222, 10.0.0.2:4223, 10.0.0.3:4222"
        );
        assert!(!servers.shown().contains("s3cret"));
    }

    #[test]
    fn one_url_is_a_list_of_one() {
        let servers = Servers::parse("nats://127.0.0.1:4222").unwrap();
        assert_eq!(servers.shown(), "127.0.0.1:4222");
    }

    #[test]
    fn bad_entries_are_named_by_position_never_by_text() {
        let empty = Servers::parse("nats://a:4222,,nats://b:4222").unwrap_err();
        assert!(empty.to_string().contains("entry 2 of 3"), "{empty}");
        let bad = Servers::parse("nats://a:4222,http://user:hunter2@b:4222").unwrap_err();
        let text = bad.to_string();
        assert!(text.contains("entry 2 of 2"), "{text}");
        assert!(text.contains("scheme"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let port = Servers::parse("nats://user:hunter2@b:notaport").unwrap_err();
        assert!(!port.to_string().contains("hunter2"), "{port}");
    }
}
