//! The `trunkline` command line: `serve`, `migrate`, `apikey`, `amd`.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// trunkline: a self-hosted SIP/RTP media server and call-centre dialer.
#[derive(Debug, Parser)]
#[command(name = "trunkline", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (SIP, RTP, HTTP API).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(CommonArgs),
    /// Manage HTTP API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Run the answering-machine detector over WAV files; one JSON line per file.
    Amd(crate::amd::cli::AmdArgs),
}

/// `trunkline apikey …`.
#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; the key itself is printed alone on the last line, once.
    Create {
        /// Config, data and database.
        #[command(flatten)]
        common: CommonArgs,
        /// A name to recognise the key by.
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List keys (never the keys themselves).
    List {
        /// Config, data and database.
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Revoke a key by id or by its displayed prefix.
    Revoke {
        /// Config, data and database.
        #[command(flatten)]
        common: CommonArgs,
        /// Key id (UUID) or prefix (`tl_…`).
        key: String,
    },
}

/// Options shared by every command that opens the store.
#[derive(Debug, Clone, Args, Default)]
pub struct CommonArgs {
    /// Configuration folder (default: ./sip-config if present, else the built-in example).
    #[arg(long, value_name = "DIR")]
    pub config: Option<PathBuf>,
    /// Data folder (SQLite database, recordings); overrides `[data] dir`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Database URL (`sqlite://…` or `postgres://…`); overrides the config.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

/// `trunkline serve`.
#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// Config, data and database.
    #[command(flatten)]
    pub common: CommonArgs,
    /// SIP listen address (UDP and TCP); overrides `[sip] listen`.
    #[arg(long, value_name = "ADDR")]
    pub sip: Option<SocketAddr>,
    /// HTTP listen address; overrides `[http] listen`.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// RTP port range `MIN-MAX`; overrides `[rtp] port_min/port_max`.
    #[arg(long, value_name = "MIN-MAX", value_parser = parse_port_range)]
    pub rtp_ports: Option<(u16, u16)>,
    /// Address RTP sockets bind to and SDP advertises; overrides `[rtp] address`.
    #[arg(long, value_name = "IP")]
    pub rtp_address: Option<std::net::IpAddr>,
    /// Address written into Via, Contact and SDP (behind NAT, in a container); overrides
    /// `[sip] public_address`. Required when SIP or RTP binds a wildcard address (0.0.0.0).
    #[arg(long, value_name = "IP")]
    pub public_address: Option<std::net::IpAddr>,
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected MIN-MAX, e.g. 20000-20999")?;
    let a: u16 = a.trim().parse().map_err(|e| format!("bad MIN: {e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("bad MAX: {e}"))?;
    if a == 0 || a >= b {
        return Err(format!("empty port range {a}-{b}"));
    }
    Ok((a, b))
}

/// Sets up `tracing` from `RUST_LOG` (default `info`), logging to stderr.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(crate::app::serve(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(common) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(crate::store::admin::migrate(&common))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Apikey(cmd) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(crate::store::admin::apikey(cmd))
        }
        Command::Amd(args) => Ok(crate::amd::cli::run(args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_parses_and_rejects_empty() {
        assert_eq!(parse_port_range("20000-20010"), Ok((20000, 20010)));
        assert!(parse_port_range("20010-20000").is_err());
        assert!(parse_port_range("x").is_err());
    }
}
