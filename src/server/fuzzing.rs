//! Entry points for the fuzz targets under `fuzz/`: the routes and the connection handler,
//! which are private to the server. Hidden from the docs and not an API: they follow the
//! server's internals and change with them.

use std::future::pending;
use std::io;
use std::sync::Arc;

use hyper::{HeaderMap, Method, Response};
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::Payload;
use super::conn::{self, Acceptor};
use super::routes::{Answer, Endpoints, Handler, UnixEndpoints};
use super::{IdentityKey, Limits, ServerConfig, ServerStats};

fn stats() -> Arc<ServerStats> {
    Arc::new(ServerStats::default())
}
use crate::agent::CredentialSource;

/// Hands out one stream, then waits forever: the accept loop serves exactly one connection.
struct Once<S>(Option<S>);

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Acceptor for Once<S> {
    type Stream = S;

    async fn accept(&mut self) -> io::Result<(S, u32)> {
        match self.0.take() {
            // Peer key 0: every TCP client shares one quota.
            Some(stream) => Ok((stream, 0)),
            None => pending().await,
        }
    }
}

/// The endpoints of one listener: the TCP ones (IMDS, container, health) or the unix
/// socket's.
#[derive(Clone)]
pub struct Listener(Kind);

#[derive(Clone)]
enum Kind {
    Tcp(Arc<Endpoints>),
    Unix(Arc<UnixEndpoints>),
}

impl Listener {
    /// The TCP endpoints, as if bound to an unknown address: the `Host` rule then accepts
    /// the loopback names with any port.
    pub fn tcp(source: Arc<dyn CredentialSource>, config: Arc<ServerConfig>) -> Self {
        Listener(Kind::Tcp(Arc::new(Endpoints::new(source, config, None))))
    }

    pub fn unix(source: Arc<dyn CredentialSource>, identity_key: IdentityKey) -> Self {
        Listener(Kind::Unix(Arc::new(UnixEndpoints::new(
            source,
            identity_key,
        ))))
    }

    /// The answer to one request head, as the connection handler would get it; `None` when
    /// `target` is no request target hyper would hand over. An answer that waits off the
    /// runtime thread (the container route's token file) is waited for on `runtime`.
    pub fn respond(
        &self,
        runtime: &tokio::runtime::Runtime,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
    ) -> Option<Response<Payload>> {
        let mut request = hyper::Request::new(());
        *request.method_mut() = method.clone();
        *request.uri_mut() = target.parse().ok()?;
        *request.headers_mut() = headers.clone();
        let (head, ()) = request.into_parts();
        let answer = match &self.0 {
            Kind::Tcp(h) => Handler::respond(h, &head),
            Kind::Unix(h) => Handler::respond(h, &head),
        };
        Some(match answer {
            Answer::Now(response) => response,
            Answer::Later(response) => runtime.block_on(response),
        })
    }

    /// Serves `stream` as one accepted connection through the real accept loop. Never
    /// returns by itself: drop the future once the client side has read to the end.
    pub async fn serve<S>(&self, stream: S, limits: Limits)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let _ = match &self.0 {
            Kind::Tcp(h) => {
                conn::serve(Once(Some(stream)), h.clone(), limits, stats(), pending()).await
            }
            Kind::Unix(h) => {
                conn::serve(Once(Some(stream)), h.clone(), limits, stats(), pending()).await
            }
        };
    }
}
