//! The registrar (pure): REGISTER with digest authentication, bindings and keep-alive
//! decisions, fed `(now, input)` (RFC 3261 sec. 10 and 22, RFC 7616, RFC 3581).
//!
//! [`Registrar::handle_register`] takes a REGISTER with its source address and returns the
//! response to send. What changed comes out of [`Registrar::poll_event`]: bindings created,
//! refreshed or removed (for the store and the event log) and keep-alive pings to send
//! ([`RegistrarEvent::Ping`]), whose outcome the caller reports back with
//! [`Registrar::handle_ping_result`]. [`Registrar::handle_timeout`] expires bindings and pings.
//!
//! # Authentication
//!
//! Every REGISTER must carry digest credentials for one of the configured agents. The 401
//! offers two challenges, SHA-256 first then MD5 (RFC 8760 sec. 2.4), both with `qop="auth"`;
//! `algorithms` in the settings narrows that (libre-based phones before 2021, e.g. baresip 1.x,
//! give up on the whole 401 when any challenge is not MD5). A response with an algorithm not
//! offered is refused.
//! Nonces are stateless: `<timestamp>.<serial>.<HMAC-SHA256(secret, timestamp, serial, source
//! IP)>` (the serial keeps two challenges in the same millisecond apart, e.g. two phones behind
//! one NAT address), so no state is kept for a challenge; a nonce older than `nonce_ttl` (or from before a restart) is
//! answered with a fresh one and `stale=true` when the digest itself was right. Replay: once a
//! nonce has authenticated a request, the highest nonce count seen is kept until the nonce
//! expires, and a request reusing a count is refused. A response without `qop=auth` is refused
//! (it would carry no count, hence no replay protection). A wrong password and an unknown user
//! get the same fresh 401, and count as a failure of the source IP; beyond
//! `max_auth_failures_per_minute` failures in a minute, every REGISTER from that IP gets `429`
//! with `Retry-After` until the minute is over.
//!
//! # Bindings
//!
//! Several contacts per user, up to `max_contacts` (beyond: `403 Too Many Contacts`, as a
//! device that re-registers with a new contact while its old bindings live would otherwise
//! push out another device). Expiry per contact (`expires` parameter, else the `Expires`
//! header, else `default_expires`), shortened to `max_expires`; shorter than `min_expires` →
//! `423` with `Min-Expires`; `0` removes the contact; `Contact: *` with `Expires: 0` removes them
//! all. A refresh from the same Call-ID must have a higher CSeq (sec. 10.3 step 7). The 200
//! lists the user's current contacts with their remaining `expires`.
//!
//! NAT: a binding remembers where the REGISTER came from (`target`, the received/rport source
//! address) and the transport; requests to the agent go there, not to the Contact URI, which
//! behind NAT names a private address.
//!
//! Deliberate simplifications: contacts are compared as printed URIs (not by the full
//! sec. 19.1.4 rules); `q` values are not kept; the registrar serves the one realm of its
//! configuration and any Request-URI domain.

use std::collections::{HashMap, hash_map::Entry};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ezk_sip_types::Name;
use ezk_sip_types::header::typed::Contact;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::digest::{self, Algorithm, AuthKind, DigestResponse, Secret};
use super::message::{Request, Response, response_to};
use super::transaction::Transport;
use crate::config::{AgentConfig, RegistrarConfig};

/// Unanswered keep-alive pings in a row after which a binding is removed.
pub const KEEPALIVE_MISSES: u32 = 3;
/// The window authentication failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Most source addresses whose failures are tracked at once (a flood from spoofed sources
/// cannot grow the table beyond it).
pub const MAX_TRACKED_SOURCES: usize = 65_536;
/// Bytes of the HMAC kept in a nonce.
const NONCE_MAC_BYTES: usize = 16;

/// Settings of the registrar (from `[registrar]` in `server.toml`).
#[derive(Debug, Clone)]
pub struct RegistrarSettings {
    /// Digest realm.
    pub realm: String,
    /// Shortest registration accepted, seconds.
    pub min_expires: u32,
    /// Registration length when none is asked for, seconds.
    pub default_expires: u32,
    /// Longest registration granted, seconds.
    pub max_expires: u32,
    /// How long a nonce is valid.
    pub nonce_ttl: Duration,
    /// Failed authentications per source IP per minute before `429`.
    pub max_auth_failures_per_minute: u32,
    /// Keep-alive interval (`None`: off).
    pub keepalive: Option<Duration>,
    /// Digest algorithms offered, in order (one challenge each).
    pub algorithms: Vec<Algorithm>,
}

impl RegistrarSettings {
    /// From the configuration section.
    pub fn from_config(c: &RegistrarConfig) -> Self {
        RegistrarSettings {
            realm: c.realm.clone(),
            min_expires: c.min_expires,
            default_expires: c.default_expires,
            max_expires: c.max_expires,
            nonce_ttl: Duration::from_secs(c.nonce_ttl_secs),
            max_auth_failures_per_minute: c.max_auth_failures_per_minute,
            keepalive: (c.keepalive_secs > 0).then(|| Duration::from_secs(c.keepalive_secs)),
            algorithms: c
                .algorithms
                .iter()
                .filter_map(|a| {
                    if a.eq_ignore_ascii_case("SHA-256") {
                        Some(Algorithm::Sha256)
                    } else if a.eq_ignore_ascii_case("MD5") {
                        Some(Algorithm::Md5)
                    } else {
                        None
                    }
                })
                .collect(),
        }
    }
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        Self::from_config(&RegistrarConfig::default())
    }
}

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The user (agent name).
    pub user: String,
    /// The Contact URI as registered.
    pub contact: String,
    /// Where requests for this binding go: the REGISTER's source (received/rport).
    pub target: SocketAddr,
    /// The transport the REGISTER came on.
    pub transport: Transport,
    /// When the binding expires unless refreshed.
    pub expires_at: Instant,
    /// Call-ID of the REGISTER that made or last refreshed it.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// Its `User-Agent`, if any.
    pub user_agent: Option<String>,
    /// Unanswered keep-alive pings in a row.
    pub missed_pings: u32,
    /// When the next keep-alive ping is due.
    pub next_ping: Option<Instant>,
}

impl Binding {
    /// Whole seconds left (rounded up), as written in the 200's `expires`.
    pub fn expires_in(&self, now: Instant) -> u64 {
        let left = self.expires_at.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }
}

/// Why a binding was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovedReason {
    /// The user unregistered it (`expires=0` or `Contact: *`).
    Unregister,
    /// It was not refreshed in time.
    Expired,
    /// Its contact stopped answering keep-alive pings.
    Keepalive,
}

impl RemovedReason {
    /// The name used in events.
    pub const fn as_str(self) -> &'static str {
        match self {
            RemovedReason::Unregister => "unregister",
            RemovedReason::Expired => "expired",
            RemovedReason::Keepalive => "keepalive",
        }
    }
}

/// What changed, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// A new binding.
    Created(Binding),
    /// A binding refreshed (new expiry, maybe new source).
    Refreshed(Binding),
    /// A binding removed.
    Removed {
        /// The binding as it was.
        binding: Binding,
        /// Why.
        reason: RemovedReason,
    },
    /// Send an OPTIONS to this binding and report with [`Registrar::handle_ping_result`].
    Ping {
        /// The user.
        user: String,
        /// The Contact URI (the Request-URI of the OPTIONS).
        contact: String,
        /// Where to send it.
        target: SocketAddr,
        /// How.
        transport: Transport,
    },
}

/// Counters of the registrar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrarStats {
    /// REGISTERs that authenticated.
    pub authenticated: u64,
    /// Failed authentications (wrong password, unknown user, replay, malformed).
    pub auth_failures: u64,
    /// REGISTERs refused with 429.
    pub throttled: u64,
}

#[derive(Debug, Clone, Copy)]
struct FailureWindow {
    start: Instant,
    count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceCheck {
    Fresh,
    Stale,
}

/// The registrar; see the module docs.
pub struct Registrar {
    settings: RegistrarSettings,
    agents: HashMap<String, AgentConfig>,
    bindings: HashMap<String, Vec<Binding>>,
    secret: [u8; 32],
    /// The time nonce timestamps count from (the first input).
    epoch: Option<Instant>,
    /// Serial number of the next nonce.
    nonce_serial: u64,
    /// Nonces that authenticated a request: highest nonce count seen, and when it expires.
    nonce_counts: HashMap<String, (u32, Instant)>,
    failures: HashMap<IpAddr, FailureWindow>,
    events: std::collections::VecDeque<RegistrarEvent>,
    next_deadline: Option<Instant>,
    stats: RegistrarStats,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("users", &self.bindings.len())
            .finish_non_exhaustive()
    }
}

impl Registrar {
    /// A registrar for `agents`; `secret` keys the nonce HMAC (random per process).
    pub fn new(settings: RegistrarSettings, agents: &[AgentConfig], secret: [u8; 32]) -> Self {
        Registrar {
            settings,
            agents: agents.iter().map(|a| (a.name.clone(), a.clone())).collect(),
            bindings: HashMap::new(),
            secret,
            epoch: None,
            nonce_serial: 0,
            nonce_counts: HashMap::new(),
            failures: HashMap::new(),
            events: std::collections::VecDeque::new(),
            next_deadline: None,
            stats: RegistrarStats::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RegistrarSettings {
        &self.settings
    }

    /// Counters.
    pub fn stats(&self) -> RegistrarStats {
        self.stats
    }

    /// The live bindings of `user` (not expired at `now`).
    pub fn bindings(&self, user: &str, now: Instant) -> impl Iterator<Item = &Binding> {
        self.bindings
            .get(user)
            .into_iter()
            .flatten()
            .filter(move |b| b.expires_at > now)
    }

    /// Every live binding.
    pub fn all_bindings(&self, now: Instant) -> impl Iterator<Item = &Binding> {
        self.bindings
            .values()
            .flatten()
            .filter(move |b| b.expires_at > now)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline
    }

    /// Puts back a binding loaded from the store (no event). An expired one, or one of a user
    /// no longer configured, is reported removed (`expired`) so that its row goes too.
    pub fn restore(&mut self, now: Instant, mut binding: Binding) {
        self.epoch.get_or_insert(now);
        if binding.expires_at <= now || !self.agents.contains_key(&binding.user) {
            self.events.push_back(RegistrarEvent::Removed {
                binding,
                reason: RemovedReason::Expired,
            });
            return;
        }
        binding.missed_pings = 0;
        binding.next_ping = self.settings.keepalive.map(|k| now + k);
        let list = self.bindings.entry(binding.user.clone()).or_default();
        list.retain(|b| b.contact != binding.contact);
        list.push(binding);
        self.recompute_deadline();
    }

    /// Expires bindings and sends keep-alive pings that are due; forgets old nonces and
    /// failure windows.
    pub fn handle_timeout(&mut self, now: Instant) {
        let keepalive = self.settings.keepalive;
        let mut events = Vec::new();
        for list in self.bindings.values_mut() {
            list.retain_mut(|b| {
                if b.expires_at <= now {
                    events.push(RegistrarEvent::Removed {
                        binding: b.clone(),
                        reason: RemovedReason::Expired,
                    });
                    return false;
                }
                if let (Some(k), Some(at)) = (keepalive, b.next_ping)
                    && at <= now
                {
                    b.next_ping = Some(now + k);
                    events.push(RegistrarEvent::Ping {
                        user: b.user.clone(),
                        contact: b.contact.clone(),
                        target: b.target,
                        transport: b.transport,
                    });
                }
                true
            });
        }
        self.bindings.retain(|_, list| !list.is_empty());
        self.events.extend(events);
        self.nonce_counts.retain(|_, (_, until)| *until > now);
        self.failures
            .retain(|_, w| now.saturating_duration_since(w.start) < FAILURE_WINDOW);
        self.recompute_deadline();
    }

    /// The outcome of a keep-alive ping: `answered` when any response came back, false on a
    /// transaction timeout or transport error. After [`KEEPALIVE_MISSES`] misses in a row the
    /// binding is removed.
    pub fn handle_ping_result(&mut self, _now: Instant, user: &str, contact: &str, answered: bool) {
        let Some(list) = self.bindings.get_mut(user) else {
            return;
        };
        let Some(pos) = list.iter().position(|b| b.contact == contact) else {
            return;
        };
        if answered {
            list[pos].missed_pings = 0;
            return;
        }
        list[pos].missed_pings += 1;
        if list[pos].missed_pings >= KEEPALIVE_MISSES {
            let binding = list.remove(pos);
            if list.is_empty() {
                self.bindings.remove(user);
            }
            self.events.push_back(RegistrarEvent::Removed {
                binding,
                reason: RemovedReason::Keepalive,
            });
            self.recompute_deadline();
        }
    }

    /// Handles a REGISTER from `source` over `transport` and returns the response to send.
    pub fn handle_register(
        &mut self,
        now: Instant,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
    ) -> Response {
        self.epoch.get_or_insert(now);
        if let Some(retry) = self.throttled(now, source.ip()) {
            self.stats.throttled += 1;
            let mut r = response_to(req, 429, Some("Too Many Requests"), None);
            r.headers
                .insert(Name::RETRY_AFTER, retry.as_secs().max(1).to_string());
            return r;
        }
        let user = match self.authenticate(now, req, source.ip(), "REGISTER", Name::AUTHORIZATION) {
            Ok(user) => user,
            Err(AuthFailure::Respond(r)) => return *r,
            Err(AuthFailure::Challenge { stale }) => {
                return self.challenge(now, req, source, stale, AuthKind::Www);
            }
        };
        self.stats.authenticated += 1;
        let aor_user = req.to().and_then(|t| uri_user(&t.uri.uri));
        if aor_user.as_deref() != Some(user.as_str()) {
            return response_to(
                req,
                403,
                Some("Forbidden (To is not the authenticated user)"),
                None,
            );
        }
        let r = self.update_bindings(now, req, &user, source, transport);
        self.recompute_deadline();
        r
    }

    /// Checks the digest credentials in `header` of `req` (a REGISTER's `Authorization`, or an
    /// INVITE's `Proxy-Authorization`) and returns the authenticated user.
    fn authenticate(
        &mut self,
        now: Instant,
        req: &Request,
        ip: IpAddr,
        method: &str,
        header: Name,
    ) -> Result<String, AuthFailure> {
        // Credentials for another realm are ignored (sec. 22.4): as if there were none.
        let mut ours = None;
        for value in req.headers.get_raw(&header) {
            match DigestResponse::parse(value.as_str()) {
                Ok(d) if d.realm == self.settings.realm => {
                    ours = Some(d);
                    break;
                }
                Ok(_) | Err(digest::DigestError::NotDigest) => {}
                Err(e) => {
                    self.record_failure(now, ip);
                    return Err(AuthFailure::Respond(Box::new(response_to(
                        req,
                        400,
                        Some(&format!("Bad Request ({e})")),
                        None,
                    ))));
                }
            }
        }
        let Some(d) = ours else {
            return Err(AuthFailure::Challenge { stale: false });
        };
        if !self.settings.algorithms.contains(&d.algorithm) {
            // e.g. MD5-sess, or MD5 when only SHA-256 is offered: not a password failure.
            return Err(AuthFailure::Challenge { stale: false });
        }
        // Unknown users are checked against a password nobody has, so that they take the
        // same path and time as a wrong password, and get the same answer.
        let password = self.agents.get(&d.username).map(|a| a.password.clone());
        let ok = digest::verify(
            &d,
            method,
            &self.settings.realm,
            Secret::Password(password.as_deref().unwrap_or("\u{0}no-such-user\u{0}")),
        );
        if !ok || password.is_none() || d.qop.is_none() {
            self.record_failure(now, ip);
            return Err(AuthFailure::Challenge { stale: false });
        }
        if !uri_matches(&d.uri, req) {
            self.record_failure(now, ip);
            return Err(AuthFailure::Respond(Box::new(response_to(
                req,
                400,
                Some("Bad Request (digest uri is not the Request-URI)"),
                None,
            ))));
        }
        // The digest is right: only the nonce's freshness and count remain.
        let Some((NonceCheck::Fresh, expires)) = self.check_nonce(now, &d.nonce, ip) else {
            return Err(AuthFailure::Challenge { stale: true });
        };
        let nc = d.nc.unwrap_or(0);
        match self.nonce_counts.entry(d.nonce.clone()) {
            Entry::Occupied(mut e) => {
                if nc <= e.get().0 {
                    self.record_failure(now, ip);
                    return Err(AuthFailure::Challenge { stale: true });
                }
                e.get_mut().0 = nc;
            }
            Entry::Vacant(e) => {
                e.insert((nc, expires));
            }
        }
        Ok(d.username)
    }

    /// Authenticates an agent's request other than REGISTER (an INVITE to call out) by its
    /// `Proxy-Authorization` (RFC 3261 sec. 22.3), with the same nonces, replay protection and
    /// failure throttle as REGISTER. Returns the agent's name, or the response to send: `407`
    /// with `Proxy-Authenticate` challenges (none, wrong or stale credentials), `429` when the
    /// source is throttled, `400` for malformed credentials.
    pub fn authenticate_request(
        &mut self,
        now: Instant,
        req: &Request,
        source: SocketAddr,
    ) -> Result<String, Response> {
        self.epoch.get_or_insert(now);
        if let Some(retry) = self.throttled(now, source.ip()) {
            self.stats.throttled += 1;
            let mut r = response_to(req, 429, Some("Too Many Requests"), None);
            r.headers
                .insert(Name::RETRY_AFTER, retry.as_secs().max(1).to_string());
            return Err(r);
        }
        let method = req.method().to_string();
        match self.authenticate(now, req, source.ip(), &method, Name::PROXY_AUTHORIZATION) {
            Ok(user) => {
                self.stats.authenticated += 1;
                Ok(user)
            }
            Err(AuthFailure::Respond(r)) => Err(*r),
            Err(AuthFailure::Challenge { stale }) => {
                Err(self.challenge(now, req, source, stale, AuthKind::Proxy))
            }
        }
    }

    /// A 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`) with a fresh nonce: one
    /// challenge per configured algorithm (by default SHA-256 first, then MD5).
    fn challenge(
        &mut self,
        now: Instant,
        req: &Request,
        source: SocketAddr,
        stale: bool,
        kind: AuthKind,
    ) -> Response {
        let nonce = self.make_nonce(now, source.ip());
        let code = match kind {
            AuthKind::Www => 401,
            AuthKind::Proxy => 407,
        };
        let mut r = response_to(req, code, None, None);
        for &algorithm in &self.settings.algorithms {
            r.headers.insert(
                kind.challenge_header(),
                digest::make_challenge(&self.settings.realm, &nonce, algorithm, None, stale),
            );
        }
        r
    }

    /// Returns how long until the IP may try again, when it is over its failure budget.
    fn throttled(&mut self, now: Instant, ip: IpAddr) -> Option<Duration> {
        let w = self.failures.get(&ip)?;
        let age = now.saturating_duration_since(w.start);
        if age >= FAILURE_WINDOW {
            self.failures.remove(&ip);
            return None;
        }
        (w.count >= self.settings.max_auth_failures_per_minute).then(|| FAILURE_WINDOW - age)
    }

    fn record_failure(&mut self, now: Instant, ip: IpAddr) {
        self.stats.auth_failures += 1;
        if self.failures.len() >= MAX_TRACKED_SOURCES && !self.failures.contains_key(&ip) {
            self.failures
                .retain(|_, w| now.saturating_duration_since(w.start) < FAILURE_WINDOW);
            if self.failures.len() >= MAX_TRACKED_SOURCES {
                return;
            }
        }
        let w = self.failures.entry(ip).or_insert(FailureWindow {
            start: now,
            count: 0,
        });
        if now.saturating_duration_since(w.start) >= FAILURE_WINDOW {
            *w = FailureWindow {
                start: now,
                count: 0,
            };
        }
        w.count += 1;
    }

    fn nonce_mac(&self, stamp: u64, serial: u64, ip: IpAddr) -> [u8; NONCE_MAC_BYTES] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(&stamp.to_be_bytes());
        mac.update(&serial.to_be_bytes());
        match ip {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; NONCE_MAC_BYTES];
        out.copy_from_slice(&full[..NONCE_MAC_BYTES]);
        out
    }

    fn make_nonce(&mut self, now: Instant, ip: IpAddr) -> String {
        let epoch = *self.epoch.get_or_insert(now);
        let stamp = u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(0);
        let serial = self.nonce_serial;
        self.nonce_serial = self.nonce_serial.wrapping_add(1);
        format!(
            "{stamp:x}.{serial:x}.{}",
            hex::encode(self.nonce_mac(stamp, serial, ip))
        )
    }

    /// Whether `nonce` is one of ours for `ip`, and fresh; with its expiry.
    fn check_nonce(&self, now: Instant, nonce: &str, ip: IpAddr) -> Option<(NonceCheck, Instant)> {
        let epoch = self.epoch?;
        let mut parts = nonce.splitn(3, '.');
        let stamp = u64::from_str_radix(parts.next()?, 16).ok()?;
        let serial = u64::from_str_radix(parts.next()?, 16).ok()?;
        let mac = hex::decode(parts.next()?).ok()?;
        let expected = self.nonce_mac(stamp, serial, ip);
        if !constant_time_eq(&mac, &expected) {
            return None;
        }
        let issued = epoch.checked_add(Duration::from_millis(stamp))?;
        if issued > now {
            return None;
        }
        let expires = issued + self.settings.nonce_ttl;
        let check = if expires > now {
            NonceCheck::Fresh
        } else {
            NonceCheck::Stale
        };
        Some((check, expires))
    }

    fn update_bindings(
        &mut self,
        now: Instant,
        req: &Request,
        user: &str,
        source: SocketAddr,
        transport: Transport,
    ) -> Response {
        let max_contacts = self.agents.get(user).map_or(1, |a| a.max_contacts);
        let (Some(call_id), Some(cseq)) = (req.call_id(), req.cseq()) else {
            return response_to(req, 400, Some("Bad Request (Call-ID or CSeq)"), None);
        };
        let cseq = cseq.cseq;
        let header_expires = match req.header(&Name::EXPIRES).map(|v| v.trim().parse::<u32>()) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return response_to(req, 400, Some("Bad Request (Expires)"), None),
        };
        let raw: Vec<&str> = req
            .headers
            .get_raw(&Name::CONTACT)
            .map(|v| v.as_str().trim())
            .collect();
        if raw.contains(&"*") {
            // Sec. 10.3 step 6: `*` only alone and with Expires: 0.
            if raw.len() != 1 || header_expires != Some(0) {
                return response_to(
                    req,
                    400,
                    Some("Bad Request (Contact: * needs Expires: 0 and no other contact)"),
                    None,
                );
            }
            for binding in self.bindings.remove(user).unwrap_or_default() {
                self.events.push_back(RegistrarEvent::Removed {
                    binding,
                    reason: RemovedReason::Unregister,
                });
            }
            return self.ok(now, req, user);
        }
        let contacts: Vec<Contact> = if raw.is_empty() {
            Vec::new()
        } else {
            match req.headers.get_named::<Vec<Contact>>() {
                Ok(c) => c,
                Err(_) => return response_to(req, 400, Some("Bad Request (Contact)"), None),
            }
        };
        // First pass: validate everything, change nothing.
        let s = &self.settings;
        let mut wanted: Vec<(String, u32)> = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let expires = match c.params.get_val("expires") {
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(v) => v,
                    Err(_) => {
                        return response_to(req, 400, Some("Bad Request (expires)"), None);
                    }
                },
                None => header_expires.unwrap_or(s.default_expires),
            };
            if expires != 0 && expires < s.min_expires {
                let mut r = response_to(req, 423, Some("Interval Too Brief"), None);
                r.headers
                    .insert(Name::MIN_EXPIRES, s.min_expires.to_string());
                return r;
            }
            let contact = uri_string(&c.uri.uri);
            wanted.retain(|(u, _)| *u != contact);
            wanted.push((contact, expires.min(s.max_expires)));
        }
        let existing = self.bindings.get(user).map(Vec::as_slice).unwrap_or(&[]);
        let mut count = existing.len();
        for (contact, expires) in &wanted {
            match existing.iter().find(|b| &b.contact == contact) {
                Some(b) => {
                    if b.call_id == call_id && cseq <= b.cseq {
                        return response_to(
                            req,
                            500,
                            Some("Server Internal Error (CSeq out of order)"),
                            None,
                        );
                    }
                    if *expires == 0 {
                        count -= 1;
                    }
                }
                None if *expires > 0 => count += 1,
                None => {}
            }
        }
        if count > max_contacts {
            return response_to(req, 403, Some("Too Many Contacts"), None);
        }
        // Second pass: apply.
        let keepalive = self.settings.keepalive;
        let user_agent = req.header(&Name::USER_AGENT).map(str::to_string);
        let list = self.bindings.entry(user.to_string()).or_default();
        for (contact, expires) in wanted {
            let pos = list.iter().position(|b| b.contact == contact);
            match (pos, expires) {
                (Some(i), 0) => {
                    let binding = list.remove(i);
                    self.events.push_back(RegistrarEvent::Removed {
                        binding,
                        reason: RemovedReason::Unregister,
                    });
                }
                (None, 0) => {}
                (Some(i), e) => {
                    let b = &mut list[i];
                    b.target = source;
                    b.transport = transport;
                    b.expires_at = now + Duration::from_secs(u64::from(e));
                    b.call_id = call_id.to_string();
                    b.cseq = cseq;
                    b.user_agent = user_agent.clone();
                    b.missed_pings = 0;
                    self.events.push_back(RegistrarEvent::Refreshed(b.clone()));
                }
                (None, e) => {
                    let b = Binding {
                        user: user.to_string(),
                        contact,
                        target: source,
                        transport,
                        expires_at: now + Duration::from_secs(u64::from(e)),
                        call_id: call_id.to_string(),
                        cseq,
                        user_agent: user_agent.clone(),
                        missed_pings: 0,
                        next_ping: keepalive.map(|k| now + k),
                    };
                    self.events.push_back(RegistrarEvent::Created(b.clone()));
                    list.push(b);
                }
            }
        }
        if list.is_empty() {
            self.bindings.remove(user);
        }
        self.ok(now, req, user)
    }

    /// The 200 listing the user's contacts with their remaining seconds.
    fn ok(&self, now: Instant, req: &Request, user: &str) -> Response {
        let mut r = response_to(req, 200, None, None);
        for b in self.bindings(user, now) {
            r.headers.insert(
                Name::CONTACT,
                format!("<{}>;expires={}", b.contact, b.expires_in(now)),
            );
        }
        r
    }

    fn recompute_deadline(&mut self) {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        for b in self.bindings.values().flatten() {
            consider(b.expires_at);
            if let Some(p) = b.next_ping {
                consider(p);
            }
        }
        self.next_deadline = next;
    }
}

/// Why a request did not authenticate.
enum AuthFailure {
    /// Answer with a fresh challenge.
    Challenge {
        /// The digest was right but the nonce expired, is not ours (e.g. from before a
        /// restart) or was replayed.
        stale: bool,
    },
    /// Answer this.
    Respond(Box<Response>),
}

fn uri_user(uri: &ezk_sip_types::uri::SipUri) -> Option<String> {
    use ezk_sip_types::uri::SipUriUserPart;
    match &uri.user_part {
        SipUriUserPart::Empty => None,
        SipUriUserPart::User(u) => Some(u.to_string()),
        SipUriUserPart::UserPw(u) => Some(u.user.to_string()),
    }
}

fn uri_string(uri: &ezk_sip_types::uri::SipUri) -> String {
    use ezk_sip_types::print::AppendCtx;
    uri.default_print_ctx().to_string()
}

/// The digest `uri` must name the Request-URI (RFC 7616 sec. 3.4.6): compared as parsed URIs
/// so that printing differences do not matter.
fn uri_matches(digest_uri: &str, req: &Request) -> bool {
    let ruri = &req.line.uri;
    if digest_uri.eq_ignore_ascii_case(&uri_string(ruri)) {
        return true;
    }
    digest_uri
        .parse::<ezk_sip_types::uri::SipUri>()
        .is_ok_and(|u| u.compare(ruri))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
