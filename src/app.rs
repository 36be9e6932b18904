//! Wiring: load config, open the store, bind sockets, spawn drivers, serve HTTP, shut down
//! gracefully on SIGINT/SIGTERM.
//!
//! # Tasks
//!
//! ```text
//!  SIP UDP/TCP ──► engine driver (CallEngine) ──► media worker (20 ms clock, RTP sockets)
//!  HTTP (axum) ──► EngineHandle ─┘      │   ◄── media events
//!                                      └──► store writer ──► store + EventBus ──► outbox (webhooks)
//!                                                                        └──► SSE subscribers
//! ```
//!
//! # Shutdown
//!
//! On SIGINT/SIGTERM: new calls get 503 (SIP) or 503 (API) at once; live calls get
//! `[calls] shutdown_grace_secs` to end by themselves, then are hung up (BYE/CANCEL); the
//! store writer finishes every queued row and event; the outbox delivers what is due within
//! its grace period (anything left is delivered after the next start); HTTP drains.

use crate::call::driver::{self, ShutdownPhase, SipSockets, WriterOp};
use crate::call::engine::{CallEngine, EngineConfig, MediaCommand, MediaEvent};
use crate::call::{COMMAND_CAPACITY, EngineHandle};
use crate::cli::ServeArgs;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, RouteConfig};
use crate::events::EventBus;
use crate::events::outbox::{OutboxConfig, run_outbox};
use crate::media::player::{Prompt, PromptCache};
use crate::media::worker::{self, BoundPorts, MediaConfig};
use crate::store::Store;
use anyhow::Context;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Applies command-line overrides to a loaded config.
pub fn apply_overrides(cfg: &mut Config, args: &ServeArgs) {
    if let Some(a) = args.sip {
        cfg.server.sip.listen = a;
    }
    if let Some(a) = args.http {
        cfg.server.http.listen = a;
    }
    if let Some((a, b)) = args.rtp_ports {
        cfg.server.rtp.port_min = a;
        cfg.server.rtp.port_max = b;
    }
    if let Some(ip) = args.rtp_address {
        cfg.server.rtp.address = ip;
    }
    if let Some(ip) = args.public_address {
        cfg.server.sip.public_address = Some(ip);
    }
    if let Some(d) = &args.common.data {
        cfg.server.data.dir = d.clone();
    }
    if let Some(u) = &args.common.database_url {
        cfg.server.data.database_url = Some(u.clone());
    }
}

/// Decodes every prompt a route names (plays, ring-group prompts, voicemail greetings, closed
/// routes), so a bad file is an error at start, never mid-call.
pub fn load_route_prompts(
    cfg: &Config,
    cache: &mut PromptCache,
) -> anyhow::Result<HashMap<String, Prompt>> {
    fn names(r: &RouteConfig, out: &mut Vec<String>) {
        match r {
            RouteConfig::Play { prompt, .. } => out.push(prompt.clone()),
            RouteConfig::RingGroup(g) => {
                out.extend(g.prompt.clone());
                if let Some(next) = &g.on_no_answer {
                    names(next, out);
                }
            }
            RouteConfig::Voicemail(v) => out.extend(v.greeting.clone()),
            RouteConfig::Echo | RouteConfig::Reject { .. } | RouteConfig::Number { .. } => {}
        }
    }
    let mut out = HashMap::new();
    for n in &cfg.numbers {
        let mut wanted = Vec::new();
        names(&n.route, &mut wanted);
        if let Some(h) = &n.hours {
            names(&h.closed, &mut wanted);
        }
        for prompt in wanted {
            let p = cache
                .get(&prompt)
                .with_context(|| format!("number {:?}", n.number))?;
            out.insert(prompt, p);
        }
    }
    Ok(out)
}

/// `trunkline serve`: runs until SIGINT/SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.common.config.as_deref())?;
    apply_overrides(&mut cfg, &args);
    run(cfg, Arc::new(SystemClock), shutdown_signal()).await
}

/// Runs the server with `cfg` until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    cfg.check_addresses()?;
    let cfg = Arc::new(cfg);
    let url = crate::store::database_url(&cfg);
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening the database {}", redact(&url)))?;
    store.migrate().await.context("applying migrations")?;
    let bus = EventBus::new(store.clone());
    let recordings_dir = cfg.server.data.dir.join("recordings");

    let mut prompts = PromptCache::new(cfg.prompts_dir.clone());
    if cfg.prompts_dir.is_none() || prompts.get("tone").is_err() {
        // The embedded example's tone prompt, available whatever the config folder holds.
        prompts.insert(Prompt::from_wav_bytes(
            "tone",
            crate::config::embedded::TONE_WAV,
        )?);
    }
    let route_prompts = load_route_prompts(&cfg, &mut prompts)?;

    let sip = SipSockets::bind(cfg.server.sip.listen)
        .await
        .with_context(|| format!("binding SIP on {}", cfg.server.sip.listen))?;
    let sip_addr = sip.local_addr()?;
    // This node's name (attempt rows, contact leases, its inbound calls, rooms, recordings).
    let node = node_name(sip_addr);

    // Rooms and recordings a crash left open on this node: none is live in a new process.
    let recovered = driver::recover_unfinished(&bus, clock.utc(), &recordings_dir, &node)
        .await
        .context("closing rooms and recordings left open by the previous run")?;
    if recovered != driver::Recovered::default() {
        tracing::warn!(
            conferences = recovered.conferences,
            interrupted = recovered.interrupted,
            failed = recovered.failed,
            "closed rooms and recordings left open by the previous run"
        );
    }

    // Inbound calls a crash left ringing on this node: their one `call.missed` (reason
    // `restart`). The SIP socket is bound already; nothing is read from it before this ends.
    let swept = crate::inbound::sweeper::sweep_undecided(&bus, &cfg, clock.utc(), &node)
        .await
        .context("deciding inbound calls left undecided by the previous run")?;
    if swept > 0 {
        tracing::warn!(
            missed = swept,
            "inbound calls left ringing by the previous run recorded missed (restart)"
        );
    }
    let http = tokio::net::TcpListener::bind(cfg.server.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", cfg.server.http.listen))?;
    let http_addr = http.local_addr()?;
    let rtp = &cfg.server.rtp;
    let ports = BoundPorts::new(rtp.address, rtp.port_min, rtp.port_max)?;

    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (media_tx, media_rx) = mpsc::channel::<MediaCommand>(worker::COMMAND_CAPACITY);
    let (media_ev_tx, media_ev_rx) = mpsc::channel::<MediaEvent>(worker::EVENT_CAPACITY);
    let (writer_tx, writer_rx) = mpsc::channel::<WriterOp>(driver::WRITER_CAPACITY);
    let (phase_tx, phase_rx) = watch::channel(ShutdownPhase::Run);
    let (outbox_stop_tx, outbox_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (retention_stop_tx, retention_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (prune_stop_tx, prune_stop_rx) = tokio::sync::oneshot::channel::<()>();

    let mut engine = CallEngine::new(
        EngineConfig::from_config(&cfg, sip_addr),
        cfg.clone(),
        Box::new(ports.clone()),
        route_prompts,
        rand::random(),
    );
    // Registrations survive a restart: the registrar starts with the stored bindings (expired
    // ones are removed through the engine, with their `registration.removed` event).
    let rows = store
        .all_registrations()
        .await
        .context("loading stored registrations")?;
    let restored = rows.len();
    engine.restore_registrations(
        clock.now(),
        driver::bindings_from_rows(rows, clock.now(), clock.utc()),
    );
    if restored > 0 {
        tracing::info!(registrations = restored, "loaded stored registrations");
    }
    let status = driver::new_status();
    let media_task = tokio::spawn(worker::run_media_worker(
        clock.clone(),
        MediaConfig {
            no_media_timeout: cfg.no_media_timeout(),
        },
        ports,
        media_rx,
        media_ev_tx,
    ));
    let writer_task = tokio::spawn(driver::run_store_writer(
        bus.clone(),
        clock.clone(),
        writer_rx,
        node.clone(),
    ));
    let engine_task = tokio::spawn(driver::run_engine(
        engine,
        clock.clone(),
        sip,
        cmd_rx,
        media_ev_rx,
        media_tx,
        writer_tx,
        phase_rx,
        status.clone(),
    ));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut outbox_cfg = OutboxConfig::from_config(&cfg.server.webhooks);
    if !cfg.server.webhooks.secret.is_empty() {
        outbox_cfg.secret = Some(cfg.server.webhooks.secret.clone());
    }
    let outbox_task = tokio::spawn(run_outbox(
        store.clone(),
        client,
        clock.clone(),
        outbox_cfg,
        async {
            let _ = outbox_stop_rx.await;
        },
    ));

    // Old recordings go at start and then hourly (nothing to do with retention_days = 0).
    let retention_task = tokio::spawn(crate::retention::run_retention(
        bus.clone(),
        clock.clone(),
        cfg.recordings_dir(),
        cfg.server.recordings.retention_days,
        crate::retention::RETENTION_INTERVAL,
        async {
            let _ = retention_stop_rx.await;
        },
    ));

    // Processed missed-call records go after `[inbound] missed_retention_days`.
    let prune_task = tokio::spawn(crate::inbound::sweeper::run_prune(
        bus.clone(),
        clock.clone(),
        cfg.clone(),
        crate::inbound::sweeper::PRUNE_INTERVAL,
        async {
            let _ = prune_stop_rx.await;
        },
    ));

    let prompts = Arc::new(Mutex::new(prompts));
    let engine_handle = EngineHandle::new(cmd_tx);
    let (dialer_stop_tx, dialer_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (sessions, sessions_inbox) = crate::dialer::runner::sessions::session_channel();
    let dialer_task = tokio::spawn(crate::dialer::runner::run_dialer(
        crate::dialer::runner::DialerDeps {
            store: store.clone(),
            bus: bus.clone(),
            engine: engine_handle.clone(),
            clock: clock.clone(),
            prompts: prompts.clone(),
        },
        crate::dialer::runner::DialerConfig {
            node: node.clone(),
            tick: Duration::from_millis(500),
            lease: Duration::from_secs(120),
            ring_timeout: Duration::from_secs(cfg.server.calls.ring_timeout_secs),
            sweep: Duration::from_secs(5),
            webhook_secret: (!cfg.server.webhooks.secret.is_empty())
                .then(|| cfg.server.webhooks.secret.clone()),
        },
        sessions_inbox,
        async {
            let _ = dialer_stop_rx.await;
        },
    ));
    let state = crate::http::AppState {
        store: store.clone(),
        engine: engine_handle,
        events: bus.clone(),
        clock: clock.clone(),
        config: cfg.clone(),
        prompts,
        metrics: crate::telemetry::prometheus(),
        sessions,
    };
    let http_task = tokio::spawn(crate::http::serve(http, state, async {
        let _ = http_stop_rx.await;
    }));

    // One machine-readable line for scripts and tests, on stdout.
    println!("trunkline ready sip={sip_addr} http={http_addr}");
    tracing::info!(sip = %sip_addr, http = %http_addr, database = %redact(&url), "trunkline is up");

    shutdown.await;
    tracing::info!("shutting down: no new calls; waiting for live calls to end");
    // The dialer places no new call; the attempts of calls still live finish at the next start.
    let _ = dialer_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), dialer_task).await;
    let _ = phase_tx.send(ShutdownPhase::Drain);
    let grace = Duration::from_secs(cfg.server.calls.shutdown_grace_secs);
    let drained = async {
        while status.active_calls() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::info!(
            calls = status.active_calls(),
            "grace period over: hanging up live calls"
        );
    }
    let _ = phase_tx.send(ShutdownPhase::HangupAll);
    if tokio::time::timeout(Duration::from_secs(10), engine_task)
        .await
        .is_err()
    {
        tracing::warn!("engine did not stop within 10 s");
    }
    // The engine held the last senders to the writer and the media worker: they now finish.
    let _ = tokio::time::timeout(Duration::from_secs(30), writer_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), media_task).await;
    let _ = http_stop_tx.send(());
    let _ = retention_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), retention_task).await;
    let _ = prune_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), prune_task).await;
    let _ = outbox_stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(30), outbox_task).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "outbox stopped with an error"),
        Err(_) => {
            tracing::warn!("outbox did not stop in time; undelivered events resume at next start")
        }
        _ => {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// This node's name in attempt rows and contact leases: `TRUNKLINE_NODE`, else the host name
/// and the SIP port (stable across restarts of one node, distinct between nodes).
pub fn node_name(sip: std::net::SocketAddr) -> String {
    if let Ok(n) = std::env::var("TRUNKLINE_NODE")
        && !n.trim().is_empty()
    {
        return n.trim().to_string();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", sip.port())
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
