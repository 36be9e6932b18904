//! # trunkline
//!
//! A self-hosted SIP/RTP media server and call-centre dialer. It terminates SIP trunks and RTP
//! itself, bridges calls, detects answering machines on the raw audio, records both sides, and is
//! driven by an HTTP API with webhooks and a live event stream.
//!
//! # Layout
//!
//! **pure** = no sockets, tokio or clock (fed `(now, input)`, returns actions);
//! **driver** = a thin async layer that owns sockets, timers and channels around a pure core.
//!
//! - [`clock`]: the injected clock (`Clock`, `SystemClock`, `ManualClock`).
//! - [`config`]: typed configuration loaded from `sip-config/` (TOML).
//! - [`cli`]: the `trunkline` command line (`serve`, `migrate`, `apikey`, `amd`).
//! - [`app`]: wiring: bind sockets, spawn drivers, serve HTTP, graceful shutdown.
//! - [`sip`]: message parse/print, SDP offer/answer, transactions and dialogs (pure), transport (driver).
//! - [`rtp`]: RTP/RTCP packets, jitter buffer, DTMF, port pool (pure); sockets (driver).
//! - [`media`]: frames, G.711, mixer, player (pure); media clock (driver); recorder.
//! - [`amd`]: streaming answering-machine detection (pure), shared by live calls and `trunkline amd`.
//! - [`campaign`]: dialer data (pure): campaign vocabulary and settings, phone normalisation, CSV import.
//! - [`call`]: the call engine: one owner task per call, commands in, events out.
//! - [`inbound`]: business hours, ring groups, voicemail, missed-call decisions (pure);
//!   start-up sweeper and pruning (driver).
//! - [`dialer`]: calling windows, retries, rate limits, agent sessions, pacing (pure); simulation;
//!   the campaign runner (driver: claims contacts, places calls, stores attempt outcomes, drives
//!   agent sessions).
//! - [`events`]: event log, durable webhook outbox, signed delivery, SSE fan-out.
//! - [`store`]: sqlx over SQLite (default) or PostgreSQL, migrations, one function per query.
//! - [`http`]: the `/v1` control API (axum), OpenAPI, `/healthz`, `/metrics`.
//! - [`retention`]: deleting recording files (by API) and the retention job (driver).
//! - [`telemetry`]: Prometheus metric names and the recorder.

pub mod amd;
pub mod app;
pub mod call;
pub mod campaign;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dialer;
pub mod events;
pub mod http;
pub mod inbound;
pub mod media;
pub mod retention;
pub mod rtp;
pub mod sip;
pub mod store;
pub mod telemetry;
