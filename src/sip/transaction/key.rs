//! Transaction keys and matching (pure), RFC 3261 sec. 17.1.3 and 17.2.3.
//!
//! A client transaction is identified by the branch of the top Via it sent plus the CSeq
//! method; a server transaction by the top Via's branch, its sent-by and the method, where an
//! ACK maps to the INVITE it acknowledges. Branches must carry the RFC 3261 magic cookie
//! `z9hG4bK`; for a request without one (RFC 2543 peers) the key falls back to Call-ID, From
//! tag, CSeq number and sent-by, which is enough to absorb retransmissions (a simplification of
//! sec. 17.2.3's full RFC 2543 rule, which also compares the Request-URI and To tag).
//!
//! The header accessors here are deliberately small and private to the transaction and dialog
//! layers; `sip::message` will replace them.

use super::message::{Request, Response};
use bytes::Bytes;
use ezk_sip_types::Headers;
use ezk_sip_types::Method;
use ezk_sip_types::Name;
use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::{CSeq, FromTo, Via};

/// The RFC 3261 magic cookie that starts every branch we generate (sec. 8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Which side of a transaction we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the request (sec. 17.1).
    Client,
    /// We received the request (sec. 17.2).
    Server,
}

/// Identifies one transaction inside a [`TransactionLayer`](super::TransactionLayer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    /// Client or server side.
    pub role: Role,
    /// The top Via branch (or, for RFC 2543 requests, a key built from other headers).
    pub branch: String,
    /// The top Via sent-by (`host[:port]`) for server transactions; empty for client ones.
    pub sent_by: String,
    /// The request method; an ACK is keyed as the INVITE it belongs to.
    pub method: Method,
}

impl TransactionKey {
    /// The key of the transaction an incoming request belongs to, or `None` when the request
    /// lacks a top Via or a CSeq.
    pub fn for_incoming_request(request: &Request) -> Option<TransactionKey> {
        let via = top_via(&request.headers)?;
        let method = if request.line.method == Method::ACK {
            Method::INVITE
        } else {
            request.line.method.clone()
        };
        let sent_by = via.sent_by.to_string_lossless();
        let branch = match via.params.get_val("branch") {
            Some(b) if b.starts_with(MAGIC_COOKIE) => b.to_string(),
            _ => {
                let cseq = cseq(&request.headers)?;
                format!(
                    "rfc2543;{};{};{}",
                    call_id(&request.headers)?,
                    from_tag(&request.headers).unwrap_or_default(),
                    cseq.cseq
                )
            }
        };
        Some(TransactionKey {
            role: Role::Server,
            branch,
            sent_by,
            method,
        })
    }

    /// The key of the client transaction an incoming response belongs to, or `None` when the
    /// response lacks a top Via branch or a CSeq.
    pub fn for_incoming_response(response: &Response) -> Option<TransactionKey> {
        let via = top_via(&response.headers)?;
        let branch = via.params.get_val("branch")?.to_string();
        let cseq = cseq(&response.headers)?;
        Some(TransactionKey {
            role: Role::Client,
            branch,
            sent_by: String::new(),
            method: cseq.method,
        })
    }

    /// The same key with another method (e.g. the INVITE a CANCEL targets).
    pub(crate) fn with_method(&self, method: Method) -> TransactionKey {
        TransactionKey {
            role: self.role,
            branch: self.branch.clone(),
            sent_by: self.sent_by.clone(),
            method,
        }
    }
}

trait HostPortText {
    fn to_string_lossless(&self) -> String;
}

impl HostPortText for ezk_sip_types::host::HostPort {
    fn to_string_lossless(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{}", self.host, port),
            None => self.host.to_string(),
        }
    }
}

/// Whether two canonical header names are the same. Parsed names, compact forms included, are
/// canonicalised by ezk to their full print name, so one comparison per header is enough (ezk's
/// alias-aware `Name` equality costs about ten string comparisons and dominated profiles).
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.eq_ignore_ascii_case(b)
}

/// Runs `parse` on the first value of header `name`.
pub(crate) fn first_value<T>(
    headers: &Headers,
    name: &Name,
    parse: impl FnOnce(&Bytes, &str) -> Option<T>,
) -> Option<T> {
    let want = name.as_print_str();
    let (_, value) = headers
        .iter()
        .find(|(n, _)| same_name(n.as_print_str(), want))?;
    parse(value.as_ref(), value.as_str())
}

/// Whether header `name` is present.
pub(crate) fn has_header(headers: &Headers, name: &Name) -> bool {
    let want = name.as_print_str();
    headers
        .iter()
        .any(|(n, _)| same_name(n.as_print_str(), want))
}

/// The first Via value, parsed.
pub(crate) fn top_via(headers: &Headers) -> Option<Via> {
    first_value(headers, &Name::VIA, |src, s| {
        Via::parse(src, s).ok().map(|(_, via)| via)
    })
}

/// The branch of the top Via, if any.
pub(crate) fn top_branch(headers: &Headers) -> Option<String> {
    top_via(headers)?
        .params
        .get_val("branch")
        .map(|b| b.to_string())
}

/// The CSeq header, parsed.
pub(crate) fn cseq(headers: &Headers) -> Option<CSeq> {
    first_value(headers, &Name::CSEQ, |src, s| {
        CSeq::parse(src, s.trim()).ok().map(|(_, cseq)| cseq)
    })
}

/// The Call-ID value.
pub(crate) fn call_id(headers: &Headers) -> Option<String> {
    first_value(headers, &Name::CALL_ID, |_, s| {
        let id = s.trim();
        (!id.is_empty()).then(|| id.to_string())
    })
}

/// The From header, parsed.
pub(crate) fn from(headers: &Headers) -> Option<FromTo> {
    first_value(headers, &Name::FROM, |src, s| {
        FromTo::parse(src, s.trim()).ok().map(|(_, v)| v)
    })
}

/// The To header, parsed.
pub(crate) fn to(headers: &Headers) -> Option<FromTo> {
    first_value(headers, &Name::TO, |src, s| {
        FromTo::parse(src, s.trim()).ok().map(|(_, v)| v)
    })
}

/// The tag of the From header, if any.
pub(crate) fn from_tag(headers: &Headers) -> Option<String> {
    from(headers)?.tag.map(|t| t.to_string())
}

/// The tag of the To header, if any.
pub(crate) fn to_tag(headers: &Headers) -> Option<String> {
    to(headers)?.tag.map(|t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::message::SipMessage;
    use super::*;

    fn request(text: &str) -> Request {
        match crate::sip::message::parse_lenient(&Bytes::copy_from_slice(text.as_bytes())) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn ack_is_keyed_as_its_invite() {
        let invite = request(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bK1\r\n\
             CSeq: 1 INVITE\r\nCall-ID: c\r\nFrom: <sip:a@h>;tag=f\r\nTo: <sip:b@h>\r\n\r\n",
        );
        let ack = request(
            "ACK sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bK1\r\n\
             CSeq: 1 ACK\r\nCall-ID: c\r\nFrom: <sip:a@h>;tag=f\r\nTo: <sip:b@h>;tag=t\r\n\r\n",
        );
        let k1 = TransactionKey::for_incoming_request(&invite).expect("key");
        let k2 = TransactionKey::for_incoming_request(&ack).expect("key");
        assert_eq!(k1, k2);
        assert_eq!(k1.sent_by, "1.2.3.4:5060");
    }

    #[test]
    fn sent_by_and_method_separate_keys() {
        let a = request(
            "OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n\
             CSeq: 1 OPTIONS\r\nCall-ID: c\r\n\r\n",
        );
        let b = request(
            "OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.5;branch=z9hG4bK1\r\n\
             CSeq: 1 OPTIONS\r\nCall-ID: c\r\n\r\n",
        );
        let c = request(
            "CANCEL sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n\
             CSeq: 1 CANCEL\r\nCall-ID: c\r\n\r\n",
        );
        let ka = TransactionKey::for_incoming_request(&a).expect("key");
        let kb = TransactionKey::for_incoming_request(&b).expect("key");
        let kc = TransactionKey::for_incoming_request(&c).expect("key");
        assert_ne!(ka, kb);
        assert_ne!(ka, kc);
    }

    #[test]
    fn rfc2543_fallback_and_missing_headers() {
        let old = request(
            "OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\
             CSeq: 7 OPTIONS\r\nCall-ID: c\r\nFrom: <sip:a@h>;tag=f\r\n\r\n",
        );
        let key = TransactionKey::for_incoming_request(&old).expect("key");
        assert_eq!(key.branch, "rfc2543;c;f;7");
        let bare = request("OPTIONS sip:b@h SIP/2.0\r\nCall-ID: c\r\n\r\n");
        assert!(TransactionKey::for_incoming_request(&bare).is_none());
    }
}
