//! `POST /api/v1/orders` bodies, parsed as the handler parses them.
//! Properties: every refusal is a 4xx problem (never a 500); an accepted
//! order has 1 to 100 items, positive quantities, non-negative prices and
//! a total equal to the sum of its lines; and the same order written back
//! as a request parses to an equal order with the same idempotency
//! fingerprint (replays may reformat their JSON).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orders::domain::MAX_ITEMS;

fuzz_target!(|data: &[u8]| {
    let order = match orders::parse_create_body(data) {
        Ok(order) => order,
        Err(problem) => {
            assert!(
                problem.status().is_client_error(),
                "{} for {:?}",
                problem.status(),
                String::from_utf8_lossy(data)
            );
            return;
        }
    };
    assert!((1..=MAX_ITEMS).contains(&order.items.len()));
    let mut total: i64 = 0;
    for item in &order.items {
        assert!(item.quantity.get() >= 1);
        assert!(item.unit_price_minor >= 0);
        assert_eq!(
            Some(item.line_total_minor),
            item.quantity.get().checked_mul(item.unit_price_minor)
        );
        total = total
            .checked_add(item.line_total_minor)
            .expect("accepted totals fit");
    }
    assert_eq!(order.total_minor, total);

    let again = serde_json::json!({
        "customer_id": order.customer_id.as_str(),
        "currency": order.currency.as_str(),
        "items": order.items.iter().map(|item| serde_json::json!({
            "sku": item.sku.as_str(),
            "quantity": item.quantity.get(),
            "unit_price_minor": item.unit_price_minor,
        })).collect::<Vec<_>>(),
    });
    let reparsed = orders::parse_create_body(again.to_string().as_bytes())
        .unwrap_or_else(|p| panic!("canonical form refused: {}", p.status()));
    assert_eq!(reparsed, order);
    assert_eq!(reparsed.fingerprint(), order.fingerprint());
});
