//! The orders domain, parsed once at the edge.
//!
//! A value of one of these types is valid by construction: the HTTP layer
//! parses request fields into them (naming the field in the error), and
//! storage and the state machine never re-check.

mod currency;
mod event;
mod ids;
mod order;

pub use currency::Currency;
pub use event::{order_json, EventKind, LineItemView, OrderEvent, OrderView};
pub use ids::{CustomerId, IdError, IdempotencyKey, OrderId, Sku};
pub use order::{
    Action, IllegalTransition, LineItem, NewOrder, Order, OrderError, OrderStatus, Quantity,
    MAX_ITEMS, MAX_QUANTITY,
};
