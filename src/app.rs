//! Wiring: load config, open the store, bind sockets, spawn drivers, serve HTTP, shut down
//! gracefully on SIGINT/SIGTERM.

use crate::cli::ServeArgs;
use crate::config::Config;

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
    if let Some(d) = &args.common.data {
        cfg.server.data.dir = d.clone();
    }
    if let Some(u) = &args.common.database_url {
        cfg.server.data.database_url = Some(u.clone());
    }
}

/// `trunkline serve`: runs until SIGINT/SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.common.config.as_deref())?;
    apply_overrides(&mut cfg, &args);
    let listener = tokio::net::TcpListener::bind(cfg.server.http.listen).await?;
    tracing::info!(http = %cfg.server.http.listen, "trunkline listening");
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
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
