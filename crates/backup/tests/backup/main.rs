//! The backup engine against real stores: round trips on both engines,
//! and every bad input the restore must refuse without touching the
//! target.

mod postgres;
mod refusals;
mod sqlite;
mod support;
