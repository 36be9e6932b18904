//! Typed configuration loaded from the `sip-config/` folder (TOML, data only).
//!
//! The folder holds `server.toml` (listen addresses, RTP range, data directory, defaults),
//! `trunks.toml` (SIP trunks with their limits), `numbers.toml` (called number → route),
//! `agents.toml` (SIP users who register and may call out) and `prompts/` (audio files played by routes and the API). When no folder is given and
//! `./sip-config` does not exist, the example config compiled into the binary is used, so
//! `trunkline serve` with no arguments runs on loopback.
//!
//! Every field has a default; unknown fields are rejected so that a typo is an error, not a
//! silently ignored setting.

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid TOML for its schema.
    #[error("invalid {file}: {message}")]
    Parse {
        /// The file name.
        file: String,
        /// What was wrong, with line and column.
        message: String,
    },
    /// Values are individually valid but inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `server.toml`.
    pub server: ServerConfig,
    /// `trunks.toml`.
    pub trunks: Vec<TrunkConfig>,
    /// `numbers.toml`.
    pub numbers: Vec<NumberConfig>,
    /// `agents.toml`.
    pub agents: Vec<AgentConfig>,
    /// Folder of prompt files (`prompts/` beside the TOML files), if on disk.
    pub prompts_dir: Option<PathBuf>,
}

/// `server.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// SIP listener.
    pub sip: SipConfig,
    /// RTP ports and media timeouts.
    pub rtp: RtpConfig,
    /// HTTP API listener.
    pub http: HttpConfig,
    /// Where the SQLite database and recordings live.
    pub data: DataConfig,
    /// Call defaults.
    pub calls: CallsConfig,
    /// Webhook delivery.
    pub webhooks: WebhooksConfig,
    /// Recording files and their retention.
    pub recordings: RecordingsConfig,
    /// Inbound calls: missed-call records.
    pub inbound: InboundConfig,
    /// The registrar (agents' REGISTER, digest auth, keep-alive).
    pub registrar: RegistrarConfig,
    /// Campaign and contact-list defaults.
    pub campaigns: CampaignsConfig,
}

/// `[inbound]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// Delete missed-call records (and decided inbound-call markers) older than this many days
    /// once their follow-up is no longer pending; `0` keeps them forever. Checked at start and
    /// hourly. Cool-downs older than every number's cool-down go at the same time.
    pub missed_retention_days: u32,
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            missed_retention_days: 90,
        }
    }
}

/// `[registrar]`: how agents register (RFC 3261 sec. 10, digest auth per RFC 7616).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Digest realm of our challenges.
    pub realm: String,
    /// Shortest registration accepted, seconds (shorter: `423 Interval Too Brief`).
    pub min_expires: u32,
    /// Registration length when the REGISTER gives none, seconds.
    pub default_expires: u32,
    /// Longest registration granted, seconds (longer requests are shortened to this).
    pub max_expires: u32,
    /// How long a nonce we issue stays valid, seconds (then `stale=true`).
    pub nonce_ttl_secs: u64,
    /// Failed authentications per source IP per minute before its REGISTERs get `429`.
    pub max_auth_failures_per_minute: u32,
    /// OPTIONS keep-alive to every registered contact this often, seconds; after three
    /// unanswered pings the binding is removed. `0` turns keep-alive off.
    pub keepalive_secs: u64,
    /// Digest algorithms offered in a 401, one `WWW-Authenticate` each, in this order:
    /// `"SHA-256"` and/or `"MD5"`. Phones built on libre before 2021 (baresip 1.x) refuse
    /// every challenge once one is not MD5: give them `["MD5"]`.
    pub algorithms: Vec<String>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            realm: "trunkline".into(),
            min_expires: 60,
            default_expires: 3600,
            max_expires: 7200,
            nonce_ttl_secs: 300,
            max_auth_failures_per_minute: 10,
            keepalive_secs: 30,
            algorithms: vec!["SHA-256".into(), "MD5".into()],
        }
    }
}

/// `[sip]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address for SIP over UDP and TCP.
    pub listen: SocketAddr,
    /// Address written into Via/Contact/SDP when it differs from `listen` (e.g. behind NAT).
    pub public_address: Option<IpAddr>,
    /// User part of our Contact and default From.
    pub user_agent: String,
    /// Sources (IP addresses or CIDR blocks) whose INVITEs may reach numbers without
    /// authenticating, besides every trunk's address. Anyone else gets 403 unless it is an
    /// agent who authenticates. Default: loopback only.
    pub trusted_sources: Vec<String>,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5060".parse().expect("static address"),
            public_address: None,
            user_agent: format!("trunkline/{}", env!("CARGO_PKG_VERSION")),
            trusted_sources: vec!["127.0.0.0/8".into(), "::1/128".into()],
        }
    }
}

/// `[rtp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// Address RTP sockets bind to.
    pub address: IpAddr,
    /// First port of the range (even; each call uses an even RTP port and the next for RTCP).
    pub port_min: u16,
    /// Last port of the range.
    pub port_max: u16,
    /// Hang up a call after this many seconds without RTP.
    pub no_media_timeout_secs: u64,
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            address: IpAddr::from([127, 0, 0, 1]),
            port_min: 20_000,
            port_max: 29_999,
            no_media_timeout_secs: 30,
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("static address"),
        }
    }
}

/// `[data]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Folder for the SQLite database and recordings.
    pub dir: PathBuf,
    /// Database URL; `DATABASE_URL` in the environment overrides it. Default: SQLite in `dir`.
    pub database_url: Option<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data"),
            database_url: None,
        }
    }
}

/// `[calls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Default ring timeout for outbound calls, seconds.
    pub ring_timeout_secs: u64,
    /// On shutdown, live calls get this long to end before they are hung up.
    pub shutdown_grace_secs: u64,
    /// Most calls in progress at once on this node (beyond: 503).
    pub max_calls: usize,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            ring_timeout_secs: 30,
            shutdown_grace_secs: 10,
            max_calls: 5_000,
        }
    }
}

/// `[webhooks]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// HMAC-SHA256 key for the signature header. Empty: a random key is made and stored.
    pub secret: String,
    /// Give up on an event after retrying this long, seconds.
    pub max_retry_secs: u64,
    /// Delay after the first failed delivery, milliseconds; doubles with each failure.
    pub retry_base_ms: u64,
    /// Longest delay between two delivery attempts, seconds.
    pub retry_max_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            secret: String::new(),
            max_retry_secs: 24 * 3600,
            retry_base_ms: 1_000,
            retry_max_secs: 900,
        }
    }
}

/// `[recordings]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingsConfig {
    /// Delete recordings (file and row) that ended more than this many days ago; `0` (the
    /// default) keeps them forever. Checked at start and then hourly.
    pub retention_days: u32,
}

/// `[campaigns]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignsConfig {
    /// Most data rows in one CSV import (contacts or do-not-call numbers); larger files are
    /// refused whole (422).
    pub import_max_rows: usize,
    /// ISO region of numbers written without a country code, when a contact list or a
    /// do-not-call request names none.
    pub default_region: String,
    /// IANA zone of contacts whose zone is unknown, when a campaign names none.
    pub default_timezone: String,
}

impl Default for CampaignsConfig {
    fn default() -> Self {
        Self {
            import_max_rows: crate::campaign::import::DEFAULT_MAX_ROWS,
            default_region: "US".into(),
            default_timezone: "America/New_York".into(),
        }
    }
}

/// SIP transport toward a trunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

/// One `[[trunk]]` of `trunks.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Name used by the API (`"trunk": "name"`).
    pub name: String,
    /// Address of the far end (`host:port`).
    pub address: SocketAddr,
    /// Transport.
    #[serde(default)]
    pub transport: Transport,
    /// Digest username, if the trunk challenges.
    #[serde(default)]
    pub username: Option<String>,
    /// Digest password.
    #[serde(default)]
    pub password: Option<String>,
    /// Default caller id (From user) when a call gives none.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Most concurrent calls on this trunk.
    #[serde(default = "default_trunk_concurrent")]
    pub max_concurrent: usize,
    /// Most new calls per second on this trunk.
    #[serde(default = "default_trunk_cps")]
    pub max_cps: u32,
    /// Destinations allowed on this trunk: prefixes of the `to` number, or `"*"` for any.
    #[serde(default)]
    pub allowed_prefixes: Vec<String>,
    /// Cost per minute, for reporting.
    #[serde(default)]
    pub cost_per_minute: f64,
}

/// Most `number` hops a route may take (`route = { action = "number" }`, `on_no_answer`).
pub const MAX_ROUTE_HOPS: usize = 4;

fn default_trunk_concurrent() -> usize {
    100
}
fn default_trunk_cps() -> u32 {
    10
}

/// `trunks.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrunksFile {
    #[serde(default)]
    trunk: Vec<TrunkConfig>,
}

/// One `[[agent]]` of `agents.toml`: a SIP user who registers with digest auth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// SIP user name (the digest username and the user part of the address of record).
    pub name: String,
    /// Digest password.
    pub password: String,
    /// Name shown to callees.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Trunks this agent may call out through (empty: none).
    #[serde(default)]
    pub trunks: Vec<String>,
    /// Most contacts registered at once for this agent.
    #[serde(default = "default_max_contacts")]
    pub max_contacts: usize,
    /// Caller id (From user) of this agent's calls out through a trunk; default: the trunk's
    /// `caller_id`, else the agent's name.
    #[serde(default)]
    pub caller_id: Option<String>,
}

/// An IP address or CIDR block of `trusted_sources`.
fn parse_source(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

fn default_max_contacts() -> usize {
    5
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsFile {
    #[serde(default)]
    agent: Vec<AgentConfig>,
}

/// What an inbound call to a number does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RouteConfig {
    /// Answer and send every received RTP payload back.
    Echo,
    /// Answer and play a prompt; hang up when it ends unless `loop` is set.
    Play {
        /// Prompt name (a file in `prompts/`, extension optional).
        prompt: String,
        /// Play again and again until the caller hangs up.
        #[serde(default, rename = "loop")]
        repeat: bool,
    },
    /// Refuse the call with a SIP status.
    Reject {
        /// SIP status code (400-699).
        code: u16,
    },
    /// Ring a group of agents or SIP URIs; the first to answer is bridged with the caller.
    RingGroup(RingGroupConfig),
    /// Answer, play a greeting and a beep, and record the caller's message.
    Voicemail(VoicemailConfig),
    /// Run another number's route (e.g. an operator line after hours).
    Number {
        /// The other `[[number]]`'s `number`.
        number: String,
    },
}

/// How a ring group rings its members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingStrategy {
    /// Every member at once; the first to answer wins.
    #[default]
    Simultaneous,
    /// One member after the other, each for `member_timeout_secs`.
    InOrder,
}

/// `route = { action = "ring_group", ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingGroupConfig {
    /// Agent names (rung at their registered contacts) or literal SIP URIs with an IP address
    /// (`sip:desk@192.0.2.10:5060`, a static member such as a desk phone).
    pub members: Vec<String>,
    /// `simultaneous` (default) or `in_order`.
    #[serde(default)]
    pub strategy: RingStrategy,
    /// How long one member rings (in order), seconds.
    #[serde(default = "default_member_timeout")]
    pub member_timeout_secs: u64,
    /// How long the whole group rings before `on_no_answer`, seconds.
    #[serde(default = "default_group_timeout")]
    pub timeout_secs: u64,
    /// A prompt played to the caller (early media) before ringing starts.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Record the bridged call (left: the caller, right: the agent).
    #[serde(default)]
    pub record: bool,
    /// What happens when nobody answers (all busy, nobody registered, timeout): a
    /// `voicemail`, a `number`, a `play` or a `reject` route. Absent: the caller gets 480.
    #[serde(default)]
    pub on_no_answer: Option<Box<RouteConfig>>,
}

fn default_member_timeout() -> u64 {
    20
}
fn default_group_timeout() -> u64 {
    60
}

/// `route = { action = "voicemail", ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicemailConfig {
    /// Greeting prompt; a beep follows it. Absent: the beep alone.
    #[serde(default)]
    pub greeting: Option<String>,
    /// Longest message, seconds.
    #[serde(default = "default_vm_max")]
    pub max_secs: u64,
    /// The message ends after this long without speech from the caller, seconds.
    #[serde(default = "default_vm_silence")]
    pub silence_secs: u64,
}

fn default_vm_max() -> u64 {
    120
}
fn default_vm_silence() -> u64 {
    5
}

/// Business hours of a number: inside them `route` runs, outside them `closed`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursConfig {
    /// IANA time zone of the schedule, e.g. `Europe/Paris`.
    pub timezone: String,
    /// Open periods, `"mon-fri 09:00-17:30"`, `"sat 10:00-12:00"`, `"sun 00:00-24:00"`.
    pub open: Vec<String>,
    /// Closed all day on these dates (`YYYY-MM-DD`, in `timezone`).
    #[serde(default)]
    pub holidays: Vec<String>,
    /// The route outside business hours.
    pub closed: Box<RouteConfig>,
}

/// The missed-call follow-up of a number: a webhook (e.g. to an SMS gateway) per missed call,
/// at most once per caller per cool-down, never to callers on the opt-out list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowupConfig {
    /// Where the `followup.text` event is POSTed (through the durable webhook outbox).
    pub url: String,
    /// The text, with `{caller}`, `{number}` and `{reason}` replaced.
    pub body: String,
    /// At most one follow-up per caller (and number) within this many seconds.
    #[serde(default = "default_cooldown")]
    pub cooldown_secs: u64,
}

fn default_cooldown() -> u64 {
    86_400
}

/// One `[[number]]` of `numbers.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberConfig {
    /// The called number (Request-URI user), e.g. `echo` or `+15551230000`.
    pub number: String,
    /// What to do (inside business hours, when `hours` is set).
    pub route: RouteConfig,
    /// Business hours choosing between `route` and `hours.closed`.
    #[serde(default)]
    pub hours: Option<HoursConfig>,
    /// Missed-call follow-up.
    #[serde(default)]
    pub followup: Option<FollowupConfig>,
    /// Webhook URL for the events of calls to this number (`call.*`, `call.missed`,
    /// `voicemail.created`, recordings).
    #[serde(default)]
    pub status_callback: Option<String>,
}

impl NumberConfig {
    /// Whether calls to this number get a missed-call decision (`call.missed`, follow-up):
    /// numbers that ring a group, take voicemail, have business hours or a follow-up.
    pub fn tracks_missed_calls(&self) -> bool {
        fn involves(r: &RouteConfig) -> bool {
            matches!(r, RouteConfig::RingGroup(_) | RouteConfig::Voicemail(_))
        }
        self.hours.is_some() || self.followup.is_some() || involves(&self.route)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumbersFile {
    #[serde(default)]
    number: Vec<NumberConfig>,
}

/// The example configuration compiled into the binary (the files of `sip-config/`).
pub mod embedded {
    /// `sip-config/server.toml`.
    pub const SERVER: &str = include_str!("../sip-config/server.toml");
    /// `sip-config/trunks.toml`.
    pub const TRUNKS: &str = include_str!("../sip-config/trunks.toml");
    /// `sip-config/numbers.toml`.
    pub const NUMBERS: &str = include_str!("../sip-config/numbers.toml");
    /// `sip-config/agents.toml`.
    pub const AGENTS: &str = include_str!("../sip-config/agents.toml");
    /// `sip-config/prompts/tone.wav`: 2 s of 1 kHz at -12 dBFS.
    pub const TONE_WAV: &[u8] = include_bytes!("../sip-config/prompts/tone.wav");
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.into(),
        message: e.to_string(),
    })
}

fn read_opt(dir: &Path, name: &str) -> Result<Option<String>, ConfigError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

impl Config {
    /// Parses the three TOML texts (no agents).
    pub fn from_texts(server: &str, trunks: &str, numbers: &str) -> Result<Self, ConfigError> {
        Self::from_texts_with_agents(server, trunks, numbers, "")
    }

    /// Parses the four TOML texts.
    pub fn from_texts_with_agents(
        server: &str,
        trunks: &str,
        numbers: &str,
        agents: &str,
    ) -> Result<Self, ConfigError> {
        let server: ServerConfig = parse("server.toml", server)?;
        let trunks: TrunksFile = parse("trunks.toml", trunks)?;
        let numbers: NumbersFile = parse("numbers.toml", numbers)?;
        let agents: AgentsFile = parse("agents.toml", agents)?;
        let cfg = Config {
            server,
            trunks: trunks.trunk,
            numbers: numbers.number,
            agents: agents.agent,
            prompts_dir: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The example configuration compiled into the binary.
    pub fn embedded() -> Self {
        Self::from_texts_with_agents(
            embedded::SERVER,
            embedded::TRUNKS,
            embedded::NUMBERS,
            embedded::AGENTS,
        )
        .expect("the embedded example config is valid (tested)")
    }

    /// Loads a config folder; missing files take their defaults (no trunks, numbers or agents).
    pub fn load_dir(dir: &Path) -> Result<Self, ConfigError> {
        if !dir.is_dir() {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
            });
        }
        let server = read_opt(dir, "server.toml")?.unwrap_or_default();
        let trunks = read_opt(dir, "trunks.toml")?.unwrap_or_default();
        let numbers = read_opt(dir, "numbers.toml")?.unwrap_or_default();
        let agents = read_opt(dir, "agents.toml")?.unwrap_or_default();
        let mut cfg = Self::from_texts_with_agents(&server, &trunks, &numbers, &agents)?;
        let prompts = dir.join("prompts");
        if prompts.is_dir() {
            cfg.prompts_dir = Some(prompts);
        }
        Ok(cfg)
    }

    /// `--config DIR` if given, else `./sip-config` if it exists, else the embedded example.
    pub fn load(dir: Option<&Path>) -> Result<Self, ConfigError> {
        match dir {
            Some(d) => Self::load_dir(d),
            None if Path::new("sip-config").is_dir() => Self::load_dir(Path::new("sip-config")),
            None => Ok(Self::embedded()),
        }
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rtp = &self.server.rtp;
        if rtp.port_min == 0 || rtp.port_min >= rtp.port_max {
            return Err(ConfigError::Invalid(format!(
                "rtp port range {}-{} is empty",
                rtp.port_min, rtp.port_max
            )));
        }
        let c = &self.server.campaigns;
        if c.import_max_rows == 0 {
            return Err(ConfigError::Invalid(
                "campaigns import_max_rows must be at least 1".into(),
            ));
        }
        if crate::campaign::phone::Region::parse(&c.default_region).is_err() {
            return Err(ConfigError::Invalid(format!(
                "campaigns default_region {:?} is not a known ISO region",
                c.default_region
            )));
        }
        if crate::campaign::phone::parse_zone(&c.default_timezone).is_none() {
            return Err(ConfigError::Invalid(format!(
                "campaigns default_timezone {:?} is not an IANA time zone",
                c.default_timezone
            )));
        }
        if let Some(bad) = self
            .server
            .sip
            .trusted_sources
            .iter()
            .find(|s| parse_source(s).is_none())
        {
            return Err(ConfigError::Invalid(format!(
                "[sip] trusted_sources: {bad:?} is not an IP address or CIDR block (e.g. \"10.0.0.0/8\")"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.trunks {
            if !seen.insert(&t.name) {
                return Err(ConfigError::Invalid(format!(
                    "trunk {:?} is declared twice",
                    t.name
                )));
            }
            if t.max_cps == 0 || t.max_concurrent == 0 {
                return Err(ConfigError::Invalid(format!(
                    "trunk {:?}: max_cps and max_concurrent must be at least 1",
                    t.name
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for n in &self.numbers {
            if !seen.insert(&n.number) {
                return Err(ConfigError::Invalid(format!(
                    "number {:?} is declared twice",
                    n.number
                )));
            }
            let ctx = |m: String| ConfigError::Invalid(format!("number {:?}: {m}", n.number));
            self.check_route(&n.route, 0).map_err(ctx)?;
            if let Some(h) = &n.hours {
                crate::inbound::hours::Schedule::parse(h).map_err(|e| ctx(e.to_string()))?;
                self.check_route(&h.closed, 0).map_err(ctx)?;
            }
            if let Some(f) = &n.followup
                && !(f.url.starts_with("http://") || f.url.starts_with("https://"))
            {
                return Err(ctx(format!(
                    "followup url must be http or https, not {:?}",
                    f.url
                )));
            }
        }
        let reg = &self.server.registrar;
        if reg.min_expires == 0
            || reg.min_expires > reg.default_expires
            || reg.default_expires > reg.max_expires
        {
            return Err(ConfigError::Invalid(format!(
                "[registrar] needs 0 < min_expires ({}) <= default_expires ({}) <= max_expires ({})",
                reg.min_expires, reg.default_expires, reg.max_expires
            )));
        }
        let known = |a: &String| a.eq_ignore_ascii_case("SHA-256") || a.eq_ignore_ascii_case("MD5");
        if reg.algorithms.is_empty() || !reg.algorithms.iter().all(known) {
            return Err(ConfigError::Invalid(format!(
                "[registrar] algorithms must name \"SHA-256\" and/or \"MD5\", got {:?}",
                reg.algorithms
            )));
        }
        if reg.nonce_ttl_secs == 0 || reg.realm.is_empty() {
            return Err(ConfigError::Invalid(
                "[registrar] realm must not be empty and nonce_ttl_secs at least 1".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.agents {
            if !seen.insert(&a.name) {
                return Err(ConfigError::Invalid(format!(
                    "agent {:?} is declared twice",
                    a.name
                )));
            }
            let valid_user = !a.name.is_empty()
                && a.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b));
            if !valid_user {
                return Err(ConfigError::Invalid(format!(
                    "agent {:?}: the name must be a non-empty SIP user (letters, digits, -_.!~*'()&=+$,;?/)",
                    a.name
                )));
            }
            if a.password.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "agent {:?}: the password must not be empty",
                    a.name
                )));
            }
            if a.max_contacts == 0 {
                return Err(ConfigError::Invalid(format!(
                    "agent {:?}: max_contacts must be at least 1",
                    a.name
                )));
            }
            if let Some(t) = a.trunks.iter().find(|t| self.trunk(t).is_none()) {
                return Err(ConfigError::Invalid(format!(
                    "agent {:?}: unknown trunk {t:?}",
                    a.name
                )));
            }
        }
        Ok(())
    }

    /// Checks one route: codes, members, and that `number` routes lead somewhere without a
    /// loop (at most [`MAX_ROUTE_HOPS`] hops).
    fn check_route(&self, r: &RouteConfig, hops: usize) -> Result<(), String> {
        if hops > MAX_ROUTE_HOPS {
            return Err(format!(
                "routes lead through more than {MAX_ROUTE_HOPS} numbers (a loop?)"
            ));
        }
        match r {
            RouteConfig::Reject { code } if !(400..=699).contains(code) => {
                Err(format!("reject code {code} is not 400-699"))
            }
            RouteConfig::RingGroup(g) => {
                if g.members.is_empty() {
                    return Err("ring_group has no members".into());
                }
                if g.member_timeout_secs == 0 || g.timeout_secs == 0 {
                    return Err("ring_group timeouts must be at least 1 s".into());
                }
                for m in &g.members {
                    if m.starts_with("sip:") && crate::inbound::StaticTarget::parse(m).is_none() {
                        return Err(format!(
                            "member {m:?} is not sip:user@IP:port (no DNS for static members)"
                        ));
                    }
                }
                match g.on_no_answer.as_deref() {
                    None => Ok(()),
                    Some(RouteConfig::RingGroup(_)) | Some(RouteConfig::Echo) => {
                        Err("on_no_answer must be voicemail, number, play or reject".into())
                    }
                    Some(next) => self.check_route(next, hops + 1),
                }
            }
            RouteConfig::Voicemail(v) if v.max_secs == 0 || v.silence_secs == 0 => {
                Err("voicemail max_secs and silence_secs must be at least 1".into())
            }
            RouteConfig::Number { number } => {
                match self.numbers.iter().find(|n| &n.number == number) {
                    None => Err(format!(
                        "route goes to number {number:?}, which is not declared"
                    )),
                    Some(n) => self.check_route(&n.route, hops + 1),
                }
            }
            _ => Ok(()),
        }
    }

    /// An agent by SIP user name.
    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// The trusted source blocks of `[sip] trusted_sources` (invalid entries, refused by
    /// [`Config::validate`], are left out).
    pub fn trusted_sources(&self) -> Vec<ipnet::IpNet> {
        self.server
            .sip
            .trusted_sources
            .iter()
            .filter_map(|s| parse_source(s))
            .collect()
    }

    /// Whether an INVITE from `ip` comes from a known source: a trunk's address or a block
    /// of `trusted` (see [`Config::trusted_sources`]).
    pub fn is_known_source(&self, ip: IpAddr, trusted: &[ipnet::IpNet]) -> bool {
        trusted.iter().any(|n| n.contains(&ip)) || self.trunks.iter().any(|t| t.address.ip() == ip)
    }

    /// The trunk an agent's call to `to` goes out through: the first of the agent's `trunks`
    /// whose `allowed_prefixes` permit `to` (`"*"` or a prefix of it). `None`: no trunk the
    /// agent may use allows it (the call is refused with 403).
    pub fn agent_trunk(&self, agent: &str, to: &str) -> Option<&TrunkConfig> {
        self.agent(agent)?
            .trunks
            .iter()
            .filter_map(|name| self.trunk(name))
            .find(|t| {
                t.allowed_prefixes
                    .iter()
                    .any(|p| p == "*" || to.starts_with(p.as_str()))
            })
    }

    /// Refuses a wildcard SIP or RTP address without `[sip] public_address`: Via, Contact and
    /// SDP must carry an address the far end can reach, and `0.0.0.0` in SDP means hold.
    pub fn check_addresses(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if (s.rtp.address.is_unspecified() || s.sip.listen.ip().is_unspecified())
            && s.sip.public_address.is_none()
        {
            return Err(ConfigError::Invalid(format!(
                "SIP or RTP binds a wildcard address ({} / {}): set [sip] public_address (or \
                 --public-address) so that Via, Contact and SDP carry an address the far end can reach",
                s.sip.listen, s.rtp.address
            )));
        }
        Ok(())
    }

    /// A number's configuration.
    pub fn number(&self, number: &str) -> Option<&NumberConfig> {
        self.numbers.iter().find(|n| n.number == number)
    }

    /// The route of a called number.
    pub fn route(&self, number: &str) -> Option<&RouteConfig> {
        self.numbers
            .iter()
            .find(|n| n.number == number)
            .map(|n| &n.route)
    }

    /// A trunk by name.
    pub fn trunk(&self, name: &str) -> Option<&TrunkConfig> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The folder recording files live in (`<data dir>/recordings`); store rows hold paths
    /// relative to it.
    pub fn recordings_dir(&self) -> PathBuf {
        self.server.data.dir.join("recordings")
    }

    /// No-media timeout as a `Duration`.
    pub fn no_media_timeout(&self) -> Duration {
        Duration::from_secs(self.server.rtp.no_media_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_example_is_valid_and_routes_echo_and_tone() {
        let c = Config::embedded();
        assert_eq!(c.route("echo"), Some(&RouteConfig::Echo));
        assert!(matches!(c.route("tone"), Some(RouteConfig::Play { .. })));
        assert!(c.route("nobody").is_none());
    }

    #[test]
    fn unknown_field_is_an_error_naming_the_file() {
        let e = Config::from_texts("[sip]\nlisen = \"x\"", "", "").unwrap_err();
        assert!(e.to_string().contains("server.toml"), "{e}");
    }

    #[test]
    fn wildcard_addresses_need_a_public_address() {
        let mut c = Config::embedded();
        assert!(c.check_addresses().is_ok());
        c.server.rtp.address = "0.0.0.0".parse().unwrap();
        assert!(
            c.check_addresses()
                .unwrap_err()
                .to_string()
                .contains("public_address")
        );
        c.server.sip.public_address = Some("203.0.113.10".parse().unwrap());
        assert!(c.check_addresses().is_ok());
    }

    #[test]
    fn inbound_routes_are_checked() {
        let ok = r#"
[[number]]
number = "a"
route = { action = "ring_group", members = ["alice", "sip:desk@127.0.0.1:5070"], on_no_answer = { action = "number", number = "b" } }
hours = { timezone = "UTC", open = ["mon-fri 09:00-17:00"], closed = { action = "voicemail" } }
followup = { url = "http://127.0.0.1:9/sms", body = "hi {caller}" }
[[number]]
number = "b"
route = { action = "voicemail", greeting = "tone" }
"#;
        let c = Config::from_texts("", "", ok).unwrap();
        assert!(c.number("a").unwrap().tracks_missed_calls());
        assert!(
            !Config::embedded()
                .number("echo")
                .unwrap()
                .tracks_missed_calls()
        );
        for (bad, why) in [
            (
                r#"route = { action = "ring_group", members = [] }"#,
                "no members",
            ),
            (
                r#"route = { action = "ring_group", members = ["sip:x@pbx.example.com"] }"#,
                "IP:port",
            ),
            (r#"route = { action = "number", number = "x" }"#, "loop"),
            (
                r#"route = { action = "number", number = "nowhere" }"#,
                "not declared",
            ),
            (
                r#"route = { action = "ring_group", members = ["a"], on_no_answer = { action = "echo" } }"#,
                "on_no_answer",
            ),
            (
                "route = { action = \"echo\" }\nhours = { timezone = \"Nowhere/City\", open = [], closed = { action = \"echo\" } }",
                "time zone",
            ),
            (
                "route = { action = \"echo\" }\nfollowup = { url = \"ftp://x\", body = \"b\" }",
                "http",
            ),
        ] {
            let text = format!("[[number]]\nnumber = \"x\"\n{bad}\n");
            let e = Config::from_texts("", "", &text).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn embedded_example_has_an_agent() {
        let c = Config::embedded();
        let alice = c.agent("alice").expect("example agent");
        assert_eq!(alice.trunks, vec!["local".to_string()]);
        assert_eq!(alice.max_contacts, 5);
        assert_eq!(c.server.registrar.realm, "trunkline");
        assert_eq!(c.server.registrar.min_expires, 60);
    }

    #[test]
    fn agents_are_validated() {
        let trunks = "[[trunk]]\nname = \"t\"\naddress = \"127.0.0.1:5070\"";
        let a = "[[agent]]\nname = \"a\"\npassword = \"p\"\ntrunks = [\"t\"]";
        assert!(Config::from_texts_with_agents("", trunks, "", a).is_ok());
        let twice = format!("{a}\n{a}");
        let e = Config::from_texts_with_agents("", trunks, "", &twice).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let unknown = "[[agent]]\nname = \"a\"\npassword = \"p\"\ntrunks = [\"nope\"]";
        let e = Config::from_texts_with_agents("", trunks, "", unknown).unwrap_err();
        assert!(e.to_string().contains("unknown trunk"), "{e}");
        let bad_name = "[[agent]]\nname = \"a b\"\npassword = \"p\"";
        assert!(Config::from_texts_with_agents("", "", "", bad_name).is_err());
        let e = Config::from_texts_with_agents("[registrar]\nmin_expires = 9000", "", "", "")
            .unwrap_err();
        assert!(e.to_string().contains("min_expires"), "{e}");
        let md5 = Config::from_texts("[registrar]\nalgorithms = [\"MD5\"]", "", "").unwrap();
        assert_eq!(md5.server.registrar.algorithms, vec!["MD5".to_string()]);
        for bad in ["[]", "[\"SHA-512-256\"]"] {
            let text = format!("[registrar]\nalgorithms = {bad}");
            assert!(Config::from_texts(&text, "", "").is_err(), "{bad}");
        }
    }

    #[test]
    fn agent_trunk_follows_the_agents_trunks_and_their_prefixes() {
        let trunks = "[[trunk]]\nname = \"uk\"\naddress = \"127.0.0.1:5070\"\nallowed_prefixes = [\"+44\"]\n\
                      [[trunk]]\nname = \"any\"\naddress = \"127.0.0.1:5072\"\nallowed_prefixes = [\"*\"]";
        let agents = "[[agent]]\nname = \"a\"\npassword = \"p\"\ntrunks = [\"uk\"]\n\
                      [[agent]]\nname = \"b\"\npassword = \"p\"\ntrunks = [\"uk\", \"any\"]\n\
                      [[agent]]\nname = \"c\"\npassword = \"p\"";
        let c = Config::from_texts_with_agents("", trunks, "", agents).unwrap();
        assert_eq!(
            c.agent_trunk("a", "+442071234567").map(|t| t.name.as_str()),
            Some("uk")
        );
        assert!(c.agent_trunk("a", "+15551230000").is_none());
        assert_eq!(
            c.agent_trunk("b", "+15551230000").map(|t| t.name.as_str()),
            Some("any")
        );
        assert_eq!(
            c.agent_trunk("b", "+4420").map(|t| t.name.as_str()),
            Some("uk")
        );
        assert!(
            c.agent_trunk("c", "+442071234567").is_none(),
            "no trunks: none"
        );
        assert!(c.agent_trunk("nobody", "+44").is_none());
    }

    #[test]
    fn bad_reject_code_is_refused() {
        let n = "[[number]]\nnumber = \"x\"\nroute = { action = \"reject\", code = 200 }";
        assert!(Config::from_texts("", "", n).is_err());
    }
}
