//! Webhook signatures (pure).
//!
//! Every delivery carries three headers:
//! - `X-Trunkline-Event-Id`: the event id, for de-duplication (delivery is at-least-once);
//! - `X-Trunkline-Timestamp`: Unix seconds when this attempt was sent;
//! - `X-Trunkline-Signature`: `v1=<hex>`, where `<hex>` is the lowercase hex HMAC-SHA256 keyed
//!   with the webhook secret (its UTF-8 text as given, not hex-decoded) over
//!   `"<timestamp>.<body>"`, the timestamp header's value, a dot, and the raw request body.
//!
//! Receivers recompute the HMAC (or call [`verify_signature`]) and should also refuse timestamps
//! far from their own clock (a few minutes), which stops replays of captured requests. The header
//! may hold several comma-separated `v1=` values (e.g. while a secret is rotated); one match is
//! enough. The scheme is the one Stripe and Slack use, so receivers know it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header with the event id.
pub const EVENT_ID_HEADER: &str = "X-Trunkline-Event-Id";
/// Header with the Unix time (seconds) of the attempt.
pub const TIMESTAMP_HEADER: &str = "X-Trunkline-Timestamp";
/// Header with the signature, `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Trunkline-Signature";
/// Scheme tag of the current signature version.
const SCHEME: &str = "v1=";

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Trunkline-Signature` value for a body sent at `timestamp`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "{SCHEME}{}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` (an `X-Trunkline-Signature` value) signs `body` sent at `timestamp` with
/// `secret`. Comparison is constant-time; malformed headers are simply not valid.
pub fn verify_signature(secret: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    header.split(',').map(str::trim).any(|part| {
        part.strip_prefix(SCHEME)
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|sig| mac(secret, timestamp, body).verify_slice(&sig).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac() {
        // Computed with Python's hmac module:
        // hmac.new(b"whsec_test", b'1700000000.{"id":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign("whsec_test", "1700000000", br#"{"id":1}"#),
            "v1=2f441ba4b3b2d50d28a9ab9d9fd8880376ecd1eb5d0435401553f5d8d0a5dcf8"
        );
    }

    #[test]
    fn verifies_and_rejects() {
        let h = sign("s3cret", "1700000000", b"{\"a\":1}");
        assert!(verify_signature("s3cret", "1700000000", b"{\"a\":1}", &h));
        assert!(!verify_signature("other", "1700000000", b"{\"a\":1}", &h));
        assert!(!verify_signature("s3cret", "1700000001", b"{\"a\":1}", &h));
        assert!(!verify_signature("s3cret", "1700000000", b"{\"a\":2}", &h));
        // Several values: any match passes.
        let both = format!("v1=00ff, {h}");
        assert!(verify_signature(
            "s3cret",
            "1700000000",
            b"{\"a\":1}",
            &both
        ));
        for bad in ["", "v1=", "v1=zz", "v0=00", &h[3..], "v1=00ff"] {
            assert!(
                !verify_signature("s3cret", "1700000000", b"{\"a\":1}", bad),
                "{bad}"
            );
        }
    }
}
