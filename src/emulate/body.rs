//! The emulator's HTTP bodies, on hyper alone: a whole buffer (sent with its length), or
//! `--oversized-body`'s filler, made as it is sent and sent chunked; and the bounded read
//! of a request body.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body as _, Bytes, Frame, Incoming, SizeHint};

/// A response body.
pub enum Body {
    /// One buffer, taken on the first poll.
    Full(Option<Bytes>),
    /// This many filler bytes, 64 KiB at a time, of unknown length to the client.
    Filler { left: u64 },
}

impl Body {
    pub fn full(text: String) -> Self {
        Body::Full(Some(Bytes::from(text)))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 64 * 1024] = [b' '; 64 * 1024];
        let frame = match &mut *self {
            Body::Full(bytes) => bytes.take(),
            Body::Filler { left: 0 } => None,
            Body::Filler { left } => {
                let n = (*left).min(CHUNK.len() as u64);
                *left -= n;
                CHUNK.get(..n as usize).map(Bytes::from_static)
            }
        };
        Poll::Ready(frame.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None) | Body::Filler { left: 0 })
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            // Unknown: hyper sends it chunked, so the client finds the size while reading.
            Body::Filler { .. } => SizeHint::default(),
        }
    }
}

/// The whole request body, or `None` when it breaks off or grows past `limit` bytes.
pub async fn read_limited(mut body: Incoming, limit: usize) -> Option<Bytes> {
    let mut buffer = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame.ok()?.into_data() {
            if buffer.len() + data.len() > limit {
                return None;
            }
            buffer.extend_from_slice(&data);
        }
    }
    Some(Bytes::from(buffer))
}
