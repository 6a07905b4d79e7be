//! Tests of the judge: known values, the pieces' edge cases, power and
//! A/A simulations, configuration.

mod inputs;
mod known_values;
mod verdicts;
