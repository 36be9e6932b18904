//! HTTP Digest authentication for SIP (pure; RFC 7616, RFC 2617, RFC 3261 sec. 22.4,
//! RFC 8760 for SHA-256 in SIP).
//!
//! Client side: read a `WWW-Authenticate`/`Proxy-Authenticate` challenge and compute the
//! `Authorization`/`Proxy-Authorization` value, with `qop=auth` (nonce count kept per nonce,
//! client nonce from a passed-in RNG or value) or without qop (RFC 2069 legacy). Server side,
//! for the registrar: build a challenge and verify credentials with a constant-time compare.
//!
//! Algorithms: MD5, MD5-sess, SHA-256, SHA-256-sess. Deliberately not supported: `auth-int`
//! (no SIP peer we target requires it; a challenge offering only `auth-int` is refused),
//! `userhash` and `username*` (RFC 7616 sec. 3.4.4), SHA-512-256. Nonce freshness and replay
//! (nonce lifetime, nc going up) are the registrar's policy: [`verify`] checks the hash only.

use std::fmt::Write as _;

use ezk_sip_types::Name;
use md5::Md5;
use rand::RngCore;
use sha2::Sha256;

use super::message::Response;

/// Errors reading or answering a digest challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The scheme is not `Digest`.
    #[error("authentication scheme is not digest")]
    NotDigest,
    /// The parameter list cannot be read.
    #[error("malformed digest parameters")]
    Malformed,
    /// A required parameter is absent.
    #[error("digest parameter {0} is missing")]
    MissingParam(&'static str),
    /// An algorithm we do not implement.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// A qop list without `auth`.
    #[error("unsupported digest qop")]
    UnsupportedQop,
}

/// Digest hash algorithm (RFC 7616 sec. 3.3 and 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// MD5 (the default when `algorithm` is absent).
    #[default]
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256.
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
}

impl Algorithm {
    /// The token as written in headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn parse(token: &str) -> Result<Self, DigestError> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(token))
        .ok_or(DigestError::UnsupportedAlgorithm)
    }

    const fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lowercase hex of the hash of `parts` joined by `:`.
    fn hash(self, parts: &[&str]) -> String {
        fn run<D: sha2::Digest>(parts: &[&str]) -> String {
            let mut hasher = D::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    hasher.update(b":");
                }
                hasher.update(part.as_bytes());
            }
            hex::encode(hasher.finalize())
        }
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => run::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => run::<Sha256>(parts),
        }
    }

    /// Preference when a server offers several challenges: stronger first.
    const fn strength(self) -> u8 {
        match self {
            Algorithm::Sha256 => 3,
            Algorithm::Sha256Sess => 2,
            Algorithm::Md5 => 1,
            Algorithm::Md5Sess => 0,
        }
    }
}

/// A parsed `WWW-Authenticate`/`Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back unchanged.
    pub opaque: Option<String>,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Algorithm,
    /// The `qop` options offered, as written (`auth`, `auth-int` ...); empty for a legacy
    /// challenge.
    pub qop: Vec<String>,
    /// True when the server offered `qop=auth` (we then answer with qop).
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired, the credentials were right; retry without asking the
    /// user again.
    pub stale: bool,
    /// `domain`, when given.
    pub domain: Option<String>,
}

impl Challenge {
    /// Parses one challenge header value (`Digest realm="..", nonce="..", ...`).
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let params = parse_digest_params(value)?;
        let mut realm = None;
        let mut nonce = None;
        let mut challenge = Challenge {
            realm: String::new(),
            nonce: String::new(),
            opaque: None,
            algorithm: Algorithm::Md5,
            qop: Vec::new(),
            qop_auth: false,
            stale: false,
            domain: None,
        };
        let mut qop_offered = false;
        for (name, value) in params {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => challenge.opaque = Some(value),
                "algorithm" => challenge.algorithm = Algorithm::parse(&value)?,
                "qop" => {
                    qop_offered = true;
                    challenge.qop = value
                        .split(',')
                        .map(|q| q.trim().to_owned())
                        .filter(|q| !q.is_empty())
                        .collect();
                    challenge.qop_auth =
                        challenge.qop.iter().any(|q| q.eq_ignore_ascii_case("auth"));
                }
                "stale" => challenge.stale = value.eq_ignore_ascii_case("true"),
                "domain" => challenge.domain = Some(value),
                _ => {}
            }
        }
        if qop_offered && !challenge.qop_auth {
            return Err(DigestError::UnsupportedQop);
        }
        challenge.realm = realm.ok_or(DigestError::MissingParam("realm"))?;
        challenge.nonce = nonce.ok_or(DigestError::MissingParam("nonce"))?;
        Ok(challenge)
    }

    /// The challenge to answer among several header values (a server may offer SHA-256 and
    /// MD5): the strongest we can read.
    pub fn best<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        values
            .into_iter()
            .filter_map(|v| Challenge::parse(v).ok())
            .max_by_key(|c| c.algorithm.strength())
    }
}

/// Which header pair a challenge uses: `401` with `WWW-Authenticate` answered by
/// `Authorization`, or `407` with `Proxy-Authenticate` answered by `Proxy-Authorization`
/// (RFC 3261 sec. 22.2, 22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// `401 Unauthorized` from a UAS or registrar.
    Www,
    /// `407 Proxy Authentication Required` from a proxy.
    Proxy,
}

impl AuthKind {
    /// The kind a status code asks for.
    pub const fn from_status(code: u16) -> Option<Self> {
        match code {
            401 => Some(AuthKind::Www),
            407 => Some(AuthKind::Proxy),
            _ => None,
        }
    }

    /// The header carrying the challenge.
    pub fn challenge_header(self) -> Name {
        match self {
            AuthKind::Www => Name::WWW_AUTHENTICATE,
            AuthKind::Proxy => Name::PROXY_AUTHENTICATE,
        }
    }

    /// The header carrying our answer in the retried request.
    pub fn credentials_header(self) -> Name {
        match self {
            AuthKind::Www => Name::AUTHORIZATION,
            AuthKind::Proxy => Name::PROXY_AUTHORIZATION,
        }
    }
}

/// The challenge of a `401`/`407` response: the strongest digest challenge it carries.
pub fn challenge_in(response: &Response) -> Option<(AuthKind, Challenge)> {
    let kind = AuthKind::from_status(response.code())?;
    let values = response.headers.get_raw(&kind.challenge_header());
    Challenge::best(values.map(|v| v.as_str())).map(|c| (kind, c))
}

/// Who we are to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// The inputs of one response computation.
#[derive(Debug, Clone, Copy)]
pub struct RequestDigest<'a> {
    /// The request method (`INVITE`, `REGISTER` ...).
    pub method: &'a str,
    /// The `digest-uri`: the Request-URI as sent.
    pub uri: &'a str,
    /// Client nonce (used with qop and -sess).
    pub cnonce: &'a str,
    /// Nonce count (used with qop), starting at 1 for each new nonce.
    pub nc: u32,
}

/// Computes the `Authorization`/`Proxy-Authorization` header value answering `challenge`
/// (RFC 7616 sec. 3.4): with `qop=auth` when the server offered it, else the legacy form.
pub fn authorization(
    challenge: &Challenge,
    credentials: &Credentials,
    request: RequestDigest<'_>,
) -> String {
    let qop = challenge.qop_auth.then_some("auth");
    let response = compute_response(
        challenge.algorithm,
        &Ha1Source::Password {
            username: &credentials.username,
            password: &credentials.password,
        },
        &challenge.realm,
        &challenge.nonce,
        request,
        qop,
    );
    let mut out = String::with_capacity(256);
    out.push_str("Digest ");
    push_quoted(&mut out, "username", &credentials.username);
    out.push_str(", ");
    push_quoted(&mut out, "realm", &challenge.realm);
    out.push_str(", ");
    push_quoted(&mut out, "nonce", &challenge.nonce);
    out.push_str(", ");
    push_quoted(&mut out, "uri", request.uri);
    out.push_str(", ");
    push_quoted(&mut out, "response", &response);
    let _ = write!(out, ", algorithm={}", challenge.algorithm.as_str());
    if let Some(opaque) = &challenge.opaque {
        out.push_str(", ");
        push_quoted(&mut out, "opaque", opaque);
    }
    if qop.is_some() || challenge.algorithm.is_sess() {
        out.push_str(", ");
        push_quoted(&mut out, "cnonce", request.cnonce);
    }
    if let Some(qop) = qop {
        let _ = write!(out, ", qop={qop}, nc={:08x}", request.nc);
    }
    out
}

/// Client state for one protection space: the current challenge and its nonce count.
#[derive(Debug, Clone)]
pub struct DigestClient {
    credentials: Credentials,
    challenge: Option<Challenge>,
    nc: u32,
}

impl DigestClient {
    /// A client with no challenge yet.
    pub fn new(credentials: Credentials) -> Self {
        DigestClient {
            credentials,
            challenge: None,
            nc: 0,
        }
    }

    /// Takes a new challenge; the nonce count restarts when the nonce changes.
    pub fn set_challenge(&mut self, challenge: Challenge) {
        if self.challenge.as_ref().map(|c| &c.nonce) != Some(&challenge.nonce) {
            self.nc = 0;
        }
        self.challenge = Some(challenge);
    }

    /// The current challenge.
    pub fn challenge(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// The header value for the next request to `uri`, with a fresh client nonce drawn from
    /// `rng` and the next nonce count. `None` before any challenge.
    pub fn authorize(&mut self, method: &str, uri: &str, rng: &mut impl RngCore) -> Option<String> {
        let challenge = self.challenge.as_ref()?;
        let mut raw = [0u8; 16];
        rng.fill_bytes(&mut raw);
        let cnonce = hex::encode(raw);
        self.nc = self.nc.wrapping_add(1);
        Some(authorization(
            challenge,
            &self.credentials,
            RequestDigest {
                method,
                uri,
                cnonce: &cnonce,
                nc: self.nc,
            },
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// Builds a challenge header value for a 401/407 (`qop="auth"`; RFC 7616 sec. 3.3).
pub fn make_challenge(
    realm: &str,
    nonce: &str,
    algorithm: Algorithm,
    opaque: Option<&str>,
    stale: bool,
) -> String {
    let mut out = String::with_capacity(160);
    out.push_str("Digest ");
    push_quoted(&mut out, "realm", realm);
    out.push_str(", ");
    push_quoted(&mut out, "nonce", nonce);
    if let Some(opaque) = opaque {
        out.push_str(", ");
        push_quoted(&mut out, "opaque", opaque);
    }
    let _ = write!(out, ", algorithm={}, qop=\"auth\"", algorithm.as_str());
    if stale {
        out.push_str(", stale=true");
    }
    out
}

/// A fresh nonce of 16 random bytes in hex, from `rng`.
pub fn make_nonce(rng: &mut impl RngCore) -> String {
    let mut raw = [0u8; 16];
    rng.fill_bytes(&mut raw);
    hex::encode(raw)
}

/// A parsed `Authorization`/`Proxy-Authorization` digest value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri` (digest-uri).
    pub uri: String,
    /// `response`, the hex digest.
    pub response: String,
    /// `algorithm` (MD5 when absent).
    pub algorithm: Algorithm,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `opaque`.
    pub opaque: Option<String>,
    /// `qop` (only `auth` is accepted).
    pub qop: Option<String>,
    /// `nc`, parsed from hex.
    pub nc: Option<u32>,
}

impl DigestResponse {
    /// Parses an `Authorization` header value.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let params = parse_digest_params(value)?;
        let get = |key: &str| {
            params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        let required =
            |v: Option<String>, name: &'static str| v.ok_or(DigestError::MissingParam(name));
        let algorithm = match get("algorithm") {
            Some(a) => Algorithm::parse(&a)?,
            None => Algorithm::Md5,
        };
        let qop = get("qop");
        if qop
            .as_deref()
            .is_some_and(|q| !q.eq_ignore_ascii_case("auth"))
        {
            return Err(DigestError::UnsupportedQop);
        }
        let nc = match get("nc") {
            Some(nc) => Some(u32::from_str_radix(&nc, 16).map_err(|_| DigestError::Malformed)?),
            None => None,
        };
        let response = DigestResponse {
            username: required(get("username"), "username")?,
            realm: required(get("realm"), "realm")?,
            nonce: required(get("nonce"), "nonce")?,
            uri: required(get("uri"), "uri")?,
            response: required(get("response"), "response")?,
            algorithm,
            cnonce: get("cnonce"),
            opaque: get("opaque"),
            qop,
            nc,
        };
        if response.qop.is_some() && (response.cnonce.is_none() || response.nc.is_none()) {
            return Err(DigestError::MissingParam("cnonce/nc"));
        }
        Ok(response)
    }
}

/// The secret the registrar stores for a user.
#[derive(Debug, Clone, Copy)]
pub enum Secret<'a> {
    /// The clear password.
    Password(&'a str),
    /// `H(username:realm:password)` in hex for the response's algorithm, so passwords need not
    /// be stored.
    Ha1(&'a str),
}

/// Checks `response` for a request with `method` against `secret` in `realm` (RFC 7616
/// sec. 3.4.1), comparing the digest in constant time. The caller checks the nonce is one it
/// issued and still fresh, and that `response.uri` matches the Request-URI.
pub fn verify(response: &DigestResponse, method: &str, realm: &str, secret: Secret<'_>) -> bool {
    if response.realm != realm {
        return false;
    }
    let source = match secret {
        Secret::Password(password) => Ha1Source::Password {
            username: &response.username,
            password,
        },
        Secret::Ha1(ha1) => Ha1Source::Ha1(ha1),
    };
    let cnonce = response.cnonce.as_deref().unwrap_or("");
    let expected = compute_response(
        response.algorithm,
        &source,
        &response.realm,
        &response.nonce,
        RequestDigest {
            method,
            uri: &response.uri,
            cnonce,
            nc: response.nc.unwrap_or(0),
        },
        response.qop.as_deref(),
    );
    constant_time_eq(
        expected.as_bytes(),
        response.response.to_ascii_lowercase().as_bytes(),
    )
}

/// `H(username:realm:password)` for storing instead of the password.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&[username, realm, password])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------------
// Shared computation and parameter syntax
// ---------------------------------------------------------------------------------------------

enum Ha1Source<'a> {
    Password {
        username: &'a str,
        password: &'a str,
    },
    Ha1(&'a str),
}

fn compute_response(
    algorithm: Algorithm,
    source: &Ha1Source<'_>,
    realm: &str,
    nonce: &str,
    request: RequestDigest<'_>,
    qop: Option<&str>,
) -> String {
    let base = match source {
        Ha1Source::Password { username, password } => algorithm.hash(&[username, realm, password]),
        Ha1Source::Ha1(ha1) => ha1.to_ascii_lowercase(),
    };
    let ha1 = if algorithm.is_sess() {
        algorithm.hash(&[&base, nonce, request.cnonce])
    } else {
        base
    };
    let ha2 = algorithm.hash(&[request.method, request.uri]);
    match qop {
        Some(qop) => {
            let nc = format!("{:08x}", request.nc);
            algorithm.hash(&[&ha1, nonce, &nc, request.cnonce, qop, &ha2])
        }
        None => algorithm.hash(&[&ha1, nonce, &ha2]),
    }
}

fn push_quoted(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Splits `Digest a=b, c="d, e"` into unquoted (name, value) pairs.
fn parse_digest_params(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    let value = value.trim();
    let (scheme, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return Err(DigestError::Malformed);
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(DigestError::Malformed),
                    Some('"') => break,
                    Some('\\') => val.push(chars.next().ok_or(DigestError::Malformed)?),
                    Some(c) => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        params.push((name, val));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse};
    use rand::SeedableRng;

    // RFC 7616 sec. 3.9.1: the same request answered with MD5 and with SHA-256.
    const RFC7616_CHALLENGE_MD5: &str = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn mufasa(password: &str) -> Credentials {
        Credentials {
            username: "Mufasa".to_owned(),
            password: password.to_owned(),
        }
    }

    fn get_request(cnonce: &str) -> RequestDigest<'_> {
        RequestDigest {
            method: "GET",
            uri: "/dir/index.html",
            cnonce,
            nc: 1,
        }
    }

    #[test]
    fn rfc7616_md5_and_sha256_vectors() {
        let md5 = Challenge::parse(RFC7616_CHALLENGE_MD5).expect("challenge");
        assert_eq!(md5.algorithm, Algorithm::Md5);
        assert!(md5.qop_auth);
        assert_eq!(md5.qop, vec!["auth".to_owned(), "auth-int".to_owned()]);
        let value = authorization(&md5, &mufasa("Circle of Life"), get_request(RFC7616_CNONCE));
        assert!(
            value.contains(r#"response="8ca523f5e9506fed4657c9700eebdbec""#),
            "{value}"
        );
        assert!(value.contains("qop=auth, nc=00000001"), "{value}");
        assert!(value.contains(r#"opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#));

        let sha =
            Challenge::parse(&RFC7616_CHALLENGE_MD5.replace("MD5", "SHA-256")).expect("challenge");
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        let value = authorization(&sha, &mufasa("Circle of Life"), get_request(RFC7616_CNONCE));
        assert!(
            value.contains(
                r#"response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#
            ),
            "{value}"
        );
        // Offered both: the stronger one is answered.
        let best = Challenge::best([
            RFC7616_CHALLENGE_MD5,
            &RFC7616_CHALLENGE_MD5.replace("MD5", "SHA-256"),
        ]);
        assert_eq!(best.map(|c| c.algorithm), Some(Algorithm::Sha256));
    }

    #[test]
    fn rfc2617_vector_and_server_verification() {
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\",\r\n qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .expect("challenge");
        let value = authorization(
            &challenge,
            &mufasa("Circle Of Life"),
            get_request("0a4f113b"),
        );
        assert!(
            value.contains(r#"response="6629fae49393a05397450978507c4ef1""#),
            "{value}"
        );
        // The registrar side accepts it with the password or the stored HA1, and only then.
        let parsed = DigestResponse::parse(&value).expect("response");
        assert_eq!(parsed.nc, Some(1));
        assert!(verify(
            &parsed,
            "GET",
            "testrealm@host.com",
            Secret::Password("Circle Of Life")
        ));
        let stored = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(verify(
            &parsed,
            "GET",
            "testrealm@host.com",
            Secret::Ha1(&stored)
        ));
        assert!(!verify(
            &parsed,
            "GET",
            "testrealm@host.com",
            Secret::Password("wrong")
        ));
        assert!(!verify(
            &parsed,
            "POST",
            "testrealm@host.com",
            Secret::Password("Circle Of Life")
        ));
        assert!(!verify(
            &parsed,
            "GET",
            "other",
            Secret::Password("Circle Of Life")
        ));
    }

    #[test]
    fn legacy_without_qop() {
        // RFC 2069 form: response = H(HA1:nonce:HA2), no cnonce/nc/qop sent.
        let challenge = Challenge::parse(r#"digest realm="r", nonce="n""#).expect("challenge");
        let value = authorization(&challenge, &mufasa("p"), get_request("unused"));
        assert!(!value.contains("qop"), "{value}");
        assert!(!value.contains("cnonce"), "{value}");
        let ha1 = Algorithm::Md5.hash(&["Mufasa", "r", "p"]);
        let ha2 = Algorithm::Md5.hash(&["GET", "/dir/index.html"]);
        let expected = Algorithm::Md5.hash(&[&ha1, "n", &ha2]);
        assert!(
            value.contains(&format!("response=\"{expected}\"")),
            "{value}"
        );
        let parsed = DigestResponse::parse(&value).expect("parse");
        assert!(verify(&parsed, "GET", "r", Secret::Password("p")));
    }

    #[test]
    fn sess_variants_round_trip_through_server() {
        for algorithm in [
            Algorithm::Md5Sess,
            Algorithm::Sha256Sess,
            Algorithm::Sha256,
            Algorithm::Md5,
        ] {
            let header = make_challenge("sip.example", "abc", algorithm, Some("op"), false);
            let challenge = Challenge::parse(&header).expect("challenge");
            assert_eq!(challenge.algorithm, algorithm);
            let value = authorization(
                &challenge,
                &mufasa("pw"),
                RequestDigest {
                    method: "REGISTER",
                    uri: "sip:sip.example",
                    cnonce: "c1",
                    nc: 7,
                },
            );
            let parsed = DigestResponse::parse(&value).expect("parse");
            assert_eq!(parsed.opaque.as_deref(), Some("op"));
            assert!(
                verify(&parsed, "REGISTER", "sip.example", Secret::Password("pw")),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn client_counts_nonces_and_restarts_on_new_nonce() {
        let mut client = DigestClient::new(mufasa("pw"));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert!(client.authorize("INVITE", "sip:a@b", &mut rng).is_none());
        client.set_challenge(
            Challenge::parse(r#"Digest realm="r", nonce="n1", qop="auth""#).expect("c"),
        );
        let first = client
            .authorize("INVITE", "sip:a@b", &mut rng)
            .expect("auth");
        let second = client
            .authorize("INVITE", "sip:a@b", &mut rng)
            .expect("auth");
        assert!(first.contains("nc=00000001"));
        assert!(second.contains("nc=00000002"));
        let c1 = DigestResponse::parse(&first).expect("p").cnonce;
        let c2 = DigestResponse::parse(&second).expect("p").cnonce;
        assert_ne!(c1, c2);
        client.set_challenge(
            Challenge::parse(r#"Digest realm="r", nonce="n2", qop="auth", stale=true"#).expect("c"),
        );
        assert!(client.challenge().is_some_and(|c| c.stale));
        let third = client
            .authorize("INVITE", "sip:a@b", &mut rng)
            .expect("auth");
        assert!(third.contains("nc=00000001"));
        assert!(verify(
            &DigestResponse::parse(&third).expect("p"),
            "INVITE",
            "r",
            Secret::Password("pw")
        ));
    }

    #[test]
    fn bad_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="x""#),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse(r#"Digest nonce="x""#),
            Err(DigestError::MissingParam("realm"))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="x", nonce="y", algorithm=SHA-512-256"#),
            Err(DigestError::UnsupportedAlgorithm)
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="x", nonce="y", qop="auth-int""#),
            Err(DigestError::UnsupportedQop)
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="x"#),
            Err(DigestError::Malformed)
        );
        // Quoted strings keep commas and escapes.
        let c = Challenge::parse(r#"Digest realm="a, \"b\"", nonce=xyz"#).expect("c");
        assert_eq!(c.realm, r#"a, "b""#);
        assert_eq!(c.nonce, "xyz");
    }

    #[test]
    fn challenge_from_a_407() {
        let text = "SIP/2.0 407 Proxy Authentication Required\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n\
Call-ID: x\r\nCSeq: 1 INVITE\r\n\
Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"n-md5\", algorithm=MD5, qop=\"auth\"\r\n\
Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"n-sha\", algorithm=SHA-256, qop=\"auth\"\r\n\
Content-Length: 0\r\n\r\n";
        let Ok(SipMessage::Response(res)) = parse(text.as_bytes()) else {
            panic!("response expected");
        };
        let (kind, challenge) = challenge_in(&res).expect("challenge");
        assert_eq!(kind, AuthKind::Proxy);
        assert_eq!(kind.credentials_header(), Name::PROXY_AUTHORIZATION);
        assert_eq!(challenge.nonce, "n-sha");
        assert_eq!(challenge.algorithm, Algorithm::Sha256);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = Challenge::parse(&s);
            let _ = DigestResponse::parse(&s);
            let _ = Challenge::parse(&format!("Digest {s}"));
            let _ = DigestResponse::parse(&format!("Digest {s}"));
        }
    }
}
