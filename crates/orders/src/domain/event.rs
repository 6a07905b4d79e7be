//! The event contract: what the outbox stores and the bus carries.
//!
//! Subject `orders.<kind>`; JSON body `{event_id, type, occurred_at,
//! order}` where `order` is the order exactly as the API shows it after the
//! change (`version` orders the events of one order). Fields are only ever
//! added; consumers ignore what they do not know.

use super::{Order, OrderStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Confirmed,
    Shipped,
    Cancelled,
}

impl EventKind {
    /// The event a change into `status` produces.
    pub fn entering(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending => Self::Created,
            OrderStatus::Confirmed => Self::Confirmed,
            OrderStatus::Shipped => Self::Shipped,
            OrderStatus::Cancelled => Self::Cancelled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Builds the bus event for a change of `order`.
pub struct OrderEvent;

impl OrderEvent {
    pub fn of(order: &Order, traceparent: Option<String>, now: DateTime<Utc>) -> bus::Event {
        let kind = EventKind::entering(order.status);
        let id = format!("evt_{:032x}", rand::random::<u128>());
        let payload = json!({
            "event_id": id,
            "type": format!("order.{}", kind.as_str()),
            "occurred_at": now.to_rfc3339_opts(SecondsFormat::Micros, true),
            "order": order_json(order),
        });
        bus::Event {
            subject: format!("orders.{}", kind.as_str()),
            key: order.id.to_string(),
            payload: payload.to_string().into(),
            traceparent,
            occurred_at: now,
            id,
        }
    }
}

/// The order as the API and the events show it.
pub fn order_json(order: &Order) -> Value {
    let items: Vec<Value> = order
        .items
        .iter()
        .map(|i| {
            json!({
                "sku": i.sku.as_str(),
                "quantity": i.quantity.get(),
                "unit_price_minor": i.unit_price_minor,
                "line_total_minor": i.line_total_minor,
            })
        })
        .collect();
    json!({
        "id": order.id.as_str(),
        "customer_id": order.customer_id.as_str(),
        "status": order.status.as_str(),
        "currency": order.currency.as_str(),
        "items": items,
        "total_minor": order.total_minor,
        "version": order.version,
        "created_at": order.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "updated_at": order.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}
