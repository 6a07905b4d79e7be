//! Tests of the judge: known values, the pieces' edge cases, power and
//! A/A simulations, the SLO guard, configuration.

mod aa;
mod config;
mod guard;
mod inputs;
mod known_values;
mod power;
mod sim;
mod verdicts;
