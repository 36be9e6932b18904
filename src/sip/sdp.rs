//! SDP parse/print and the offer/answer model for G.711 audio (pure; RFC 4566, RFC 3264,
//! RFC 4733 for `telephone-event`, RFC 3551 for the static payload types).
//!
//! What we negotiate: one audio stream carrying PCMU (PT 0) or PCMA (PT 8), plus
//! `telephone-event` (a dynamic PT, usually 101) for DTMF, with `ptime` and the direction
//! attributes. Hold is understood both ways: `a=sendonly`/`a=inactive` (RFC 3264 sec. 8.4) and
//! the older `c=0.0.0.0` (RFC 2543), which we treat as "do not send to me".
//!
//! Deliberate limits: connection addresses must be IP literals (an FQDN in `c=` is refused as
//! malformed); only `RTP/AVP` audio is accepted (`RTP/SAVP` and other profiles are rejected
//! with port 0 in the answer); bandwidth, key and timezone lines are parsed past and not
//! kept.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// RFC 4733 events 0-16: DTMF digits `0-9 * # A-D` and flash.
pub const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// The payload type we offer for `telephone-event` unless configured otherwise.
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;

/// Errors in reading SDP or in negotiating media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not UTF-8 text.
    #[error("sdp is not utf-8 text")]
    NotUtf8,
    /// A mandatory line (`v=`, `o=`, `m=` port ...) is absent.
    #[error("sdp lacks its {0}= line")]
    MissingLine(char),
    /// A line that cannot be read; `line` counts from 1.
    #[error("malformed sdp line {line}")]
    Malformed {
        /// The 1-based line number.
        line: usize,
    },
    /// `v=` other than 0.
    #[error("unsupported sdp version")]
    Version,
    /// No audio stream we can use (none, or only non-RTP/AVP ones).
    #[error("no usable audio stream in sdp")]
    NoAudio,
    /// No codec in common: the engine answers `488 Not Acceptable Here`.
    #[error("no common codec")]
    NoCommonCodec,
    /// The answer rejected our audio stream (port 0).
    #[error("audio stream rejected by the answer")]
    Rejected,
}

/// Media direction attribute (RFC 3264 sec. 5.1, 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Send and receive (the default).
    #[default]
    SendRecv,
    /// Send only (the offerer puts the other side on hold).
    SendOnly,
    /// Receive only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// True when this side may send media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// True when this side wants to receive media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction from flags.
    pub const fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The same stream seen from the other end (sendonly <-> recvonly).
    pub const fn reversed(self) -> Self {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both allow.
    pub const fn intersect(self, other: Direction) -> Self {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The audio codecs we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static PT 0.
    Pcmu,
    /// G.711 A-law, static PT 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551 table 4).
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name in `a=rtpmap`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    fn from_encoding(name: &str, clock_rate: u32) -> Option<Self> {
        if clock_rate != 8000 {
            return None;
        }
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }
}

/// `o=` line (RFC 4566 sec. 5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username, `-` when none.
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version; incremented for every changed description (RFC 3264 sec. 8).
    pub session_version: u64,
    /// Network type and address type and address, as written (`IN IP4 192.0.2.1`).
    pub address: String,
}

/// `a=rtpmap:<pt> <name>/<rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written.
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, when given.
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type (`audio`, `video`, `image` ...).
    pub media: String,
    /// Transport port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// The `/<count>` after the port, when present.
    pub port_count: Option<u16>,
    /// Transport protocol (`RTP/AVP` ...).
    pub protocol: String,
    /// Format list as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp:<pt> <params>` lines.
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// Other attributes (`name` or `name:value`), kept in order.
    pub attributes: Vec<String>,
}

impl MediaDescription {
    /// The payload types of the format list that are numbers.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    /// The rtpmap of `pt`, if any.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The codec behind `pt`: its rtpmap when present, else the static assignment.
    pub fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(map) => Codec::from_encoding(&map.encoding, map.clock_rate),
            None => match pt {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => None,
            },
        }
    }

    /// The payload type of `telephone-event/8000`, if offered.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.payload_types().find(|pt| {
            self.rtpmap(*pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
            })
        })
    }

    fn is_rtp_audio(&self) -> bool {
        self.media == "audio" && self.protocol.eq_ignore_ascii_case("RTP/AVP")
    }
}

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (`-` when none).
    pub session_name: String,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `t=` start and stop (`0 0` for an unbounded session).
    pub timing: (u64, u64),
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// Other session-level attributes, kept in order.
    pub attributes: Vec<String>,
    /// `m=` sections in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses an SDP body.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        parse_text(text)
    }

    /// Appends the text form (CRLF line ends) to `out`.
    pub fn write_to(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = self.write_fmt_into(out);
    }

    /// The text form as bytes, ready to be a message body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        self.write_to(&mut out);
        out.into_bytes()
    }

    fn write_fmt_into(&self, out: &mut String) -> fmt::Result {
        let o = &self.origin;
        write!(
            out,
            "v=0\r\no={} {} {} {}\r\ns={}\r\n",
            o.username, o.session_id, o.session_version, o.address, self.session_name
        )?;
        if let Some(ip) = self.connection {
            write_connection(out, ip)?;
        }
        write!(out, "t={} {}\r\n", self.timing.0, self.timing.1)?;
        for attribute in &self.attributes {
            write!(out, "a={attribute}\r\n")?;
        }
        if let Some(direction) = self.direction {
            write!(out, "a={direction}\r\n")?;
        }
        for m in &self.media {
            write!(out, "m={} {}", m.media, m.port)?;
            if let Some(count) = m.port_count {
                write!(out, "/{count}")?;
            }
            write!(out, " {}", m.protocol)?;
            for format in &m.formats {
                write!(out, " {format}")?;
            }
            out.push_str("\r\n");
            if let Some(ip) = m.connection {
                write_connection(out, ip)?;
            }
            for map in &m.rtpmaps {
                write!(
                    out,
                    "a=rtpmap:{} {}/{}",
                    map.payload_type, map.encoding, map.clock_rate
                )?;
                if let Some(channels) = map.channels {
                    write!(out, "/{channels}")?;
                }
                out.push_str("\r\n");
            }
            for (pt, params) in &m.fmtps {
                write!(out, "a=fmtp:{pt} {params}\r\n")?;
            }
            if let Some(ptime) = m.ptime {
                write!(out, "a=ptime:{ptime}\r\n")?;
            }
            for attribute in &m.attributes {
                write!(out, "a={attribute}\r\n")?;
            }
            if let Some(direction) = m.direction {
                write!(out, "a={direction}\r\n")?;
            }
        }
        Ok(())
    }

    /// The connection address of `m`: media-level `c=`, else session-level.
    pub fn connection_of(&self, m: &MediaDescription) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// The direction of `m`: media-level attribute, else session-level, else sendrecv.
    pub fn direction_of(&self, m: &MediaDescription) -> Direction {
        m.direction.or(self.direction).unwrap_or_default()
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_fmt_into(&mut out)?;
        f.write_str(&out)
    }
}

fn write_connection(out: &mut String, ip: IpAddr) -> fmt::Result {
    match ip {
        IpAddr::V4(ip) => write!(out, "c=IN IP4 {ip}\r\n"),
        IpAddr::V6(ip) => write!(out, "c=IN IP6 {ip}\r\n"),
    }
}

fn parse_text(text: &str) -> Result<SessionDescription, SdpError> {
    let mut origin = None;
    let mut session_name = None;
    let mut connection = None;
    let mut timing = (0, 0);
    let mut direction = None;
    let mut attributes = Vec::new();
    let mut media: Vec<MediaDescription> = Vec::new();
    let mut seen_version = false;

    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let bad = SdpError::Malformed { line: line_no };
        let line = raw.trim_end();
        if line.is_empty() {
            continue;
        }
        let (kind, value) = line.split_once('=').ok_or(bad)?;
        let mut kind_chars = kind.chars();
        let (Some(kind), None) = (kind_chars.next(), kind_chars.next()) else {
            return Err(bad);
        };
        if !seen_version {
            if kind != 'v' {
                return Err(SdpError::MissingLine('v'));
            }
            if value.trim() != "0" {
                return Err(SdpError::Version);
            }
            seen_version = true;
            continue;
        }
        match (kind, media.last_mut()) {
            ('o', None) => origin = Some(parse_origin(value).ok_or(bad)?),
            ('s', None) => session_name = Some(value.to_owned()),
            ('t', None) => timing = parse_timing(value).ok_or(bad)?,
            ('c', None) => connection = Some(parse_connection(value).ok_or(bad)?),
            ('c', Some(m)) => m.connection = Some(parse_connection(value).ok_or(bad)?),
            ('m', _) => media.push(parse_media(value).ok_or(bad)?),
            ('a', None) => match Direction::from_attribute(value) {
                Some(d) => direction = Some(d),
                None => attributes.push(value.to_owned()),
            },
            ('a', Some(m)) => parse_media_attribute(m, value).ok_or(bad)?,
            // i= u= e= p= b= z= k= r= and unknown letters: read past (RFC 4566 sec. 5).
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::MissingLine('v'));
    }
    Ok(SessionDescription {
        origin: origin.ok_or(SdpError::MissingLine('o'))?,
        session_name: session_name.unwrap_or_else(|| "-".to_owned()),
        connection,
        timing,
        direction,
        attributes,
        media,
    })
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut parts = value.split_ascii_whitespace();
    let username = parts.next()?.to_owned();
    let session_id = parts.next()?.parse().ok()?;
    let session_version = parts.next()?.parse().ok()?;
    let address = parts.collect::<Vec<_>>().join(" ");
    if address.is_empty() {
        return None;
    }
    Some(Origin {
        username,
        session_id,
        session_version,
        address,
    })
}

fn parse_timing(value: &str) -> Option<(u64, u64)> {
    let mut parts = value.split_ascii_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(net), Some(kind), Some(address)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if net != "IN" {
        return None;
    }
    // Multicast TTL / count suffixes (`/127/2`) are not for us; the address is what counts.
    let address = address.split('/').next()?;
    let ip: IpAddr = address.parse().ok()?;
    match (kind, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut parts = value.split_ascii_whitespace();
    let media = parts.next()?.to_owned();
    let port_field = parts.next()?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((port, count)) => (port.parse().ok()?, Some(count.parse().ok()?)),
        None => (port_field.parse().ok()?, None),
    };
    let protocol = parts.next()?.to_owned();
    let formats = parts.map(str::to_owned).collect();
    Some(MediaDescription {
        media,
        port,
        port_count,
        protocol,
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        attributes: Vec::new(),
    })
}

fn parse_media_attribute(m: &mut MediaDescription, value: &str) -> Option<()> {
    if let Some(direction) = Direction::from_attribute(value) {
        m.direction = Some(direction);
        return Some(());
    }
    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
    match name {
        "rtpmap" => {
            let (pt, encoding) = arg.trim().split_once([' ', '\t'])?;
            let mut enc = encoding.trim().split('/');
            let encoding = enc.next()?.to_owned();
            let clock_rate = enc.next()?.parse().ok()?;
            let channels = match enc.next() {
                Some(c) => Some(c.parse().ok()?),
                None => None,
            };
            m.rtpmaps.push(RtpMap {
                payload_type: pt.parse().ok()?,
                encoding,
                clock_rate,
                channels,
            });
        }
        "fmtp" => {
            let (pt, params) = arg
                .trim()
                .split_once([' ', '\t'])
                .unwrap_or((arg.trim(), ""));
            // A non-numeric fmtp format belongs to non-RTP media; keep it as-is.
            match pt.parse() {
                Ok(pt) => m.fmtps.push((pt, params.trim().to_owned())),
                Err(_) => m.attributes.push(value.to_owned()),
            }
        }
        "ptime" => m.ptime = Some(arg.trim().parse().ok()?),
        _ => m.attributes.push(value.to_owned()),
    }
    Some(())
}

// ---------------------------------------------------------------------------------------------
// Offer/answer
// ---------------------------------------------------------------------------------------------

/// What we offer or accept on our side of a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address for `o=` and `c=`.
    pub address: IpAddr,
    /// Our RTP port.
    pub rtp_port: u16,
    /// Codecs in preference order (offer order; the answer follows the offerer's order).
    pub codecs: Vec<Codec>,
    /// Offer `telephone-event` on this PT; `None` disables RFC 4733 DTMF.
    pub telephone_event: Option<u8>,
    /// Packetization time we ask for, in ms.
    pub ptime: Option<u32>,
    /// The direction we want (sendrecv; sendonly to put the peer on hold).
    pub direction: Direction,
    /// `o=` session id (random per session).
    pub session_id: u64,
    /// `o=` session version; see [`LocalMedia::bump_version`].
    pub session_version: u64,
}

impl LocalMedia {
    /// Defaults for a G.711 leg: PCMU then PCMA, telephone-event on 101, ptime 20, sendrecv.
    pub fn new(address: IpAddr, rtp_port: u16, session_id: u64) -> Self {
        LocalMedia {
            address,
            rtp_port,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: Some(DEFAULT_TELEPHONE_EVENT_PT),
            ptime: Some(20),
            direction: Direction::SendRecv,
            session_id,
            session_version: session_id,
        }
    }

    /// Increments the `o=` version: call before every description that differs from the last
    /// one sent in this session (a hold or resume re-offer; RFC 3264 sec. 8).
    pub fn bump_version(&mut self) {
        self.session_version = self.session_version.wrapping_add(1);
    }

    fn session(&self, media: Vec<MediaDescription>) -> SessionDescription {
        SessionDescription {
            origin: Origin {
                username: "-".to_owned(),
                session_id: self.session_id,
                session_version: self.session_version,
                address: match self.address {
                    IpAddr::V4(ip) => format!("IN IP4 {ip}"),
                    IpAddr::V6(ip) => format!("IN IP6 {ip}"),
                },
            },
            session_name: "trunkline".to_owned(),
            connection: Some(self.address),
            timing: (0, 0),
            direction: None,
            attributes: Vec::new(),
            media,
        }
    }

    fn audio(
        &self,
        codecs: &[(Codec, u8)],
        telephone_event: Option<u8>,
        direction: Direction,
    ) -> MediaDescription {
        let mut formats: Vec<String> = codecs.iter().map(|(_, pt)| pt.to_string()).collect();
        let mut rtpmaps: Vec<RtpMap> = codecs
            .iter()
            .map(|(codec, pt)| RtpMap {
                payload_type: *pt,
                encoding: codec.encoding_name().to_owned(),
                clock_rate: 8000,
                channels: None,
            })
            .collect();
        let mut fmtps = Vec::new();
        if let Some(pt) = telephone_event {
            formats.push(pt.to_string());
            rtpmaps.push(RtpMap {
                payload_type: pt,
                encoding: "telephone-event".to_owned(),
                clock_rate: 8000,
                channels: None,
            });
            fmtps.push((pt, TELEPHONE_EVENT_FMTP.to_owned()));
        }
        MediaDescription {
            media: "audio".to_owned(),
            port: self.rtp_port,
            port_count: None,
            protocol: "RTP/AVP".to_owned(),
            formats,
            connection: None,
            rtpmaps,
            fmtps,
            ptime: self.ptime,
            direction: Some(direction),
            attributes: Vec::new(),
        }
    }
}

/// The outcome of a negotiation: what the RTP session needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP; `None` on hold by `c=0.0.0.0` or a rejected stream.
    pub remote_rtp: Option<SocketAddr>,
    /// The codec in use.
    pub codec: Codec,
    /// Its payload type (the remote's number when the remote offered a dynamic one).
    pub payload_type: u8,
    /// The remote's `telephone-event` PT, when both sides do RFC 4733.
    pub telephone_event: Option<u8>,
    /// The remote's `ptime`, when given.
    pub remote_ptime: Option<u32>,
    /// What we may do: send, receive, both or neither.
    pub direction: Direction,
    /// True when the remote put us on hold (it does not want to receive).
    pub remote_hold: bool,
}

/// Our answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SDP to send.
    pub sdp: SessionDescription,
    /// The media agreed.
    pub media: NegotiatedMedia,
}

/// Answers `offer` (RFC 3264 sec. 6): the first offered audio stream we can use gets the
/// first codec of the offer we support (plus `telephone-event` with the offerer's PT when we
/// do DTMF); every other stream is rejected with port 0. Direction: the offer's direction
/// reversed, limited by `local.direction` (offer sendonly -> we answer recvonly; inactive ->
/// inactive; `c=0.0.0.0` counts as "do not send to me").
pub fn answer(offer: &SessionDescription, local: &LocalMedia) -> Result<Answer, SdpError> {
    let mut chosen: Option<(usize, NegotiatedMedia)> = None;
    let mut any_audio = false;
    for (index, m) in offer.media.iter().enumerate() {
        if !m.is_rtp_audio() || m.port == 0 {
            continue;
        }
        any_audio = true;
        let Some((codec, pt)) = m.payload_types().find_map(|pt| {
            m.codec_of(pt)
                .filter(|c| local.codecs.contains(c))
                .map(|c| (c, pt))
        }) else {
            continue;
        };
        let remote_ip = offer.connection_of(m);
        let remote_hold = remote_ip.is_none_or(|ip| ip.is_unspecified());
        let mut offered = offer.direction_of(m);
        if remote_hold {
            offered = offered.intersect(Direction::SendOnly);
        }
        let direction = offered.reversed().intersect(local.direction);
        let telephone_event = local.telephone_event.and(m.telephone_event_pt());
        let remote_rtp = remote_ip
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| SocketAddr::new(ip, m.port));
        chosen = Some((
            index,
            NegotiatedMedia {
                remote_rtp,
                codec,
                payload_type: pt,
                telephone_event,
                remote_ptime: m.ptime,
                direction,
                remote_hold,
            },
        ));
        break;
    }
    let Some((chosen_index, media)) = chosen else {
        return Err(if any_audio {
            SdpError::NoCommonCodec
        } else {
            SdpError::NoAudio
        });
    };
    let streams = offer
        .media
        .iter()
        .enumerate()
        .map(|(index, m)| {
            if index == chosen_index {
                local.audio(
                    &[(media.codec, media.payload_type)],
                    media.telephone_event,
                    media.direction,
                )
            } else {
                rejected(m)
            }
        })
        .collect();
    Ok(Answer {
        sdp: local.session(streams),
        media,
    })
}

fn rejected(m: &MediaDescription) -> MediaDescription {
    MediaDescription {
        media: m.media.clone(),
        port: 0,
        port_count: None,
        protocol: m.protocol.clone(),
        formats: m.formats.first().cloned().into_iter().collect(),
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        attributes: Vec::new(),
    }
}

/// Our offer: one audio stream with `local.codecs` in order, `telephone-event`, `ptime` and
/// `local.direction`.
pub fn offer(local: &LocalMedia) -> SessionDescription {
    let codecs: Vec<(Codec, u8)> = local
        .codecs
        .iter()
        .map(|c| (*c, c.payload_type()))
        .collect();
    local.session(vec![local.audio(
        &codecs,
        local.telephone_event,
        local.direction,
    )])
}

/// Reads the answer to our `offer` (RFC 3264 sec. 7): the first audio stream must be
/// accepted (port != 0) with a codec we offered; DTMF is on when the answer kept
/// `telephone-event`.
pub fn process_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<NegotiatedMedia, SdpError> {
    let ours = offer
        .media
        .iter()
        .position(MediaDescription::is_rtp_audio)
        .ok_or(SdpError::NoAudio)?;
    let our_media = &offer.media[ours];
    let m = answer.media.get(ours).ok_or(SdpError::NoAudio)?;
    if m.port == 0 {
        return Err(SdpError::Rejected);
    }
    let (codec, pt) = m
        .payload_types()
        .find_map(|pt| {
            let codec = m.codec_of(pt)?;
            our_media
                .payload_types()
                .any(|ours| our_media.codec_of(ours) == Some(codec))
                .then_some((codec, pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let our_te = our_media.telephone_event_pt();
    let telephone_event = our_te.and(m.telephone_event_pt());
    let remote_ip = answer.connection_of(m);
    let remote_hold = remote_ip.is_none_or(|ip| ip.is_unspecified());
    let mut answered = answer.direction_of(m);
    if remote_hold {
        answered = answered.intersect(Direction::SendOnly);
    }
    let our_direction = offer.direction_of(our_media);
    Ok(NegotiatedMedia {
        remote_rtp: remote_ip
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| SocketAddr::new(ip, m.port)),
        codec,
        payload_type: pt,
        telephone_event,
        remote_ptime: m.ptime,
        direction: answered.reversed().intersect(our_direction),
        remote_hold,
    })
}

/// Keeps one side's SDP state across a dialog: the `o=` version goes up exactly when our
/// description changes (RFC 3264 sec. 8: "incremented by one" for each modification).
#[derive(Debug, Clone)]
pub struct SdpSession {
    /// Our side's media settings; edit (e.g. `direction` for hold) then make a new offer.
    pub local: LocalMedia,
    last_sent: Option<SessionDescription>,
}

impl SdpSession {
    /// A new session for `local`.
    pub fn new(local: LocalMedia) -> Self {
        SdpSession {
            local,
            last_sent: None,
        }
    }

    /// An offer (initial, or a re-offer for hold/resume) with the version bumped when the
    /// description changed since the last one sent.
    pub fn make_offer(&mut self) -> SessionDescription {
        let sdp = offer(&self.local);
        self.remember(sdp)
    }

    /// An answer to `offer` with the same versioning rule.
    pub fn make_answer(&mut self, offer_sdp: &SessionDescription) -> Result<Answer, SdpError> {
        let mut answer = answer(offer_sdp, &self.local)?;
        answer.sdp = self.remember(answer.sdp);
        Ok(answer)
    }

    /// The last description sent, if any.
    pub fn last_sent(&self) -> Option<&SessionDescription> {
        self.last_sent.as_ref()
    }

    fn remember(&mut self, mut sdp: SessionDescription) -> SessionDescription {
        if let Some(last) = &self.last_sent {
            let mut same = sdp.clone();
            same.origin.session_version = last.origin.session_version;
            if same == *last {
                self.local.session_version = last.origin.session_version;
            } else {
                self.local.session_version = last.origin.session_version.wrapping_add(1);
            }
            sdp.origin.session_version = self.local.session_version;
        }
        self.last_sent = Some(sdp.clone());
        sdp
    }
}

/// The address to use in an SDP when putting a peer on hold the RFC 2543 way (`c=0.0.0.0`),
/// for peers that need it.
pub const HOLD_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests;
