//! Reading raw HTTP/1.1 responses byte by byte, for the tests and the benchmark
//! (`benches/agent.rs` includes this file): clients that send exactly the bytes they choose
//! need their own small parser. Self-contained: no `crate::` paths.

#![allow(dead_code)]

/// Where `needle` starts in `hay`, looking from `from` on.
pub fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The `Content-Length` of a response head, if it has one.
pub fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        let (name, value) = line.split_at(colon);
        if !name.eq_ignore_ascii_case(b"content-length") {
            return None;
        }
        std::str::from_utf8(value.get(1..)?)
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// A whole response at the start of `buf`: where its body starts and where it ends (by
/// `Content-Length`, none meaning an empty body). `None` until all of it is in `buf`.
pub fn complete(buf: &[u8]) -> Option<(usize, usize)> {
    let head_end = find(buf, b"\r\n\r\n", 0)? + 4;
    let total = head_end + content_length(buf.get(..head_end)?).unwrap_or(0);
    (buf.len() >= total).then_some((head_end, total))
}

/// The status code and the headers (names lower-cased, in order) of a response head.
pub fn parse_head(head: &str) -> Option<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers))
}
