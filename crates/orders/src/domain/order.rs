use super::{Currency, CustomerId, OrderId, Sku};
use chrono::{DateTime, Utc};
use std::fmt;

/// Items per order: a cart, not a catalogue (10,000 items is refused).
pub const MAX_ITEMS: usize = 100;
/// Units of one item.
pub const MAX_QUANTITY: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(value: i64) -> Result<Self, OrderError> {
        if value < 1 {
            return Err(OrderError::QuantityNotPositive);
        }
        if value > MAX_QUANTITY {
            return Err(OrderError::QuantityTooLarge);
        }
        Ok(Self(value))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("an order needs at least one item")]
    NoItems,
    #[error("an order has at most {MAX_ITEMS} items")]
    TooManyItems,
    #[error("must be at least 1")]
    QuantityNotPositive,
    #[error("must be at most {MAX_QUANTITY}")]
    QuantityTooLarge,
    #[error("must not be negative")]
    NegativePrice,
    #[error("quantity times unit price overflows a 64-bit amount")]
    Overflow,
}

/// One line of an order; `line_total_minor` is computed, never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
}

impl LineItem {
    pub fn new(sku: Sku, quantity: Quantity, unit_price_minor: i64) -> Result<Self, OrderError> {
        if unit_price_minor < 0 {
            return Err(OrderError::NegativePrice);
        }
        let line_total_minor = quantity
            .get()
            .checked_mul(unit_price_minor)
            .ok_or(OrderError::Overflow)?;
        Ok(Self {
            sku,
            quantity,
            unit_price_minor,
            line_total_minor,
        })
    }
}

/// A validated order request: at least one and at most [`MAX_ITEMS`]
/// items, a total that fits in an `i64` of minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub items: Vec<LineItem>,
    pub total_minor: i64,
}

impl NewOrder {
    pub fn new(
        customer_id: CustomerId,
        currency: Currency,
        items: Vec<LineItem>,
    ) -> Result<Self, OrderError> {
        if items.is_empty() {
            return Err(OrderError::NoItems);
        }
        if items.len() > MAX_ITEMS {
            return Err(OrderError::TooManyItems);
        }
        let total_minor = items.iter().try_fold(0i64, |sum, item| {
            sum.checked_add(item.line_total_minor)
                .ok_or(OrderError::Overflow)
        })?;
        Ok(Self {
            customer_id,
            currency,
            items,
            total_minor,
        })
    }

    /// A stable fingerprint of the request's meaning (not its bytes), so
    /// an idempotent replay may reformat its JSON.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(self.customer_id.as_str());
        hash.update([0]);
        hash.update(self.currency.as_str());
        for item in &self.items {
            hash.update([0]);
            hash.update(item.sku.as_str());
            hash.update(item.quantity.get().to_be_bytes());
            hash.update(item.unit_price_minor.to_be_bytes());
        }
        hex::encode(hash.finalize())
    }

    pub fn into_order(self, id: OrderId, now: DateTime<Utc>) -> Order {
        Order {
            id,
            customer_id: self.customer_id,
            currency: self.currency,
            items: self.items,
            total_minor: self.total_minor,
            status: OrderStatus::Pending,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub items: Vec<LineItem>,
    pub total_minor: i64,
    pub status: OrderStatus,
    /// 1 at creation, +1 per transition: events carry it so consumers can
    /// order what they receive.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `pending -> confirmed -> shipped`; `cancelled` from pending or confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Shipped,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Confirm,
    Ship,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an order that is {from}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub action: Action,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Confirmed,
            Self::Shipped,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    /// The state machine: the status after `action`, or why not.
    pub fn apply(self, action: Action) -> Result<Self, IllegalTransition> {
        match (self, action) {
            (Self::Pending, Action::Confirm) => Ok(Self::Confirmed),
            (Self::Confirmed, Action::Ship) => Ok(Self::Shipped),
            (Self::Pending | Self::Confirmed, Action::Cancel) => Ok(Self::Cancelled),
            (from, action) => Err(IllegalTransition { from, action }),
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Confirm => "confirm",
            Self::Ship => "ship",
            Self::Cancel => "cancel",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(qty: i64, price: i64) -> Result<LineItem, OrderError> {
        LineItem::new(
            Sku::parse("sku-1").expect("sku"),
            Quantity::parse(qty)?,
            price,
        )
    }

    fn order(items: Vec<LineItem>) -> Result<NewOrder, OrderError> {
        NewOrder::new(
            CustomerId::parse("c1").expect("id"),
            Currency::parse("EUR").expect("eur"),
            items,
        )
    }

    #[test]
    fn totals_are_computed_by_the_server() {
        let o = order(vec![
            item(2, 1250).expect("item"),
            item(1, 99).expect("item"),
        ])
        .expect("order");
        assert_eq!(o.total_minor, 2599);
        assert_eq!(o.items[0].line_total_minor, 2500);
    }

    #[test]
    fn bad_quantities_prices_and_overflow_are_refused() {
        assert_eq!(item(0, 1), Err(OrderError::QuantityNotPositive));
        assert_eq!(item(-3, 1), Err(OrderError::QuantityNotPositive));
        assert_eq!(item(MAX_QUANTITY + 1, 1), Err(OrderError::QuantityTooLarge));
        assert_eq!(item(1, -1), Err(OrderError::NegativePrice));
        assert_eq!(item(2, i64::MAX), Err(OrderError::Overflow));
        let big = item(1, i64::MAX).expect("fits");
        assert_eq!(order(vec![big.clone(), big]), Err(OrderError::Overflow));
    }

    #[test]
    fn item_count_is_bounded() {
        assert_eq!(order(vec![]), Err(OrderError::NoItems));
        let many = vec![item(1, 1).expect("item"); MAX_ITEMS + 1];
        assert_eq!(order(many), Err(OrderError::TooManyItems));
    }

    #[test]
    fn the_state_machine_allows_only_forward_moves() {
        use Action::*;
        use OrderStatus::*;
        assert_eq!(Pending.apply(Confirm), Ok(Confirmed));
        assert_eq!(Confirmed.apply(Ship), Ok(Shipped));
        assert_eq!(Pending.apply(Cancel), Ok(Cancelled));
        assert_eq!(Confirmed.apply(Cancel), Ok(Cancelled));
        for (from, action) in [
            (Pending, Ship),
            (Confirmed, Confirm),
            (Shipped, Cancel),
            (Shipped, Ship),
            (Cancelled, Confirm),
            (Cancelled, Cancel),
        ] {
            assert_eq!(from.apply(action), Err(IllegalTransition { from, action }));
        }
    }

    #[test]
    fn fingerprints_depend_on_meaning_only() {
        let a = order(vec![item(1, 5).expect("item")]).expect("order");
        let b = order(vec![item(1, 5).expect("item")]).expect("order");
        let c = order(vec![item(2, 5).expect("item")]).expect("order");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["pending", "confirmed", "shipped", "cancelled"] {
            assert_eq!(OrderStatus::parse(s).map(|s| s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("lost"), None);
    }
}
