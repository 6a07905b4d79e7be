//! The three forms of the Redis URL, one per way Redis is deployed:
//!
//! | form | deployment |
//! |---|---|
//! | `redis://[user:pass@]host:6379[/db]` | one server (standalone) |
//! | `redis+sentinel://[user:pass@]h1:26379,h2:26379/MASTER_NAME[/db]` | a master found through Sentinel |
//! | `redis+cluster://[user:pass@]h1:7000,h2:7001` | Redis Cluster |
//!
//! The form is the operator's statement of the deployment, never guessed
//! from the number of hosts: a client that assumed Cluster when given
//! several servers sent `CLUSTER SLOTS` to a Sentinel deployment and
//! failed with a pool error. The credentials of a sentinel URL are the
//! master's (sentinels are asked without them); those of a cluster URL are
//! every node's. Errors name the setting but never repeat the URL, which
//! may carry a password.

use crate::LimiterError;
use redis::{ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// Where the limiter's Redis is, and how it is deployed.
#[derive(Clone)]
pub(crate) enum Deployment {
    Standalone(ConnectionInfo),
    Sentinel {
        /// The sentinels, asked for the master's address.
        sentinels: Vec<ConnectionInfo>,
        /// The name the sentinels monitor the master under.
        master: String,
        /// Database and credentials for the master.
        node: RedisConnectionInfo,
    },
    Cluster {
        /// Seed nodes; the client learns the rest from them.
        nodes: Vec<ConnectionInfo>,
    },
}

impl Deployment {
    /// What the URL says, for messages: `a cluster URL`.
    pub(crate) fn form(&self) -> &'static str {
        match self {
            Deployment::Standalone(_) => "a standalone URL (redis://)",
            Deployment::Sentinel { .. } => "a sentinel URL (redis+sentinel://)",
            Deployment::Cluster { .. } => "a cluster URL (redis+cluster://)",
        }
    }
}

const SENTINEL_FORM: &str =
    "redis+sentinel://[user:pass@]host:26379[,host:26379...]/MASTER_NAME[/DB]";

/// Reads `url`, the value of `setting` (`RELIABLE_REDIS_URL`).
pub(crate) fn parse(url: &str, setting: &str) -> Result<Deployment, LimiterError> {
    let bad = |what: String| LimiterError::Config(format!("{setting} {what}"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad(
            "is not a Redis URL: expected redis://, redis+sentinel:// or redis+cluster://".into(),
        ));
    };
    match scheme {
        "redis+sentinel" => {
            let parts = Parts::split(rest, 26379, setting)?;
            let (master, db) = match parts.path.as_slice() {
                [] => {
                    return Err(bad(format!(
                        "is a sentinel URL without a master name: expected {SENTINEL_FORM}"
                    )))
                }
                [master] => (*master, "0"),
                [master, db] => (*master, *db),
                _ => {
                    return Err(bad(format!(
                        "is a sentinel URL with too many path parts: expected {SENTINEL_FORM}"
                    )))
                }
            };
            let db: u32 = db.parse().map_err(|_| {
                bad(format!(
                    "is a sentinel URL whose database `{db}` is not a number: expected {SENTINEL_FORM}"
                ))
            })?;
            let sentinels = parts
                .hosts
                .iter()
                .map(|host| node(None, host, 0, setting))
                .collect::<Result<Vec<_>, _>>()?;
            let first = node(parts.userinfo, &parts.hosts[0], db, setting)?;
            Ok(Deployment::Sentinel {
                sentinels,
                master: master.to_string(),
                node: first.redis_settings().clone(),
            })
        }
        "redis+cluster" => {
            let parts = Parts::split(rest, 6379, setting)?;
            if !parts.path.is_empty() {
                return Err(bad(
                    "is a cluster URL with a path: Redis Cluster has only database 0 \
                     (expected redis+cluster://[user:pass@]host:7000[,host:7001...])"
                        .into(),
                ));
            }
            let nodes = parts
                .hosts
                .iter()
                .map(|host| node(parts.userinfo, host, 0, setting))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Deployment::Cluster { nodes })
        }
        _ => url
            .into_connection_info()
            .map(Deployment::Standalone)
            .map_err(|e| bad(format!("is not a valid Redis URL: {e}"))),
    }
}

/// The pieces of `[userinfo@]host[:port][,host[:port]...][/path...]`.
struct Parts<'a> {
    userinfo: Option<&'a str>,
    /// Each with its port.
    hosts: Vec<String>,
    /// Non-empty path segments.
    path: Vec<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(rest: &'a str, default_port: u16, setting: &str) -> Result<Self, LimiterError> {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let hosts = hosts
            .split(',')
            .map(|host| {
                let host = host.trim();
                if host.is_empty() {
                    return Err(LimiterError::Config(format!(
                        "{setting} lists an empty host (expected host:port[,host:port...])"
                    )));
                }
                // `host`, `host:port`, `[v6]` or `[v6]:port`.
                let has_port = match host.rfind(']') {
                    Some(end) => host[end..].contains(':'),
                    None => host.contains(':'),
                };
                Ok(if has_port {
                    host.to_string()
                } else {
                    format!("{host}:{default_port}")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path = path.split('/').filter(|s| !s.is_empty()).collect();
        Ok(Self {
            userinfo,
            hosts,
            path,
        })
    }
}

/// One node's connection info, through the crate's own URL parser (which
/// decodes percent-encoded credentials).
fn node(
    userinfo: Option<&str>,
    host: &str,
    db: u32,
    setting: &str,
) -> Result<ConnectionInfo, LimiterError> {
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    format!("redis://{userinfo}{host}/{db}")
        .into_connection_info()
        .map_err(|e| LimiterError::Config(format!("{setting} names host `{host}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(url: &str) -> String {
        match parse(url, "RELIABLE_REDIS_URL") {
            Err(LimiterError::Config(message)) => message,
            Err(other) => panic!("not a config error: {other}"),
            Ok(_) => panic!("{url} was accepted"),
        }
    }

    #[test]
    fn standalone_urls_are_passed_to_the_crate() {
        let Ok(Deployment::Standalone(info)) = parse("redis://127.0.0.1:6380/2", "X") else {
            panic!("not standalone");
        };
        assert_eq!(info.redis_settings().db(), 2);
    }

    #[test]
    fn a_sentinel_url_names_its_sentinels_master_and_database() {
        let url = "redis+sentinel://u:p%40ss@10.0.0.1,10.0.0.2:26380/mymaster/3";
        let Ok(Deployment::Sentinel {
            sentinels,
            master,
            node,
        }) = parse(url, "X")
        else {
            panic!("not sentinel");
        };
        assert_eq!(master, "mymaster");
        assert_eq!(node.db(), 3);
        assert_eq!(node.username(), Some("u"));
        assert_eq!(node.password(), Some("p@ss"));
        let addrs: Vec<String> = sentinels.iter().map(|s| s.addr().to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:26379", "10.0.0.2:26380"]);
        // The sentinels are asked without the master's credentials.
        assert!(sentinels
            .iter()
            .all(|s| s.redis_settings().password().is_none()));
    }

    #[test]
    fn a_sentinel_url_without_a_master_name_is_refused() {
        for url in [
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel://a:1,b:2//",
        ] {
            let message = error(url);
            assert!(
                message.starts_with("RELIABLE_REDIS_URL is a sentinel URL without a master name"),
                "{message}"
            );
            assert!(message.contains("MASTER_NAME"), "{message}");
        }
    }

    #[test]
    fn bad_sentinel_and_cluster_urls_say_what_is_wrong() {
        assert!(error("redis+sentinel://h:1/m/x").contains("database `x` is not a number"));
        assert!(error("redis+sentinel://h:1/m/0/extra").contains("too many path parts"));
        assert!(error("redis+cluster://h:1,h:2/0").contains("has only database 0"));
        assert!(error("redis+cluster://h:1,,h:2").contains("empty host"));
        assert!(error("localhost:6379").contains("is not a Redis URL"));
        assert!(error("redis+cluster://h:notaport").contains("names host `h:notaport`"));
    }

    #[test]
    fn a_cluster_url_gives_every_node_the_credentials() {
        let Ok(Deployment::Cluster { nodes }) =
            parse("redis+cluster://:secret@h1:7000,h2,[::1]:7002", "X")
        else {
            panic!("not cluster");
        };
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        assert_eq!(addrs, ["h1:7000", "h2:6379", "::1:7002"]);
        assert!(nodes
            .iter()
            .all(|n| n.redis_settings().password() == Some("secret")));
    }

    #[test]
    fn messages_never_repeat_the_password() {
        for url in [
            "redis+sentinel://u:hunter2@h:1",
            "redis+cluster://u:hunter2@h:1/3",
            "redis+cluster://u:hunter2@h:x",
        ] {
            assert!(!error(url).contains("hunter2"), "{}", error(url));
        }
    }
}
