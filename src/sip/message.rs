//! SIP message parse, validation and print (pure; RFC 3261 sec. 7, 8.1.1, 8.2.2, 18.3, 20;
//! RFC 3581 for `received`/`rport`).
//!
//! The grammar of header values (Via, From/To, CSeq, URIs, parameters) comes from
//! `ezk-sip-types`, which knows the compact header forms (`v:`, `f:`, `t:`, `i:`, `m:`, `l:`,
//! `c:`, `k:`, `s:` ...). This module owns what that crate leaves to its users: splitting a
//! datagram or a stream into a message head and body, unfolding continuation lines, the checks
//! RFC 3261 asks of a receiver, and the decision whether a malformed request can still be
//! answered with `400 Bad Request` (we could read its method, Via, From, To, Call-ID and CSeq)
//! or must be dropped. Parsing never panics on any input (property-tested below and in
//! `tests/sip_captured.rs`).
//!
//! Deliberate differences from the letter of RFC 3261:
//! - a bare LF is accepted as a line end, as most deployed stacks do;
//! - a head that is not valid UTF-8 is read lossily instead of rejected (Latin-1 display names
//!   are seen in the wild); the body is kept byte for byte;
//! - a method that is not exactly one of the known names but would be confused with one by
//!   the grammar (`invite`, `INVITEX`) is refused with `501 Not Implemented`;
//! - printing always writes one `Content-Length` computed from the body, and long header
//!   names;
//! - a quoted display name with escaped quotes (`"Joe \"J\" Smith"`), which ezk-sip-types'
//!   grammar stops at, is read a second time with the escapes removed (the raw header stays
//!   as received).
//!
//! Cost: ezk's `Headers` multimap compares names as strings on every insert and lookup, so
//! validation reads the mandatory headers while the head is split instead of looking them up
//! afterwards. Accessors (`top_via`, `cseq` ...) parse on demand; SIP is not a per-packet path
//! (see `benches/sip_parse.rs` for the figures).

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::{CSeq, Contact, FromTo, Routing, Via};
use ezk_sip_types::host::HostPort;
use ezk_sip_types::msg::{RequestLine, StatusLine};
use ezk_sip_types::print::{AppendCtx, PrintCtx, UriContext};
use ezk_sip_types::uri::{SipUri, SipUriUserPart};
use ezk_sip_types::{Headers, Method, Name, StatusCode};

/// Largest message (head and body) accepted on a stream transport; a peer that sends more
/// without a complete message is cut off instead of growing our buffer without bound.
pub const MAX_MESSAGE_BYTES: usize = 65_535;

/// The port a Via `sent-by` without a port means (RFC 3261 sec. 18.2.2, UDP and TCP).
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// How the message arrived, which changes the `Content-Length` rules (RFC 3261 sec. 18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// UDP: the datagram is the message; `Content-Length` may be absent (body = rest).
    Datagram,
    /// TCP/TLS: `Content-Length` is mandatory and delimits the body.
    Stream,
}

/// A SIP request: the request line, headers and body.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method and Request-URI.
    pub line: RequestLine,
    /// All headers in arrival order, values unfolded and trimmed (ezk-sip-types multimap).
    pub headers: Headers,
    /// The body, exactly `Content-Length` bytes.
    pub body: Bytes,
}

/// A SIP response: the status line, headers and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code and reason phrase.
    pub line: StatusLine,
    /// All headers in arrival order, values unfolded and trimmed (ezk-sip-types multimap).
    pub headers: Headers,
    /// The body, exactly `Content-Length` bytes.
    pub body: Bytes,
}

/// A parsed and validated SIP message.
#[derive(Debug, Clone)]
pub enum SipMessage {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// Headers whose absence or damage is a reason to refuse a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    /// `Via` (`v`).
    Via,
    /// `From` (`f`).
    From,
    /// `To` (`t`).
    To,
    /// `Call-ID` (`i`).
    CallId,
    /// `CSeq`.
    CSeq,
    /// `Max-Forwards`.
    MaxForwards,
    /// `Content-Length` (`l`).
    ContentLength,
}

impl HeaderKind {
    /// The header's long name, as written in messages.
    pub const fn name(self) -> &'static str {
        match self {
            HeaderKind::Via => "Via",
            HeaderKind::From => "From",
            HeaderKind::To => "To",
            HeaderKind::CallId => "Call-ID",
            HeaderKind::CSeq => "CSeq",
            HeaderKind::MaxForwards => "Max-Forwards",
            HeaderKind::ContentLength => "Content-Length",
        }
    }
}

impl fmt::Display for HeaderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with a message. Small and `Copy`: the reason given in a `Warning` header, in
/// logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    /// Only CR/LF bytes: a keep-alive (RFC 5626 sec. 4.4.1), not a message.
    #[error("keep-alive or empty message")]
    Empty,
    /// The head does not end with an empty line.
    #[error("message head is not terminated by an empty line")]
    Incomplete,
    /// More than [`MAX_MESSAGE_BYTES`] without a complete message (stream transports).
    #[error("message exceeds {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// The first line is neither a request line nor a status line.
    #[error("malformed start line")]
    StartLine,
    /// A SIP version other than 2.0 (answered `505`).
    #[error("sip version not supported")]
    Version,
    /// A method that is not exactly a known one but reads like one (answered `501`).
    #[error("method not implemented")]
    UnsupportedMethod,
    /// The Request-URI is a SIP URI we could not read.
    #[error("malformed request-uri")]
    RequestUri,
    /// The Request-URI scheme is not `sip`/`sips` (answered `416`).
    #[error("unsupported request-uri scheme")]
    UriScheme,
    /// The status code is not three digits in 100..=699.
    #[error("malformed status code")]
    StatusCode,
    /// A header line without a valid name and colon.
    #[error("malformed header line")]
    HeaderLine,
    /// A mandatory header is absent.
    #[error("missing {0} header")]
    Missing(HeaderKind),
    /// A header is present but its value cannot be read.
    #[error("malformed {0} header")]
    Malformed(HeaderKind),
    /// The CSeq method differs from the request method (RFC 3261 sec. 8.1.1.5).
    #[error("cseq method does not match the request method")]
    CSeqMethodMismatch,
    /// A stream message without `Content-Length` (RFC 3261 sec. 18.3).
    #[error("missing Content-Length header on a stream transport")]
    MissingContentLength,
    /// `Content-Length` promises more bytes than arrived (RFC 3261 sec. 18.3).
    #[error("content-length {declared} exceeds the {received} body bytes received")]
    BodyTruncated {
        /// The `Content-Length` value.
        declared: usize,
        /// The body bytes actually present.
        received: usize,
    },
}

impl Defect {
    /// The status code to answer a request with this defect (when it can be answered).
    pub const fn status_code(self) -> u16 {
        match self {
            Defect::Version => 505,
            Defect::UriScheme => 416,
            Defect::UnsupportedMethod => 501,
            _ => 400,
        }
    }

    /// The reason phrase that goes with [`Defect::status_code`].
    pub const fn reason_phrase(self) -> &'static str {
        match self {
            Defect::Version => "Version Not Supported",
            Defect::UriScheme => "Unsupported URI Scheme",
            Defect::UnsupportedMethod => "Not Implemented",
            _ => "Bad Request",
        }
    }
}

/// What could be read of a malformed request: enough to answer it statelessly.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The headers read (Via, From, To, Call-ID and CSeq at least).
    pub headers: Headers,
}

/// Why a message was refused, and whether it can be answered.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A request we could read enough of to answer: reply with [`ParseError::response`]
    /// (`400`, or `416`/`501`/`505`, with a `Warning` saying why).
    #[error("bad request: {defect}")]
    BadRequest {
        /// What is wrong.
        defect: Defect,
        /// The parts needed to build the answer.
        head: Box<RequestHead>,
    },
    /// A message that cannot be answered (a response, or a request missing what a reply
    /// needs): drop it and count it.
    #[error("unanswerable message: {0}")]
    Unanswerable(Defect),
}

impl ParseError {
    /// What is wrong with the message.
    pub fn defect(&self) -> Defect {
        match self {
            ParseError::BadRequest { defect, .. } => *defect,
            ParseError::Unanswerable(defect) => *defect,
        }
    }

    /// True when [`ParseError::response`] gives an answer to send back.
    pub fn is_answerable(&self) -> bool {
        matches!(self, ParseError::BadRequest { .. })
    }

    /// The stateless answer to a bad request (RFC 3261 sec. 8.2.2, 21.4.1): the defect's status
    /// code, Via/From/To/Call-ID/CSeq copied, and `Warning: 399 trunkline "<why>"`. `None` when
    /// the message cannot be answered. Never answer an ACK; the caller checks
    /// [`RequestHead::method`].
    pub fn response(&self) -> Option<Response> {
        let ParseError::BadRequest { defect, head } = self else {
            return None;
        };
        if head.method == Method::ACK {
            return None;
        }
        let mut response =
            response_from_headers(&head.headers, defect.status_code(), defect.reason_phrase());
        response
            .headers
            .insert(Name::WARNING, format!("399 trunkline \"{defect}\""));
        Some(response)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses one UDP datagram into a validated message ([`Framing::Datagram`]).
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    parse_with(bytes, Framing::Datagram)
}

/// Parses one message with the `Content-Length` rules of `framing`. For streams, pass exactly
/// the bytes [`frame_stream`] delimited.
pub fn parse_with(bytes: &[u8], framing: Framing) -> Result<SipMessage, ParseError> {
    let start = leading_crlf(bytes);
    if start == bytes.len() {
        return Err(ParseError::Unanswerable(Defect::Empty));
    }
    let bytes = &bytes[start..];
    let Some((head_len, body_start)) = find_head_end(bytes) else {
        return Err(ParseError::Unanswerable(Defect::Incomplete));
    };
    let head = String::from_utf8_lossy(&bytes[..head_len]);
    let lines: Vec<Cow<'_, str>> = LogicalLines::new(&head).collect();
    let Some((start_line, header_lines)) = lines.split_first() else {
        return Err(ParseError::Unanswerable(Defect::StartLine));
    };
    let start_line = start_line.trim();

    // One pass: fill the multimap and keep the values validation needs, so that checks do not
    // search the multimap (ezk's name comparisons dominate otherwise).
    let mut headers = Headers::with_capacity(header_lines.len());
    let mut core = Core::default();
    for line in header_lines {
        match split_header_line(line) {
            Some((name, value)) => {
                core.note(name, value);
                headers.insert(Name::from(name), value);
            }
            None => {
                core.header_defect.get_or_insert(Defect::HeaderLine);
            }
        }
    }
    let rest = &bytes[body_start..];

    if start_line.starts_with("SIP/") {
        parse_response(start_line, headers, &core, rest, framing)
            .map(SipMessage::Response)
            .map_err(ParseError::Unanswerable)
    } else {
        parse_request(start_line, headers, &core, rest, framing).map(SipMessage::Request)
    }
}

/// A header value seen while reading the head: the first one, and whether there were more.
#[derive(Default)]
struct Seen<'a> {
    first: Option<&'a str>,
    repeated: bool,
}

impl<'a> Seen<'a> {
    fn note(&mut self, value: &'a str) {
        if self.first.is_some() {
            self.repeated = true;
        } else {
            self.first = Some(value);
        }
    }
}

/// The raw values of the headers RFC 3261 makes mandatory, noted while reading the head.
#[derive(Default)]
struct Core<'a> {
    via: Seen<'a>,
    from: Seen<'a>,
    to: Seen<'a>,
    call_id: Seen<'a>,
    cseq: Seen<'a>,
    max_forwards: Seen<'a>,
    content_length: Option<Result<usize, Defect>>,
    header_defect: Option<Defect>,
}

impl<'a> Core<'a> {
    fn note(&mut self, name: &str, value: &'a str) {
        let is = |long: &str, compact: &str| {
            name.eq_ignore_ascii_case(long)
                || (!compact.is_empty() && name.eq_ignore_ascii_case(compact))
        };
        if is("via", "v") {
            self.via.note(value);
        } else if is("from", "f") {
            self.from.note(value);
        } else if is("to", "t") {
            self.to.note(value);
        } else if is("call-id", "i") {
            self.call_id.note(value);
        } else if is("cseq", "") {
            self.cseq.note(value);
        } else if is("max-forwards", "") {
            self.max_forwards.note(value);
        } else if is("content-length", "l") {
            let parsed =
                parse_decimal(value.as_bytes()).ok_or(Defect::Malformed(HeaderKind::ContentLength));
            // Repeated Content-Length values must agree, or the framing is ambiguous.
            self.content_length = Some(match (self.content_length, parsed) {
                (None, parsed) => parsed,
                (Some(Ok(a)), Ok(b)) if a == b => Ok(a),
                (Some(Err(e)), _) => Err(e),
                _ => Err(Defect::Malformed(HeaderKind::ContentLength)),
            });
        }
    }

    /// What a reply needs: the top Via readable, From, To and Call-ID present, the CSeq
    /// readable.
    fn answerable(&self) -> Result<(u32, &'a str), Defect> {
        let via = self.via.first.ok_or(Defect::Missing(HeaderKind::Via))?;
        parse_value::<Via>(via).ok_or(Defect::Malformed(HeaderKind::Via))?;
        for (seen, kind) in [
            (&self.from, HeaderKind::From),
            (&self.to, HeaderKind::To),
            (&self.call_id, HeaderKind::CallId),
        ] {
            if seen.first.is_none_or(str::is_empty) {
                return Err(Defect::Missing(kind));
            }
        }
        let cseq = self.cseq.first.ok_or(Defect::Missing(HeaderKind::CSeq))?;
        if self.cseq.repeated {
            return Err(Defect::Malformed(HeaderKind::CSeq));
        }
        parse_cseq(cseq).ok_or(Defect::Malformed(HeaderKind::CSeq))
    }

    fn check_from_to(&self) -> Result<(), Defect> {
        for (seen, kind) in [(&self.from, HeaderKind::From), (&self.to, HeaderKind::To)] {
            if seen.repeated || seen.first.and_then(parse_name_addr::<FromTo>).is_none() {
                return Err(Defect::Malformed(kind));
            }
        }
        Ok(())
    }

    fn check_request(&self, method: &Method, cseq_method: &str) -> Result<(), Defect> {
        self.check_from_to()?;
        if cseq_method != method.to_string() {
            return Err(Defect::CSeqMethodMismatch);
        }
        let max_forwards = self
            .max_forwards
            .first
            .ok_or(Defect::Missing(HeaderKind::MaxForwards))?;
        let ok = !max_forwards.is_empty()
            && max_forwards.bytes().all(|b| b.is_ascii_digit())
            && max_forwards.parse::<u8>().is_ok();
        if !ok || self.max_forwards.repeated {
            return Err(Defect::Malformed(HeaderKind::MaxForwards));
        }
        Ok(())
    }

    fn take_body(&self, rest: &[u8], framing: Framing) -> Result<Bytes, Defect> {
        match (self.content_length.transpose()?, framing) {
            (None, Framing::Stream) => Err(Defect::MissingContentLength),
            (None, Framing::Datagram) => Ok(Bytes::copy_from_slice(rest)),
            (Some(declared), _) if declared > rest.len() => Err(Defect::BodyTruncated {
                declared,
                received: rest.len(),
            }),
            // Extra datagram bytes after Content-Length are discarded (RFC 3261 sec. 18.3).
            (Some(declared), _) => Ok(Bytes::copy_from_slice(&rest[..declared])),
        }
    }
}

fn parse_request(
    start_line: &str,
    headers: Headers,
    core: &Core<'_>,
    rest: &[u8],
    framing: Framing,
) -> Result<Request, ParseError> {
    let mut parts = start_line.split([' ', '\t']).filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Unanswerable(Defect::StartLine));
    };
    if !method.bytes().all(is_token_byte) {
        return Err(ParseError::Unanswerable(Defect::StartLine));
    }
    let method = exact_method(method);

    // Before anything else: can we answer at all?
    let (_, cseq_method) = core.answerable().map_err(ParseError::Unanswerable)?;
    let bad = |defect: Defect, headers: Headers, method: Method| ParseError::BadRequest {
        defect,
        head: Box::new(RequestHead { method, headers }),
    };
    let Some(method) = method else {
        // Answer the 501 under the CSeq method when that one is exact, else OPTIONS (only
        // used to build the answer, never to dispatch).
        let placeholder = exact_method(cseq_method).unwrap_or(Method::OPTIONS);
        return Err(bad(Defect::UnsupportedMethod, headers, placeholder));
    };

    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(bad(Defect::Version, headers, method));
    }
    let uri = match parse_request_uri(uri) {
        Ok(uri) => uri,
        Err(defect) => return Err(bad(defect, headers, method)),
    };
    if let Some(defect) = core.header_defect {
        return Err(bad(defect, headers, method));
    }
    if let Err(defect) = core.check_request(&method, cseq_method) {
        return Err(bad(defect, headers, method));
    }
    let body = match core.take_body(rest, framing) {
        Ok(body) => body,
        Err(defect) => return Err(bad(defect, headers, method)),
    };
    Ok(Request {
        line: RequestLine { method, uri },
        headers,
        body,
    })
}

fn parse_response(
    start_line: &str,
    headers: Headers,
    core: &Core<'_>,
    rest: &[u8],
    framing: Framing,
) -> Result<Response, Defect> {
    let (version, after) = start_line
        .split_once([' ', '\t'])
        .ok_or(Defect::StartLine)?;
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Defect::Version);
    }
    let after = after.trim_start();
    let (code, reason) = match after.split_once([' ', '\t']) {
        Some((code, reason)) => (code, reason.trim()),
        None => (after, ""),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Defect::StatusCode);
    }
    let code: u16 = code.parse().map_err(|_| Defect::StatusCode)?;
    if !(100..=699).contains(&code) {
        return Err(Defect::StatusCode);
    }
    core.answerable()?;
    if let Some(defect) = core.header_defect {
        return Err(defect);
    }
    core.check_from_to()?;
    let body = core.take_body(rest, framing)?;
    Ok(Response {
        line: StatusLine {
            code: StatusCode::from(code),
            reason: (!reason.is_empty()).then(|| reason.to_owned().into()),
        },
        headers,
        body,
    })
}

/// The known method whose name is exactly `token` (case-sensitive, RFC 3261 sec. 7.1), or any
/// extension method ezk-sip-types keeps as-is. `None` when ezk would mistake the token for a
/// known method (`invite`, `INVITEX`).
fn exact_method(token: &str) -> Option<Method> {
    let method = Method::from(token);
    (method.to_string() == token).then_some(method)
}

fn parse_request_uri(uri: &str) -> Result<SipUri, Defect> {
    let scheme_end = uri.find(':').ok_or(Defect::RequestUri)?;
    let scheme = &uri[..scheme_end];
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return Err(
            if scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            {
                Defect::UriScheme
            } else {
                Defect::RequestUri
            },
        );
    }
    uri.parse::<SipUri>().map_err(|_| Defect::RequestUri)
}

/// Parses one header value with an ezk-sip-types header grammar.
fn parse_value<H: HeaderParse>(value: &str) -> Option<H> {
    // ezk's parsers slice their output out of a shared buffer, so the value gets its own.
    let src = Bytes::copy_from_slice(value.as_bytes());
    let text = std::str::from_utf8(&src).ok()?;
    H::parse(&src, text).ok().map(|(_, parsed)| parsed)
}

/// Reads a name-addr value (From, To, Contact) with ezk-sip-types, retrying with a simplified
/// display name when the first try fails: ezk's quoted-string grammar stops at an escaped
/// quote (`"Joe \"J\" Smith"`), which RFC 3261 sec. 25.1 allows. The raw header value is
/// untouched (responses copy it byte for byte); only the parsed display name loses the
/// escapes.
fn parse_name_addr<H: HeaderParse>(value: &str) -> Option<H> {
    parse_value(value).or_else(|| parse_value(&simplify_display_name(value)?))
}

/// The first value of a name-addr header, parsed leniently (see [`parse_name_addr`]).
fn name_addr_header<H: HeaderParse>(headers: &Headers, name: Name) -> Option<H> {
    parse_name_addr(headers.get_raw(&name).next()?)
}

/// `"a \"b\" c" <sip:..>;tag=x` -> `"a b c" <sip:..>;tag=x`; `None` when there is no quoted
/// display name with escapes to simplify.
fn simplify_display_name(raw: &str) -> Option<String> {
    let rest = raw.trim_start().strip_prefix('"')?;
    let mut name = String::new();
    let mut chars = rest.char_indices();
    let mut escaped_any = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                escaped_any = true;
                // Keep escaped characters except the two that need the escape.
                if let Some((_, e)) = chars.next().filter(|(_, e)| !matches!(e, '"' | '\\')) {
                    name.push(e);
                }
            }
            '"' => {
                return escaped_any.then(|| format!("\"{name}\"{}", &rest[i + 1..]));
            }
            c => name.push(c),
        }
    }
    None
}

/// `CSeq: <number> <method>` read strictly: number below 2^31 (RFC 3261 sec. 8.1.1.5) and a
/// method token.
fn parse_cseq(value: &str) -> Option<(u32, &str)> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if number.is_empty() || number.len() > 10 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = number.parse::<u32>().ok()?;
    if number >= 1 << 31 || !method.bytes().all(is_token_byte) {
        return None;
    }
    Some((number, method))
}

fn parse_decimal(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0usize, |acc, d| {
        acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn leading_crlf(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(bytes.len())
}

/// Finds the empty line ending the head: returns (head length without the final line end,
/// index of the first body byte). Accepts CRLF CRLF and, leniently, LF LF.
fn find_head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            // The line that starts after this LF: empty if it ends right away.
            if bytes.get(i + 1) == Some(&b'\n') {
                return Some((i + 1, i + 2));
            }
            if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                return Some((i + 1, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Iterates the lines of a head, joining continuation lines (starting with SP or HTAB) into
/// their header with one space (RFC 3261 sec. 7.3.1).
struct LogicalLines<'a> {
    physical: std::iter::Peekable<std::str::Split<'a, char>>,
}

impl<'a> LogicalLines<'a> {
    fn new(head: &'a str) -> Self {
        Self {
            physical: head.split('\n').peekable(),
        }
    }
}

impl<'a> Iterator for LogicalLines<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        loop {
            let first = self.physical.next()?;
            let first = first.strip_suffix('\r').unwrap_or(first);
            if first.is_empty() {
                continue;
            }
            let first = first.trim_end();
            // Most lines are not folded: borrow them.
            if !self
                .physical
                .peek()
                .is_some_and(|next| next.starts_with([' ', '\t']))
            {
                return Some(Cow::Borrowed(first));
            }
            let mut line = first.to_owned();
            while let Some(next) = self.physical.peek() {
                if !next.starts_with([' ', '\t']) {
                    break;
                }
                let next = next.trim();
                if !next.is_empty() {
                    line.push(' ');
                    line.push_str(next);
                }
                self.physical.next();
            }
            return Some(Cow::Owned(line));
        }
    }
}

/// Splits `Name : value` into a checked name and a trimmed value.
fn split_header_line(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return None;
    }
    // Header values are text (RFC 3261 sec. 25.1, TEXT-UTF8 and LWS): a control byte other
    // than a tab makes the line malformed, so it is never copied into a response of ours.
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return None;
    }
    Some((name, value.trim()))
}

// ---------------------------------------------------------------------------------------------
// Stream framing
// ---------------------------------------------------------------------------------------------

/// Finds the first complete message in a stream buffer (RFC 3261 sec. 18.3).
///
/// Returns `Ok(Some(n))` when the first `n` bytes are one frame to consume and hand to
/// [`parse_with`] with [`Framing::Stream`], `Ok(None)` when more bytes are needed, and an
/// error when the stream cannot be framed (head larger than [`MAX_MESSAGE_BYTES`], unreadable
/// `Content-Length`): close the connection. A run of CR/LF bytes before a message is a frame of
/// its own, a keep-alive (see [`is_keepalive`]; RFC 5626 sec. 4.4.1 answers `CRLFCRLF` with
/// `CRLF`). A head without `Content-Length` frames with an empty body; [`parse_with`] then
/// refuses it with `400`.
pub fn frame_stream(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let crlf = leading_crlf(buf);
    if crlf > 0 {
        return Ok(Some(crlf));
    }
    let Some((head_len, body_start)) = find_head_end(buf) else {
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(ParseError::Unanswerable(Defect::TooLarge));
        }
        return Ok(None);
    };
    let body_len = stream_content_length(&buf[..head_len])?;
    let total = body_start
        .checked_add(body_len)
        .filter(|total| *total <= MAX_MESSAGE_BYTES)
        .ok_or(ParseError::Unanswerable(Defect::TooLarge))?;
    Ok((buf.len() >= total).then_some(total))
}

/// True when a frame from [`frame_stream`] is a CR/LF keep-alive, not a message.
pub fn is_keepalive(frame: &[u8]) -> bool {
    !frame.is_empty() && frame.iter().all(|b| *b == b'\r' || *b == b'\n')
}

/// Reads `Content-Length` (or `l`) from a raw head without building the message.
fn stream_content_length(head: &[u8]) -> Result<usize, ParseError> {
    let mut found = None;
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = parse_decimal(line[colon + 1..].trim_ascii()).ok_or(
                ParseError::Unanswerable(Defect::Malformed(HeaderKind::ContentLength)),
            )?;
            if found.is_some_and(|f| f != value) {
                return Err(ParseError::Unanswerable(Defect::Malformed(
                    HeaderKind::ContentLength,
                )));
            }
            found = Some(value);
        }
    }
    Ok(found.unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

impl SipMessage {
    /// Parses and validates one message (see [`parse`]).
    pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
        parse(bytes)
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

/// Appends the wire form of `msg` to `out`.
pub fn write_message(msg: &SipMessage, out: &mut Vec<u8>) {
    match msg {
        SipMessage::Request(request) => request.write_to(out),
        SipMessage::Response(response) => response.write_to(out),
    }
}

fn write_headers_and_body(headers: &Headers, body: &[u8], out: &mut Vec<u8>) {
    for (name, value) in headers.iter() {
        if *name == Name::CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_print_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Writing into a Vec cannot fail.
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: SipUri) -> Self {
        Request {
            line: RequestLine { method, uri },
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Appends the wire form to `out` (one `Content-Length`, computed from the body).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let ctx = PrintCtx {
            method: Some(&self.line.method),
            uri: Some(UriContext::ReqUri),
        };
        let _ = write!(out, "{}\r\n", self.line.print_ctx(ctx));
        write_headers_and_body(&self.headers, &self.body, out);
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(512 + self.body.len());
        self.write_to(&mut out);
        Bytes::from(out)
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.line.method
    }

    /// The user part of the Request-URI (the dialled number for a trunk INVITE).
    pub fn request_uri_user(&self) -> Option<&str> {
        uri_user(&self.line.uri)
    }
}

impl Response {
    /// A response with no headers and no body; `reason` defaults to the code's standard text.
    pub fn new(code: u16, reason: Option<&str>) -> Self {
        let code = StatusCode::from(code);
        let reason = reason.or_else(|| code.text()).unwrap_or("");
        Response {
            line: StatusLine {
                code,
                reason: (!reason.is_empty()).then(|| reason.to_owned().into()),
            },
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Appends the wire form to `out` (one `Content-Length`, computed from the body).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{}\r\n", self.line);
        write_headers_and_body(&self.headers, &self.body, out);
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(512 + self.body.len());
        self.write_to(&mut out);
        Bytes::from(out)
    }

    /// A response with a typed status code and its standard reason phrase.
    pub fn with_status(code: StatusCode) -> Self {
        Response::new(code.into_u16(), None)
    }

    /// A response to `request` (see [`response_to`]) with a typed status code.
    pub fn for_request(code: StatusCode, request: &Request, to_tag: Option<&str>) -> Self {
        response_to(request, code.into_u16(), None, to_tag)
    }

    /// The status code.
    pub fn code(&self) -> u16 {
        self.line.code.into_u16()
    }

    /// The reason phrase (empty when absent).
    pub fn reason(&self) -> &str {
        self.line.reason.as_deref().unwrap_or("")
    }
}

// ---------------------------------------------------------------------------------------------
// Accessors shared by requests and responses
// ---------------------------------------------------------------------------------------------

/// The parts of the top Via the transaction layer and transport need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// Transport token, upper-cased (`UDP`, `TCP`, `TLS` ...).
    pub transport: String,
    /// `sent-by` host and optional port.
    pub sent_by: HostPort,
    /// The `branch` parameter.
    pub branch: Option<String>,
    /// The `received` parameter, when it is an IP address.
    pub received: Option<IpAddr>,
    /// `rport`: `None` absent, `Some(None)` present without value (asks for RFC 3581),
    /// `Some(Some(port))` filled in.
    pub rport: Option<Option<u16>>,
}

impl TopVia {
    /// Where to send a response over UDP (RFC 3261 sec. 18.2.2 with RFC 3581 sec. 4):
    /// `received` (or the `sent-by` IP) and `rport` (or the `sent-by` port, or 5060). `None`
    /// when the sent-by host is a name and there is no `received` (a DNS lookup would be
    /// needed; the caller falls back to the source address).
    pub fn response_address(&self) -> Option<SocketAddr> {
        let ip = self.received.or_else(|| self.sent_by.ip())?;
        let port = match self.rport {
            Some(Some(port)) => port,
            _ => self.sent_by.port.unwrap_or(DEFAULT_SIP_PORT),
        };
        Some(SocketAddr::new(ip, port))
    }

    /// True when `branch` carries the RFC 3261 magic cookie `z9hG4bK` (sec. 8.1.1.7).
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

fn top_via_of(via: &Via) -> TopVia {
    TopVia {
        transport: via.transport.to_ascii_uppercase(),
        sent_by: via.sent_by.clone(),
        branch: via.params.get_val("branch").map(|b| b.to_string()),
        received: via
            .params
            .get_val("received")
            .and_then(|r| r.trim_matches(['[', ']']).parse().ok()),
        rport: via
            .params
            .get("rport")
            .map(|p| p.value.as_ref().and_then(|v| v.parse().ok())),
    }
}

/// The user part of a SIP URI, if it has one.
pub fn uri_user(uri: &SipUri) -> Option<&str> {
    match &uri.user_part {
        SipUriUserPart::Empty => None,
        SipUriUserPart::User(user) => Some(user.as_str()),
        SipUriUserPart::UserPw(user_pw) => Some(user_pw.user.as_str()),
    }
}

macro_rules! common_accessors {
    ($ty:ty) => {
        impl $ty {
            /// The first raw value of header `name` (compact forms match too).
            pub fn header(&self, name: &Name) -> Option<&str> {
                self.headers.get_raw(name).next().map(|v| v.as_str())
            }

            /// The top Via (branch, sent-by, received, rport).
            pub fn top_via(&self) -> Option<TopVia> {
                self.headers
                    .get_named::<Via>()
                    .ok()
                    .map(|via| top_via_of(&via))
            }

            /// All Via values in order, comma-separated ones split.
            pub fn vias(&self) -> Vec<Via> {
                self.headers.get_named::<Vec<Via>>().unwrap_or_default()
            }

            /// The top Via `branch`.
            pub fn branch(&self) -> Option<String> {
                self.top_via().and_then(|via| via.branch)
            }

            /// CSeq number and method.
            pub fn cseq(&self) -> Option<CSeq> {
                let (number, method) = parse_cseq(self.header(&Name::CSEQ)?)?;
                Some(CSeq::new(number, Method::from(method)))
            }

            /// The Call-ID.
            pub fn call_id(&self) -> Option<&str> {
                self.header(&Name::CALL_ID)
            }

            /// The From header (URI, tag, params).
            pub fn from(&self) -> Option<FromTo> {
                name_addr_header(&self.headers, Name::FROM)
            }

            /// The To header (URI, tag, params).
            pub fn to(&self) -> Option<FromTo> {
                name_addr_header(&self.headers, Name::TO)
            }

            /// The From tag.
            pub fn from_tag(&self) -> Option<String> {
                self.from().and_then(|f| f.tag).map(|t| t.to_string())
            }

            /// The To tag.
            pub fn to_tag(&self) -> Option<String> {
                self.to().and_then(|t| t.tag).map(|t| t.to_string())
            }

            /// The URI of the first Contact.
            pub fn contact_uri(&self) -> Option<SipUri> {
                name_addr_header::<Contact>(&self.headers, Name::CONTACT).map(|c| c.uri.uri)
            }

            /// All Record-Route entries in order (RFC 3261 sec. 12.1).
            pub fn record_route(&self) -> Vec<Routing> {
                self.headers
                    .get::<Vec<Routing>>(Name::RECORD_ROUTE)
                    .unwrap_or_default()
            }

            /// The Content-Type value.
            pub fn content_type(&self) -> Option<&str> {
                self.header(&Name::CONTENT_TYPE)
            }

            /// The body bytes.
            pub fn body(&self) -> &[u8] {
                &self.body
            }
        }
    };
}

common_accessors!(Request);
common_accessors!(Response);

impl SipMessage {
    /// The headers of either kind of message.
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write_message(self, out);
    }
}

// ---------------------------------------------------------------------------------------------
// Building responses, RFC 3581
// ---------------------------------------------------------------------------------------------

/// Builds a response to `req` (RFC 3261 sec. 8.2.6): all Via values, From, To (with `to_tag`
/// added when the request's To has none), Call-ID and CSeq copied; no body. `reason` `None`
/// uses the standard text for `code`. A `100 Trying` should pass no tag and gets the
/// request's `Timestamp` (sec. 8.2.6.1). Responses 101-299 also copy `Record-Route`, as a UAS
/// must for any response that can create a dialog (sec. 12.1.1).
pub fn response_to(
    req: &Request,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let reason = reason
        .or_else(|| StatusCode::from(code).text())
        .unwrap_or("");
    let mut response = response_from_headers(&req.headers, code, reason);
    if let Some(tag) = to_tag {
        add_to_tag(&mut response.headers, tag);
    }
    // A missing header is simply not copied.
    if code == 100 {
        let _ = req
            .headers
            .clone_into(&mut response.headers, Name::TIMESTAMP);
    }
    if (101..300).contains(&code) {
        let _ = req
            .headers
            .clone_into(&mut response.headers, Name::RECORD_ROUTE);
    }
    response
}

fn response_from_headers(headers: &Headers, code: u16, reason: &str) -> Response {
    let mut response = Response::new(code, Some(reason));
    for name in [Name::VIA, Name::FROM, Name::TO, Name::CALL_ID, Name::CSEQ] {
        // A missing header is simply not copied; `parse` guarantees they exist.
        let _ = headers.clone_into(&mut response.headers, name);
    }
    response
}

/// Adds `;tag=<tag>` to the To header when it has no tag yet.
pub fn add_to_tag(headers: &mut Headers, tag: &str) {
    let Some(to) = headers.get_raw(&Name::TO).next().map(|v| v.to_string()) else {
        return;
    };
    let has_tag = headers
        .get::<FromTo>(Name::TO)
        .is_ok_and(|t| t.tag.is_some());
    if has_tag {
        return;
    }
    headers.remove(&Name::TO);
    headers.insert(Name::TO, format!("{to};tag={tag}"));
}

/// Stamps the top Via of a received request with the source address (RFC 3261 sec. 18.2.1,
/// RFC 3581 sec. 4): `received=<ip>` when the sent-by host differs from it (always when
/// `rport` is present), and `rport=<port>` filled in when the client asked for it. Other Via
/// values and their order are kept.
pub fn stamp_received(req: &mut Request, source: SocketAddr) {
    let Some(values) = req.headers.remove(&Name::VIA) else {
        return;
    };
    let mut values = values
        .into_iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>();
    if let Some(first) = values.first_mut() {
        if let Some(stamped) = stamp_via_value(first, source) {
            *first = stamped;
        }
    }
    // `insert_front` creates the Via entry at the top, then appends the following values to it.
    for value in values {
        req.headers.insert_front(Name::VIA, value);
    }
}

fn stamp_via_value(raw: &str, source: SocketAddr) -> Option<String> {
    // The raw value may hold several comma-separated Vias: only the first one is stamped.
    let mut vias: Vec<Via> = {
        let mut headers = Headers::new();
        headers.insert(Name::VIA, raw);
        headers.get_named::<Vec<Via>>().ok()?
    };
    let top = vias.first_mut()?;
    let asks_rport = top.params.get("rport").is_some();
    let sent_by_ip = top.sent_by.ip();
    if asks_rport {
        top.params.push_or_edit("rport", source.port().to_string());
    }
    if asks_rport || sent_by_ip != Some(source.ip()) {
        top.params.push_or_edit("received", source.ip().to_string());
    }
    let first = top.print_ctx(PrintCtx::default()).to_string();
    let rest = raw_after_first_via(raw);
    Some(match rest {
        Some(rest) => format!("{first}, {rest}"),
        None => first,
    })
}

/// The text after the first comma that separates Via values (outside quotes).
fn raw_after_first_via(raw: &str) -> Option<&str> {
    let mut in_quotes = false;
    for (i, c) in raw.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => return Some(raw[i + 1..].trim_start()),
            _ => {}
        }
    }
    None
}

mod lenient;
pub use lenient::{LenientError, MAX_LENIENT_BYTES, parse_lenient};

#[cfg(test)]
mod tests;
