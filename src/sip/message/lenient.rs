//! A syntax-only parser (pure): start line, header lines and Content-Length, and nothing else.
//!
//! For messages we build ourselves and re-read (tests, benches, tooling), which may lack headers
//! a peer's message must have (e.g. the Via the transaction layer adds on sending). Peer input
//! always goes through the validating [`super::parse_with`].

use super::{Request, Response, SipMessage};
use bytes::Bytes;
use ezk_sip_types::Headers;
use ezk_sip_types::Name;
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use ezk_sip_types::parse::Parse;

/// Largest message [`parse_lenient`] reads, in bytes (a UDP datagram cannot be larger).
pub const MAX_LENIENT_BYTES: usize = 65_535;

/// Why [`parse_lenient`] could not read the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LenientError {
    /// Larger than [`MAX_LENIENT_BYTES`].
    #[error("message larger than {MAX_LENIENT_BYTES} bytes")]
    TooLarge,
    /// No empty line ends the head.
    #[error("message head is incomplete")]
    Incomplete,
    /// The head is not UTF-8.
    #[error("message head is not utf-8")]
    NotUtf8,
    /// Neither a request line nor a status line.
    #[error("malformed start line")]
    StartLine,
    /// A header line without `name:`.
    #[error("malformed header line")]
    HeaderLine,
    /// Content-Length is not a number or exceeds the bytes after the head.
    #[error("content-length does not match the body")]
    ContentLength,
}

/// Parses one message checking only its syntax; never panics.
pub fn parse_lenient(src: &[u8]) -> Result<SipMessage, LenientError> {
    if src.len() > MAX_LENIENT_BYTES {
        return Err(LenientError::TooLarge);
    }
    let src = Bytes::copy_from_slice(src);
    // RFC 3261 sec. 7.5: CRLFs before the start line are ignored (keep-alives).
    let skip = src
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .ok_or(LenientError::Incomplete)?;
    let mut parser = PullParser::new(&src[..], skip);
    let first = match parser.next() {
        Some(Ok(line)) => line,
        _ => return Err(LenientError::Incomplete),
    };
    let first = std::str::from_utf8(first).map_err(|_| LenientError::NotUtf8)?;
    let (rest, line) = MessageLine::parse(&src)(first).map_err(|_| LenientError::StartLine)?;
    if !rest.trim().is_empty() {
        return Err(LenientError::StartLine);
    }
    let mut headers = Headers::with_capacity(12);
    for item in parser.by_ref() {
        let raw = item.map_err(|_| LenientError::Incomplete)?;
        let text = std::str::from_utf8(raw).map_err(|_| LenientError::NotUtf8)?;
        let (_, header) = Line::parse(&src, text).map_err(|_| LenientError::HeaderLine)?;
        if header.name.as_print_str().is_empty() {
            return Err(LenientError::HeaderLine);
        }
        headers.insert(header.name, header.value);
    }
    let head_end = parser.head_end();
    if head_end > src.len() {
        return Err(LenientError::Incomplete);
    }
    let available = src.len() - head_end;
    let body_len = match headers.get_raw(&Name::CONTENT_LENGTH).next() {
        Some(value) => {
            let len: usize = value
                .trim()
                .parse()
                .map_err(|_| LenientError::ContentLength)?;
            if len > available {
                return Err(LenientError::ContentLength);
            }
            len
        }
        None => available,
    };
    let body = src.slice(head_end..head_end + body_len);
    Ok(match line {
        MessageLine::Request(line) => SipMessage::Request(Request {
            line,
            headers,
            body,
        }),
        MessageLine::Response(line) => SipMessage::Response(Response {
            line,
            headers,
            body,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_without_via_and_compact_headers() {
        let m = parse_lenient(
            b"INVITE sip:bob@example.com SIP/2.0\r\nf: <sip:a@x>;tag=1\r\nl: 4\r\n\r\nabcdEXTRA",
        )
        .expect("parse");
        let SipMessage::Request(r) = m else {
            panic!("request expected")
        };
        assert_eq!(&r.body[..], b"abcd");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for input in [
            &b""[..],
            b"\r\n\r\n",
            b"hello",
            b"INVITE sip:x SIP/2.0\r\n",
            b"SIP/2.0 200 OK\r\nl: 10\r\n\r\nabc",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse_lenient(input).is_err());
        }
    }
}
