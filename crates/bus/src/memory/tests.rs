//! The in-process adapter's timing, on tokio's paused clock: a nak'ed
//! delivery waits out its delay in the consumer's state (no timer task),
//! so the test advances time instead of sleeping.

use super::*;
use chrono::{TimeZone, Utc};
use tokio::time::timeout;

fn event(id: &str) -> Event {
    Event {
        id: id.to_string(),
        subject: "orders.created".into(),
        key: format!("order-of-{id}"),
        payload: format!("{{\"id\":\"{id}\"}}").into(),
        traceparent: None,
        occurred_at: Utc
            .with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
            .single()
            .expect("time"),
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn a_naked_delivery_comes_back_after_its_delay_and_not_before() {
    let bus = InProcessBus::new();
    bus.publish(&[event("n")]).await.expect("publish");
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    let first = sub.next().await.expect("first delivery");
    let delay = Duration::from_secs(30);
    let naked_at = Instant::now();
    first.nak(delay).await.expect("nak");
    assert_eq!(alive_tasks(), 0, "a nak spawns no task");

    // The paused clock jumps to the receive timeout: nothing came back.
    let early = timeout(delay - Duration::from_millis(1), sub.next()).await;
    assert!(early.is_err(), "redelivered before its delay");
    assert_eq!(sub.pending().await, Some(0));

    let again = sub.next().await.expect("redelivery");
    assert!(naked_at.elapsed() >= delay);
    assert_eq!((again.event.id.as_str(), again.attempt), ("n", 2));
}

#[tokio::test(start_paused = true)]
async fn a_receiver_already_waiting_wakes_when_a_nak_falls_due() {
    let bus = InProcessBus::new();
    bus.publish(&[event("a")]).await.expect("publish");
    let mut worker = bus.subscribe("worker").await.expect("subscribe");
    let mut other = bus.subscribe("worker").await.expect("second subscription");
    let first = worker.next().await.expect("delivery");
    let naked_at = Instant::now();
    // `other` is already waiting when the nak arrives.
    let waiting = other.next();
    let (_, again) = tokio::join!(first.nak(Duration::from_secs(5)), waiting);
    let again = again.expect("redelivery");
    assert!(naked_at.elapsed() >= Duration::from_secs(5));
    assert_eq!(again.attempt, 2);
}

#[tokio::test(start_paused = true)]
async fn a_redelivery_falls_in_behind_what_was_published_before_it_was_due() {
    let bus = InProcessBus::new();
    bus.publish(&[event("late")]).await.expect("publish");
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    sub.next()
        .await
        .expect("delivery")
        .nak(Duration::from_secs(1))
        .await
        .expect("nak");
    bus.publish(&[event("early")]).await.expect("publish");
    tokio::time::advance(Duration::from_secs(2)).await;
    bus.publish(&[event("after-due")]).await.expect("publish");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let delivery = sub.next().await.expect("delivery");
        ids.push(delivery.event.id.clone());
        delivery.ack().await.expect("ack");
    }
    assert_eq!(ids, ["early", "late", "after-due"]);
}

#[tokio::test(start_paused = true)]
async fn a_naked_delivery_outlives_its_subscription() {
    let bus = InProcessBus::new();
    bus.publish(&[event("kept")]).await.expect("publish");
    {
        let mut sub = bus.subscribe("worker").await.expect("subscribe");
        let delivery = sub.next().await.expect("delivery");
        delivery.nak(Duration::from_secs(60)).await.expect("nak");
    }
    let mut sub = bus.subscribe("worker").await.expect("resubscribe");
    let again = sub.next().await.expect("redelivery after the delay");
    assert_eq!((again.event.id.as_str(), again.attempt), ("kept", 2));
}

#[tokio::test(start_paused = true)]
async fn a_delay_too_long_to_represent_does_not_panic() {
    let bus = InProcessBus::new();
    bus.publish(&[event("x")]).await.expect("publish");
    let mut sub = bus.subscribe("worker").await.expect("subscribe");
    let delivery = sub.next().await.expect("delivery");
    delivery.nak(Duration::MAX).await.expect("nak");
    let soon = timeout(Duration::from_secs(86_400), sub.next()).await;
    assert!(soon.is_err());
}
