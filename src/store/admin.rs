//! `trunkline migrate` and `trunkline apikey create|list|revoke`: driver code behind the CLI.

use super::{Store, database_url};
use crate::cli::{ApikeyCommand, CommonArgs};
use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use anyhow::Context as _;
use std::process::ExitCode;
use uuid::Uuid;

/// The config with `--data` and `--database-url`/`DATABASE_URL` applied.
pub fn config_for(common: &CommonArgs) -> anyhow::Result<Config> {
    let mut cfg = Config::load(common.config.as_deref()).context("loading the configuration")?;
    if let Some(d) = &common.data {
        cfg.server.data.dir = d.clone();
    }
    if let Some(u) = &common.database_url {
        cfg.server.data.database_url = Some(u.clone());
    }
    Ok(cfg)
}

/// Connects to the configured database and applies migrations.
pub async fn open(common: &CommonArgs) -> anyhow::Result<Store> {
    let cfg = config_for(common)?;
    let url = database_url(&cfg);
    let store = Store::connect(&url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// `trunkline migrate`.
pub async fn migrate(common: &CommonArgs) -> anyhow::Result<()> {
    let store = open(common).await?;
    println!("migrations applied ({:?})", store.backend());
    store.close().await;
    Ok(())
}

/// `trunkline apikey …`.
pub async fn apikey(cmd: ApikeyCommand) -> anyhow::Result<ExitCode> {
    let now = SystemClock.utc();
    match cmd {
        ApikeyCommand::Create { common, name } => {
            let store = open(&common).await?;
            let (key, plaintext) = store.create_api_key(&name, now).await?;
            println!(
                "created API key {} named {:?}, prefix {}",
                key.id, key.name, key.prefix
            );
            println!("store it now; it is not shown again:");
            println!("{plaintext}");
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::List { common } => {
            let store = open(&common).await?;
            let keys = store.list_api_keys().await?;
            println!(
                "{:<36}  {:<11}  {:<25}  {:<25}  {:<25}  name",
                "id", "prefix", "created", "last used", "revoked"
            );
            let show = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "-".into())
            };
            for k in keys {
                println!(
                    "{:<36}  {:<11}  {:<25}  {:<25}  {:<25}  {}",
                    k.id,
                    k.prefix,
                    show(Some(k.created_at)),
                    show(k.last_used_at),
                    show(k.revoked_at),
                    k.name
                );
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::Revoke { common, key } => {
            let store = open(&common).await?;
            let keys = store.list_api_keys().await?;
            let matches: Vec<_> = match Uuid::try_parse(&key) {
                Ok(id) => keys.iter().filter(|k| k.id == id).collect(),
                Err(_) => keys.iter().filter(|k| k.prefix == key).collect(),
            };
            let code = match matches.as_slice() {
                [] => {
                    eprintln!("no API key with id or prefix {key:?}");
                    ExitCode::FAILURE
                }
                [k] => {
                    if store.revoke_api_key(k.id, now).await? {
                        println!("revoked API key {} ({})", k.id, k.prefix);
                    } else {
                        println!("API key {} was already revoked", k.id);
                    }
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!("prefix {key:?} matches several keys; give the id");
                    ExitCode::FAILURE
                }
            };
            store.close().await;
            Ok(code)
        }
    }
}
