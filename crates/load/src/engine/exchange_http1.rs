//! The HTTP/1.1 side of a [`Slot`]: the request rendered into bytes (or
//! taken ready-made from [`Prepared`]) and exchanged by [`super::super::wire`].

use super::super::client::{Answer, Http1, Origin};
use super::super::wire::{self, encode_request, Wanted, WireError};
use super::{Prepared, Slot, Target, Unsendable};
use crate::scenario::Render;
use http::Method;
use std::sync::Arc;

impl Slot {
    /// Renders an HTTP/1.1 request into `out` (left empty when the
    /// request is fixed: its bytes are in `fixed_wire`).
    pub(super) fn build_http1(
        &mut self,
        request: &Prepared,
        render: &mut Render<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Arc<Target>, Unsendable> {
        if let (Some(target), Some(_)) = (&request.fixed_target, &request.fixed_wire) {
            return Ok(target.clone());
        }
        let plan = &request.plan;
        let target = self.target(request, render)?;
        let rendered_body;
        let body: &[u8] = match (&request.fixed_body, &plan.body) {
            (Some(body), _) => body,
            (None, Some(template)) => {
                let mut body = Vec::new();
                template
                    .render(render, &mut body)
                    .map_err(|_| Unsendable::EmptyPool)?;
                rendered_body = body;
                &rendered_body
            }
            (None, None) => &[],
        };
        let mut dynamic = Vec::with_capacity(request.dynamic_headers.len());
        for &i in &request.dynamic_headers {
            dynamic.push(self.render_header(request, i, render)?);
        }
        encode_request(
            out,
            &plan.method,
            target.path_str(),
            target.host.as_bytes(),
            request
                .fixed_headers
                .iter()
                .map(|(n, v)| (n, v.as_bytes()))
                .chain(dynamic.iter().map(|(n, v)| (*n, v.as_bytes()))),
            body,
        );
        Ok(target)
    }

    /// The request's target, rendered if its URL is templated.
    pub(super) fn target(
        &mut self,
        request: &Prepared,
        render: &mut Render<'_>,
    ) -> Result<Arc<Target>, Unsendable> {
        match &request.fixed_target {
            Some(target) => Ok(target.clone()),
            None => {
                self.scratch.clear();
                request
                    .plan
                    .url
                    .render(render, &mut self.scratch)
                    .map_err(|_| Unsendable::EmptyPool)?;
                Ok(Arc::new(
                    Target::parse(&self.scratch).ok_or(Unsendable::BadRequest)?,
                ))
            }
        }
    }

    /// Sends `bytes` on this slot's connection to `origin`, opening one if
    /// needed. A kept-alive connection the server had closed in the
    /// meantime is replaced once, for the methods safe to send twice.
    pub(super) async fn send_http1(
        &mut self,
        origin: &Origin,
        bytes: &[u8],
        request: &Prepared,
    ) -> Result<Answer, ()> {
        let wanted = Wanted {
            head_request: request.plan.method == Method::HEAD,
            headers: request.keep_headers,
            body: request.keep_body,
        };
        let (mut connection, reused) = match self.http1.iter().position(|(o, _)| o == origin) {
            Some(i) => (self.http1.swap_remove(i).1, true),
            None => (self.open_http1(origin).await?, false),
        };
        let mut result = exchange(&mut connection, bytes, wanted).await;
        if reused
            && request.plan.method.is_idempotent()
            && matches!(result, Err(WireError::ClosedBeforeResponse))
        {
            connection = self.open_http1(origin).await?;
            result = exchange(&mut connection, bytes, wanted).await;
        }
        let response = result.map_err(|_| ())?;
        let received_at = connection.stream.take_received_at();
        if response.reusable {
            self.http1.push((origin.clone(), connection));
        }
        Ok(Answer {
            status: response.status,
            headers: response.headers,
            body: response.body,
            body_bytes: response.body_bytes,
            received_at,
        })
    }

    async fn open_http1(&self, origin: &Origin) -> Result<Http1, ()> {
        self.connector
            .http1(origin, self.harvester.as_ref())
            .await
            .map_err(|_| ())
    }
}

async fn exchange(
    connection: &mut Http1,
    bytes: &[u8],
    wanted: Wanted,
) -> Result<wire::Response, WireError> {
    wire::exchange(&mut connection.stream, &mut connection.inbox, bytes, wanted).await
}
