//! Black-box tests of the console's router, on fake sources with fixed
//! data and a manual clock.

mod access;
mod api;
mod bad_input;
mod cost;
mod fake_cost;
mod module_apis;
mod pages;
mod support;
