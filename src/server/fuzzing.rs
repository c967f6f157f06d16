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
use super::routes::{Endpoints, Handler, UnixEndpoints};
use super::{IdentityKey, Limits, ServerConfig};
use crate::agent::CredentialSource;

/// Hands out one stream, then waits forever: the accept loop serves exactly one connection.
struct Once<S>(Option<S>);

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Acceptor for Once<S> {
    type Stream = S;

    async fn accept(&mut self) -> io::Result<S> {
        match self.0.take() {
            Some(stream) => Ok(stream),
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
    pub fn tcp(source: Arc<dyn CredentialSource>, config: Arc<ServerConfig>) -> Self {
        Listener(Kind::Tcp(Arc::new(Endpoints::new(source, config))))
    }

    pub fn unix(source: Arc<dyn CredentialSource>, identity_key: IdentityKey) -> Self {
        Listener(Kind::Unix(Arc::new(UnixEndpoints::new(
            source,
            identity_key,
        ))))
    }

    /// The answer to one request head, as the connection handler would get it.
    pub fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Payload> {
        match &self.0 {
            Kind::Tcp(h) => h.respond(method, path, headers),
            Kind::Unix(h) => h.respond(method, path, headers),
        }
    }

    /// Serves `stream` as one accepted connection through the real accept loop. Never
    /// returns by itself: drop the future once the client side has read to the end.
    pub async fn serve<S>(&self, stream: S, limits: Limits)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let _ = match &self.0 {
            Kind::Tcp(h) => conn::serve(Once(Some(stream)), h.clone(), limits, pending()).await,
            Kind::Unix(h) => conn::serve(Once(Some(stream)), h.clone(), limits, pending()).await,
        };
    }
}
