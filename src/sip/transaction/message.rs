//! Minimal SIP message container for the transaction and dialog layers (pure).
//!
//! `ezk-sip-types` 0.6 gives the parts (request/status line, [`Headers`], typed headers) but no
//! whole-message type, so this file holds the smallest one the transaction layer needs:
//! [`Request`], [`Response`] and [`SipMessage`] with a tolerant parser (RFC 3261 sec. 7, compact
//! header names included, Content-Length honoured) and a printer. The full validating parser and
//! the response builders live in `sip::message` (another branch); when it lands, these types are
//! meant to be replaced by it (same shape: line, headers, body).

use super::key::{copy_header, first_value};
use bytes::Bytes;
use ezk_sip_types::Headers;
use ezk_sip_types::Method;
use ezk_sip_types::Name;
use ezk_sip_types::StatusCode;
use ezk_sip_types::msg::{Line, MessageLine, PullParser, RequestLine, StatusLine};
use ezk_sip_types::parse::Parse;
use ezk_sip_types::print::{AppendCtx, PrintCtx, UriContext};
use ezk_sip_types::uri::SipUri;
use std::fmt::Write as _;

/// Largest message accepted by [`SipMessage::parse`], in bytes (a UDP datagram cannot be larger).
pub const MAX_MESSAGE_BYTES: usize = 65_535;

/// Why bytes could not be read as a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The input is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// The message head is not terminated by an empty line.
    #[error("message head is incomplete")]
    Incomplete,
    /// The head is not UTF-8.
    #[error("message head is not utf-8")]
    NotUtf8,
    /// The first line is neither a request line nor a status line.
    #[error("malformed start line")]
    StartLine,
    /// A header line has no `name:` part.
    #[error("malformed header line")]
    HeaderLine,
    /// Content-Length is not a number or larger than the bytes that follow the head.
    #[error("content-length does not match the body")]
    ContentLength,
}

/// A SIP request: request line, headers and body.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method and Request-URI.
    pub line: RequestLine,
    /// All headers in arrival order (Content-Length is recomputed when printing).
    pub headers: Headers,
    /// The message body (e.g. SDP), possibly empty.
    pub body: Bytes,
}

/// A SIP response: status line, headers and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code and reason phrase.
    pub line: StatusLine,
    /// All headers in arrival order (Content-Length is recomputed when printing).
    pub headers: Headers,
    /// The message body (e.g. SDP), possibly empty.
    pub body: Bytes,
}

/// Either a request or a response.
#[derive(Debug, Clone)]
pub enum SipMessage {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Request {
    /// A request with the given method and Request-URI, no headers and no body.
    pub fn new(method: Method, uri: SipUri) -> Self {
        Request {
            line: RequestLine { method, uri },
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.line.method
    }

    /// Prints the request to wire bytes, with a Content-Length matching the body.
    pub fn to_bytes(&self) -> Bytes {
        let ctx = PrintCtx {
            method: Some(&self.line.method),
            uri: Some(UriContext::ReqUri),
        };
        let mut out = String::with_capacity(512 + self.body.len());
        // Writing into a String cannot fail.
        let _ = write!(out, "{}\r\n", self.line.print_ctx(ctx));
        finish(out, &self.headers, &self.body)
    }
}

impl Response {
    /// A response with the given code, its standard reason phrase, no headers and no body.
    pub fn new(code: StatusCode) -> Self {
        Response {
            line: StatusLine {
                code,
                reason: code.text().map(Into::into),
            },
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response to `request` (RFC 3261 sec. 8.2.6.2): copies Via, From, To, Call-ID and
    /// CSeq; if `to_tag` is given and the To header has no tag yet, adds it.
    pub fn for_request(code: StatusCode, request: &Request, to_tag: Option<&str>) -> Self {
        let mut response = Response::new(code);
        // A missing header is simply not copied; the caller validated what it needs.
        copy_header(&request.headers, &mut response.headers, &Name::VIA);
        copy_header(&request.headers, &mut response.headers, &Name::FROM);
        let to = first_value(&request.headers, &Name::TO, |_, s| Some(s.to_string()));
        if let Some(to) = to {
            match to_tag {
                Some(tag) if !has_tag(&to) => {
                    // Appending `;tag=` is right for both name-addr and addr-spec forms (a
                    // param after an addr-spec is a header param) and avoids a parse-print.
                    response.headers.insert(Name::TO, format!("{to};tag={tag}"));
                }
                _ => response.headers.insert(Name::TO, to),
            }
        }
        copy_header(&request.headers, &mut response.headers, &Name::CALL_ID);
        copy_header(&request.headers, &mut response.headers, &Name::CSEQ);
        response
    }

    /// The status code as a number.
    pub fn code(&self) -> u16 {
        self.line.code.into_u16()
    }

    /// Prints the response to wire bytes, with a Content-Length matching the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.body.len());
        let _ = write!(out, "{}\r\n", self.line);
        finish(out, &self.headers, &self.body)
    }
}

/// Whether a raw From/To value carries a `tag` header parameter (looked for after the `>` of
/// a name-addr, so a URI parameter named tag does not count).
fn has_tag(value: &str) -> bool {
    let params = match value.rfind('>') {
        Some(end) => &value[end..],
        None => value,
    };
    params.split(';').skip(1).any(|p| {
        p.trim()
            .split('=')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("tag"))
    })
}

fn finish(mut out: String, headers: &Headers, body: &Bytes) -> Bytes {
    for (name, value) in headers.iter() {
        // Parsed "l" and "Content-Length" both print as "Content-Length"; comparing the print
        // name is much cheaper than `Name`'s alias-aware equality.
        if name.as_print_str().eq_ignore_ascii_case("content-length") {
            continue;
        }
        let _ = write!(out, "{}: {}\r\n", name.as_print_str(), value);
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

impl SipMessage {
    /// Parses one SIP message from `src` (a whole datagram, or one framed TCP message).
    ///
    /// Tolerant by design: only the start line, header syntax and Content-Length are checked
    /// here; the transaction layer checks the headers it needs. Never panics.
    pub fn parse(src: &Bytes) -> Result<SipMessage, MessageError> {
        if src.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge);
        }
        // RFC 3261 sec. 7.5: ignore CRLFs before the start line (keep-alives).
        let skip = src
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .ok_or(MessageError::Incomplete)?;
        let input = &src[..];
        let mut parser = PullParser::new(input, skip);
        let first = match parser.next() {
            Some(Ok(line)) => line,
            _ => return Err(MessageError::Incomplete),
        };
        let first = std::str::from_utf8(first).map_err(|_| MessageError::NotUtf8)?;
        let (rest, line) = MessageLine::parse(src)(first).map_err(|_| MessageError::StartLine)?;
        if !rest.trim().is_empty() {
            return Err(MessageError::StartLine);
        }
        let mut headers = Headers::with_capacity(12);
        for item in parser.by_ref() {
            let raw = item.map_err(|_| MessageError::Incomplete)?;
            let text = std::str::from_utf8(raw).map_err(|_| MessageError::NotUtf8)?;
            let (_, header) = Line::parse(src, text).map_err(|_| MessageError::HeaderLine)?;
            if header.name.as_print_str().is_empty() {
                return Err(MessageError::HeaderLine);
            }
            headers.insert(header.name, header.value);
        }
        let head_end = parser.head_end();
        if head_end > src.len() {
            return Err(MessageError::Incomplete);
        }
        let available = src.len() - head_end;
        let declared = first_value(&headers, &Name::CONTENT_LENGTH, |_, s| {
            Some(s.trim().parse::<usize>())
        });
        let body_len = match declared {
            Some(len) => {
                let len = len.map_err(|_| MessageError::ContentLength)?;
                if len > available {
                    return Err(MessageError::ContentLength);
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

    /// Prints the message to wire bytes.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKdef\r\n\
f: <sip:alice@example.com>;tag=1\r\n\
t: <sip:bob@example.com>\r\n\
i: call-1\r\n\
CSeq: 1 INVITE\r\n\
l: 4\r\n\
\r\n\
abcdEXTRA";

    #[test]
    fn parses_compact_headers_and_body() {
        let src = Bytes::from_static(INVITE);
        let SipMessage::Request(req) = SipMessage::parse(&src).expect("parse") else {
            panic!("expected a request");
        };
        assert_eq!(req.line.method, Method::INVITE);
        assert_eq!(&req.body[..], b"abcd");
        assert!(req.headers.contains(&Name::VIA));
        assert!(req.headers.contains(&Name::CALL_ID));
    }

    #[test]
    fn round_trips_through_print() {
        let src = Bytes::from_static(INVITE);
        let first = SipMessage::parse(&src).expect("parse");
        let printed = first.to_bytes();
        let SipMessage::Request(again) = SipMessage::parse(&printed).expect("reparse") else {
            panic!("expected a request");
        };
        assert_eq!(&again.body[..], b"abcd");
        assert_eq!(again.headers.get_raw(&Name::VIA).count(), 1);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for input in [
            &b""[..],
            b"\r\n\r\n",
            b"hello",
            b"INVITE sip:x SIP/2.0\r\n",
            b"SIP/2.0 200 OK\r\nl: 10\r\n\r\nabc",
            b"SIP/2.0 200 OK\r\n: x\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(SipMessage::parse(&Bytes::copy_from_slice(input)).is_err());
        }
    }

    #[test]
    fn to_tag_detection_ignores_uri_params() {
        assert!(has_tag("<sip:b@h>;tag=1"));
        assert!(has_tag("sip:b@h ; TAG = 1"));
        assert!(!has_tag("<sip:b@h;tag=1>"));
        assert!(!has_tag("\"x;tag=y\" <sip:b@h>;tagx=1"));
    }

    #[test]
    fn response_for_request_copies_headers_and_adds_tag() {
        let src = Bytes::from_static(INVITE);
        let SipMessage::Request(req) = SipMessage::parse(&src).expect("parse") else {
            panic!("expected a request");
        };
        let resp = Response::for_request(StatusCode::RINGING, &req, Some("xyz"));
        let printed = String::from_utf8(resp.to_bytes().to_vec()).expect("utf8");
        assert!(printed.starts_with("SIP/2.0 180 Ringing\r\n"), "{printed}");
        assert!(printed.contains(";tag=xyz"), "{printed}");
        assert!(printed.contains("Call-ID: call-1"), "{printed}");
    }
}
