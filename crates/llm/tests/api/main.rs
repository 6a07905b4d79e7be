//! The llm module, black-box over HTTP, in front of scripted backends.

mod bad_input;
mod failures;
mod helpers;
mod key_tokens;
mod limits;
mod streaming;
