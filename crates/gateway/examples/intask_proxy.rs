//! Prototype: a bare hyper proxy whose upstream connection is driven in
//! the downstream connection's task (one upstream connection per client
//! connection), to measure what cross-task hand-offs cost.

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Conn = (
    SendRequest<Incoming>,
    Connection<TokioIo<tokio::net::TcpStream>, Incoming>,
);
type Slot = Arc<Mutex<Option<Conn>>>;

struct Driven {
    body: Incoming,
    conn: Option<Conn>,
    slot: Slot,
}

impl hyper::body::Body for Driven {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some((_, connection)) = &mut this.conn {
            if let Poll::Ready(_) = Pin::new(connection).poll(cx) {
                this.conn = None;
            }
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(&frame, Poll::Ready(None)) || this.body.is_end_stream() {
            if let Some(conn) = this.conn.take() {
                if let Ok(mut slot) = this.slot.lock() {
                    *slot = Some(conn);
                }
            }
        }
        frame
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: intask_proxy LISTEN_ADDR UPSTREAM_HOST:PORT".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let upstream: SocketAddr = upstream.parse()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let slot: Slot = Arc::new(Mutex::new(None));
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let slot = slot.clone();
                async move {
                    let taken = slot.lock().ok().and_then(|mut s| s.take());
                    let (mut sender, mut connection) = match taken {
                        Some(conn) => conn,
                        None => {
                            let tcp = tokio::net::TcpStream::connect(upstream).await?;
                            tcp.set_nodelay(true)?;
                            hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                                .await
                                .map_err(std::io::Error::other)?
                        }
                    };
                    let mut response = std::pin::pin!(sender.send_request(request));
                    let response = std::future::poll_fn(|cx| {
                        if let Poll::Ready(done) = Pin::new(&mut connection).poll(cx) {
                            // Closed: the response future says why.
                            let _ = done;
                        }
                        response.as_mut().poll(cx)
                    })
                    .await
                    .map_err(std::io::Error::other)?;
                    Ok::<_, std::io::Error>(response.map(|body| Driven {
                        body,
                        conn: Some((sender, connection)),
                        slot: slot.clone(),
                    }))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
