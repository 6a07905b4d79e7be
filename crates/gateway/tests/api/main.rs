//! Black-box tests of the gateway: real sockets, upstreams and gateways
//! on port 0, one binary (zero2prod's `tests/api` layout).

mod admission;
mod bad_input;
mod config;
mod helpers;
mod in_process;
mod rate_limits;
mod resilience;
mod routing;
mod split_admin;
mod splits;
mod streaming;
mod tls;
