//! Black-box tests of the orders HTTP API: each test starts the module on
//! port 0 with its own SQLite file, the in-process bus and an injected
//! clock.

mod bad_input;
mod helpers;
mod orders;
