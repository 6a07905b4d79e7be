//! The event contract: what the outbox stores and the bus carries.
//!
//! Subject `orders.<kind>`; JSON body `{event_id, type, occurred_at,
//! order}` where `order` is the order exactly as the API shows it after the
//! change (`version` orders the events of one order). Fields are only ever
//! added; consumers ignore what they do not know.

use super::{Order, OrderStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
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

/// The order as the API and the events show it: one struct for both, so
/// the OpenAPI schema is what is serialized.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    /// `ord_` and 32 hexadecimal digits.
    pub id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    /// ISO 4217 code.
    #[schema(example = "EUR")]
    pub currency: String,
    pub items: Vec<LineItemView>,
    /// Sum of the line totals, in minor units (cents).
    pub total_minor: i64,
    /// 1 at creation, +1 per transition; orders the events of one order.
    pub version: i64,
    /// RFC 3339, microseconds, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LineItemView {
    pub sku: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
}

impl OrderView {
    pub fn of(order: &Order) -> Self {
        Self {
            id: order.id.as_str().to_string(),
            customer_id: order.customer_id.as_str().to_string(),
            status: order.status,
            currency: order.currency.as_str().to_string(),
            items: order
                .items
                .iter()
                .map(|i| LineItemView {
                    sku: i.sku.as_str().to_string(),
                    quantity: i.quantity.get(),
                    unit_price_minor: i.unit_price_minor,
                    line_total_minor: i.line_total_minor,
                })
                .collect(),
            total_minor: order.total_minor,
            version: order.version,
            created_at: order
                .created_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            updated_at: order
                .updated_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        }
    }
}

/// [`OrderView`] as JSON.
pub fn order_json(order: &Order) -> Value {
    serde_json::to_value(OrderView::of(order)).unwrap_or(Value::Null)
}
