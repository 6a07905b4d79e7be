//! [`Routes`]: an axum router that remembers its path templates, and
//! [`Front`]: what the server serves, with a way around axum for the
//! requests none of those templates match.
//!
//! axum cannot list a router's routes, and a request for a path no route
//! matches pays for axum's miss: a second lookup in its fallback router,
//! the whole path percent-decoded into the request's parameters, the
//! original URI copied into the extensions, a boxed service clone and a
//! boxed future, about 2,000 instructions a request on the gateway's proxy
//! path (issue 18). A front whose catch-all answers most requests (the
//! gateway's proxy) builds its own routes as [`Routes`], and the server
//! tells with one `matchit` lookup that a path is none of them and hands
//! the request straight to the observed catch-all.
//!
//! A router whose paths are not known ([`Routes::opaque`]) makes the set
//! unknown, and then every request goes through axum as before: the way
//! around is an optimisation that a wrong path set could turn into a
//! misrouted request, so it is only taken when every route was recorded.

use super::observe::ObserveService;
use super::CatchAll;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// An axum router and the templates of its routes.
///
/// It converts into a `Router` (`Router::merge` takes it as it is), and
/// merging two keeps both sets. Build a front's routes with it, from
/// [`Routes::new`] up; a router built elsewhere joins as
/// [`Routes::opaque`], which turns the way around axum off.
pub struct Routes<S = ()> {
    router: Router<S>,
    /// `None`: some route's template is not known.
    templates: Option<Vec<String>>,
}

impl<S> Default for Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            templates: Some(Vec::new()),
        }
    }

    /// A router whose routes are not known: merged into others, it makes
    /// their set unknown too.
    pub fn opaque(router: Router<S>) -> Self {
        Self {
            router,
            templates: None,
        }
    }

    /// The routes of a router built with `utoipa-axum`, whose document
    /// lists every path the router routes (`OpenApiRouter::split_for_parts`
    /// gives both from the same `routes!`), in axum's template syntax.
    pub fn documented(router: Router<S>, document: &utoipa::openapi::OpenApi) -> Self {
        Self {
            router,
            templates: Some(document.paths.paths.keys().cloned().collect()),
        }
    }

    /// `Router::route`, recorded.
    #[must_use]
    pub fn route(mut self, path: &str, method_router: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, method_router);
        self.record(path);
        self
    }

    /// `Router::route_service`, recorded.
    #[must_use]
    pub fn route_service<T>(mut self, path: &str, service: T) -> Self
    where
        T: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Future: Send + 'static,
    {
        self.router = self.router.route_service(path, service);
        self.record(path);
        self
    }

    /// `Router::merge`: both routers' routes, and both sets.
    #[must_use]
    pub fn merge(self, other: Routes<S>) -> Self {
        let templates = match (self.templates, other.templates) {
            (Some(mut mine), Some(theirs)) => {
                mine.extend(theirs);
                Some(mine)
            }
            _ => None,
        };
        Self {
            router: self.router.merge(other.router),
            templates,
        }
    }

    /// `Router::with_state`.
    pub fn with_state<S2>(self, state: S) -> Routes<S2> {
        Routes {
            router: self.router.with_state(state),
            templates: self.templates,
        }
    }

    /// The templates, when every route's is known.
    pub fn templates(&self) -> Option<&[String]> {
        self.templates.as_deref()
    }

    fn record(&mut self, path: &str) {
        if let Some(templates) = &mut self.templates {
            templates.push(path.to_string());
        }
    }
}

impl<S> From<Routes<S>> for Router<S> {
    fn from(routes: Routes<S>) -> Self {
        routes.router
    }
}

/// What [`crate::server::HttpServer::serve`] serves: a stacked router,
/// and, when its own routes are known and a catch-all answers the rest
/// ([`super::front`]), the way around axum for the rest.
#[derive(Clone)]
pub struct Front {
    router: Router,
    direct: Option<Arc<Direct>>,
}

/// The front's own paths, and its observed catch-all.
struct Direct {
    own: matchit::Router<()>,
    catch_all: ObserveService<CatchAll>,
}

impl Front {
    pub(super) fn with_catch_all(
        router: Router,
        templates: Option<&[String]>,
        catch_all: ObserveService<CatchAll>,
    ) -> Self {
        let own = templates.and_then(|templates| {
            let mut own = matchit::Router::new();
            // A template routed twice (a method added to a path) is one
            // route to axum, and would be a conflict to matchit.
            let unique: std::collections::BTreeSet<&str> =
                templates.iter().map(String::as_str).collect();
            for template in unique {
                // axum accepted it, so matchit does: the same version and
                // syntax. Should it not, axum decides every request.
                own.insert(template, ()).ok()?;
            }
            Some(own)
        });
        Self {
            router,
            direct: own.map(|own| Arc::new(Direct { own, catch_all })),
        }
    }

    /// The stacked router (every request through axum).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Whether a request for `path` goes around axum, to the catch-all.
    pub fn goes_around(&self, path: &str) -> bool {
        self.direct
            .as_ref()
            .is_some_and(|direct| direct.own.at(path).is_err())
    }

    /// Answers `request` from `peer` (the client's address, when known):
    /// the catch-all directly for a path none of the front's routes match,
    /// with the peer as an argument; the router otherwise, with the peer
    /// as axum's `ConnectInfo`.
    pub fn call(&self, mut request: Request, peer: Option<SocketAddr>) -> FrontFuture {
        match &self.direct {
            Some(direct) if direct.own.at(request.uri().path()).is_err() => FrontFuture::Direct {
                future: direct.catch_all.call_ref(request, peer),
            },
            _ => {
                if let Some(peer) = peer {
                    request.extensions_mut().insert(ConnectInfo(peer));
                }
                // `Router` is always ready; `call` on a clone is what
                // `oneshot` would do, without its extra state machine.
                FrontFuture::Routed {
                    future: self.router.clone().call(request),
                }
            }
        }
    }
}

impl From<Router> for Front {
    fn from(router: Router) -> Self {
        Self {
            router,
            direct: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Front::call`].
    #[project = FrontFutureProj]
    pub enum FrontFuture {
        Routed { #[pin] future: axum::routing::future::RouteFuture<Infallible> },
        Direct { future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> },
    }
}

impl Future for FrontFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FrontFutureProj::Routed { future } => future.poll(cx),
            FrontFutureProj::Direct { future } => future.as_mut().poll(cx),
        }
    }
}
