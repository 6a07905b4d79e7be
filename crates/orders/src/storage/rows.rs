//! Rows as both adapters read them, and their conversion to domain types.

use super::StoreError;
use crate::domain::{Currency, CustomerId, LineItem, Order, OrderId, OrderStatus, Quantity, Sku};
use bus::Event;
use serde::{Deserialize, Serialize};

pub(super) const ORDER_COLUMNS: &str =
    "seq, id, customer_id, currency, items, total_minor, status, version, created_us, updated_us";
pub(super) const EVENT_COLUMNS: &str =
    "seq, id, order_id, subject, payload, traceparent, occurred_us";

/// Times are stored as `kit::storage::time` says (Unix microseconds).
pub(super) use kit::storage::time::{from_micros, to_micros as micros};

#[derive(Serialize, Deserialize)]
struct StoredItem {
    sku: String,
    quantity: i64,
    unit_price_minor: i64,
}

pub(super) fn items_json(order: &Order) -> String {
    let items: Vec<StoredItem> = order
        .items
        .iter()
        .map(|i| StoredItem {
            sku: i.sku.to_string(),
            quantity: i.quantity.get(),
            unit_price_minor: i.unit_price_minor,
        })
        .collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_string())
}

/// An `orders` row with adapter-neutral types.
pub(super) struct RawOrder {
    pub seq: i64,
    pub id: String,
    pub customer_id: String,
    pub currency: String,
    pub items: String,
    pub total_minor: i64,
    pub status: String,
    pub version: i64,
    pub created_us: i64,
    pub updated_us: i64,
}

macro_rules! raw_order_from {
    ($row:expr) => {
        super::rows::RawOrder {
            seq: $row.try_get("seq")?,
            id: $row.try_get("id")?,
            customer_id: $row.try_get("customer_id")?,
            currency: $row.try_get("currency")?,
            items: $row.try_get("items")?,
            total_minor: $row.try_get("total_minor")?,
            status: $row.try_get("status")?,
            version: $row.try_get("version")?,
            created_us: $row.try_get("created_us")?,
            updated_us: $row.try_get("updated_us")?,
        }
    };
}
pub(super) use raw_order_from;

macro_rules! raw_event_from {
    ($row:expr) => {
        super::rows::RawEvent {
            id: $row.try_get("id")?,
            order_id: $row.try_get("order_id")?,
            subject: $row.try_get("subject")?,
            payload: $row.try_get("payload")?,
            traceparent: $row.try_get("traceparent")?,
            occurred_us: $row.try_get("occurred_us")?,
        }
    };
}
pub(super) use raw_event_from;

impl RawOrder {
    pub fn into_order(self) -> Result<(i64, Order), StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("{what} of order {}", self.id));
        let stored: Vec<StoredItem> =
            serde_json::from_str(&self.items).map_err(|_| corrupt("items"))?;
        let items = stored
            .into_iter()
            .map(|i| {
                let sku = Sku::parse(&i.sku).map_err(|_| corrupt("sku"))?;
                let quantity = Quantity::parse(i.quantity).map_err(|_| corrupt("quantity"))?;
                LineItem::new(sku, quantity, i.unit_price_minor).map_err(|_| corrupt("price"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let order = Order {
            id: OrderId::parse(&self.id).map_err(|_| corrupt("id"))?,
            customer_id: CustomerId::parse(&self.customer_id).map_err(|_| corrupt("customer"))?,
            currency: Currency::parse(&self.currency).ok_or_else(|| corrupt("currency"))?,
            status: OrderStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            items,
            total_minor: self.total_minor,
            version: self.version,
            created_at: from_micros(self.created_us)?,
            updated_at: from_micros(self.updated_us)?,
        };
        Ok((self.seq, order))
    }
}

/// An `outbox` row with adapter-neutral types.
pub(super) struct RawEvent {
    pub id: String,
    pub order_id: String,
    pub subject: String,
    pub payload: String,
    pub traceparent: Option<String>,
    pub occurred_us: i64,
}

impl RawEvent {
    pub fn into_event(self) -> Result<Event, StoreError> {
        Ok(Event {
            occurred_at: from_micros(self.occurred_us)?,
            id: self.id,
            subject: self.subject,
            key: self.order_id,
            payload: self.payload.into(),
            traceparent: self.traceparent,
        })
    }
}

/// The payload of an event as stored text (it was built as JSON text).
pub(super) fn payload_text(event: &Event) -> Result<&str, StoreError> {
    std::str::from_utf8(&event.payload)
        .map_err(|_| StoreError::Corrupt(format!("payload of event {} is not UTF-8", event.id)))
}
