//! Black-box tests of the console's router, on fake sources with fixed
//! data and a manual clock.

mod access;
mod api;
mod bad_input;
mod module_apis;
mod pages;
mod support;
