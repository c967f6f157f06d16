//! The response body type every endpoint answers with: one buffer, sent whole.
//!
//! A hand-written body instead of a boxed one keeps the credential GET down to a reference
//! count increment (the bytes are rendered once per credential set, see [`super::render`]).
//! Bodies that carry secrets are built with [`secret`], which wipes the buffer when the last
//! reference to it is dropped.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Bytes, Frame, SizeHint};
use zeroize::Zeroizing;

/// A complete response body with an exact length (so hyper sends `Content-Length`).
#[derive(Debug, Default)]
pub struct Payload(Option<Bytes>);

impl Payload {
    pub fn new(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            Payload(None)
        } else {
            Payload(Some(bytes))
        }
    }

    pub(crate) fn from_static(text: &'static str) -> Self {
        Payload::new(Bytes::from_static(text.as_bytes()))
    }

    #[cfg(test)]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl hyper::body::Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// Bytes that are overwritten with zeros when the last clone is dropped.
pub(crate) fn secret(bytes: Vec<u8>) -> Bytes {
    Bytes::from_owner(Zeroizing::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    #[test]
    fn payload_reports_its_exact_length_and_ends_after_one_frame() {
        let mut p = Payload::new(Bytes::from_static(b"hello"));
        assert_eq!(p.size_hint().exact(), Some(5));
        assert!(!p.is_end_stream());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let frame = Pin::new(&mut p).poll_frame(&mut cx);
        let Poll::Ready(Some(Ok(frame))) = frame else {
            panic!("expected a data frame");
        };
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"hello")));
        assert!(p.is_end_stream());
        assert_eq!(p.size_hint().exact(), Some(0));
    }

    #[test]
    fn empty_payload_is_already_finished() {
        let p = Payload::new(Bytes::new());
        assert!(p.is_end_stream());
        assert_eq!(p.size_hint().exact(), Some(0));
    }

    #[test]
    fn secret_bytes_keep_their_content() {
        let b = secret(b"abc".to_vec());
        assert_eq!(&b[..], b"abc");
        let c = b.clone();
        drop(b);
        assert_eq!(&c[..], b"abc");
    }
}
