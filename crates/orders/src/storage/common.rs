//! The statements both adapters share. SQLite and PostgreSQL accept the
//! same SQL here (`$n` parameters, `ON CONFLICT`, partial indexes), so one
//! macro writes these methods for each store; what differs (connecting,
//! the relay's locking, id lists) stays in the adapter files.

/// Inherent methods on `$store` (a struct with a `pool` of database `$db`)
/// that the adapters' `OrderStore` impls delegate to.
macro_rules! shared_statements {
    ($store:ty, $db:ty) => {
        impl $store {
    async fn insert_event(
        tx: &mut sqlx::Transaction<'_, $db>,
        event: &Event,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (id, order_id, subject, payload, traceparent, occurred_us)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&event.id)
        .bind(&event.key)
        .bind(&event.subject)
        .bind(payload_text(event)?)
        .bind(&event.traceparent)
        .bind(micros(event.occurred_at))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn existing_key(
        &self,
        idempotency: &IdempotentCreate<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<CreateOutcome>, StoreError> {
        // An expired key is deleted and the request proceeds as new.
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND expires_us <= $2")
            .bind(idempotency.key.as_str())
            .bind(micros(now))
            .execute(&self.pool)
            .await?;
        let row = sqlx::query(
            "SELECT fingerprint, response_status, response_body FROM idempotency_keys WHERE key = $1",
        )
        .bind(idempotency.key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(super::replay_or_conflict(
            idempotency,
            row.try_get("fingerprint")?,
            i64::from(row.try_get::<i32, _>("response_status")?),
            row.try_get("response_body")?,
        )))
    }

    async fn create_order(
        &self,
        order: &Order,
        event: &Event,
        idempotency: &IdempotentCreate<'_>,
        now: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError> {
        loop {
            let mut tx = self.pool.begin().await?;
            // First, so a concurrent request with the same key waits on the
            // unique index until this one commits, then sees it.
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (key, fingerprint, response_status, response_body, expires_us)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(idempotency.key.as_str())
            .bind(idempotency.fingerprint)
            .bind(i32::from(idempotency.response_status))
            .bind(idempotency.response_body)
            .bind(micros(idempotency.expires_at))
            .execute(&mut *tx)
            .await;
            match claimed {
                Err(e) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    match self.existing_key(idempotency, now).await? {
                        Some(outcome) => return Ok(outcome),
                        None => continue,
                    }
                }
                other => other?,
            };
            sqlx::query(
                "INSERT INTO orders (id, customer_id, currency, items, total_minor, status, version, created_us, updated_us)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(order.id.as_str())
            .bind(order.customer_id.as_str())
            .bind(order.currency.as_str())
            .bind(items_json(order))
            .bind(order.total_minor)
            .bind(order.status.as_str())
            .bind(order.version)
            .bind(micros(order.created_at))
            .bind(micros(order.updated_at))
            .execute(&mut *tx)
            .await?;
            Self::insert_event(&mut tx, event).await?;
            tx.commit().await?;
            return Ok(CreateOutcome::Created);
        }
    }

    async fn find_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| raw_order_from!(r).into_order().map(|(_, o)| o)).transpose()
    }

    async fn list_orders(
        &self,
        customer: &CustomerId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Order)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(customer.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| raw_order_from!(r).into_order()).collect()
    }

    async fn replace_order(
        &self,
        before: &Order,
        after: &Order,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE orders SET status = $1, version = $2, updated_us = $3 WHERE id = $4 AND version = $5",
        )
        .bind(after.status.as_str())
        .bind(after.version)
        .bind(micros(after.updated_at))
        .bind(before.id.as_str())
        .bind(before.version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        Self::insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn requeue(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET published_us = NULL WHERE published_us IS NOT NULL AND delivered_us IS NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn backlog_of(&self) -> Result<Backlog, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(occurred_us) AS oldest FROM outbox WHERE published_us IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Backlog {
            unpublished: row.try_get("n")?,
            oldest: row
                .try_get::<Option<i64>, _>("oldest")?
                .map(from_micros)
                .transpose()?,
        })
    }

    async fn purge_rows(
        &self,
        published_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let events = sqlx::query("DELETE FROM outbox WHERE published_us < $1")
            .bind(micros(published_before))
            .execute(&self.pool)
            .await?;
        let keys = sqlx::query("DELETE FROM idempotency_keys WHERE expires_us <= $1")
            .bind(micros(now))
            .execute(&self.pool)
            .await?;
        Ok(events.rows_affected() + keys.rows_affected())
    }
        }
    };
}
pub(super) use shared_statements;
