//! `trunkline migrate` and `trunkline apikey create|list|revoke` as a user runs them, against
//! SQLite in a `--data` folder and (with `TRUNKLINE_TEST_PG`) PostgreSQL via `--database-url`.

use chrono::Utc;
use std::process::{Command, Output};
use trunkline::store::testing::test_databases;
use trunkline::store::{API_KEY_PREFIX, Store};

fn trunkline(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_trunkline"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run trunkline");
    assert!(
        out.status.success(),
        "trunkline {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Runs the commands with `db_args` selecting the database, checking through `store`.
async fn apikey_commands(db_args: &[&str], store: impl AsyncFn() -> Store) {
    let with = |cmd: &[&str]| -> Vec<String> {
        cmd.iter().chain(db_args).map(|s| s.to_string()).collect()
    };
    let run = |cmd: &[&str]| {
        let args = with(cmd);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        trunkline(&refs)
    };
    run(&["migrate"]);
    run(&["migrate"]);

    let created = stdout(&run(&["apikey", "create", "--name", "crm"]));
    let key = created.lines().last().unwrap().trim().to_owned();
    assert!(
        key.starts_with(API_KEY_PREFIX),
        "last line is the key alone: {created}"
    );
    assert!(!key.contains(' '));

    let s = store().await;
    let verified = s.verify_api_key(&key, now()).await.unwrap().unwrap();
    assert_eq!(verified.name, "crm");
    s.close().await;

    let listed = stdout(&run(&["apikey", "list"]));
    assert!(
        listed.contains(&verified.prefix) && listed.contains("crm"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "list never shows the key");

    run(&["apikey", "revoke", &verified.prefix]);
    let s = store().await;
    assert_eq!(s.verify_api_key(&key, now()).await.unwrap(), None);
    s.close().await;
}

/// Wall time (the CLI stamps rows with the real clock).
fn now() -> chrono::DateTime<Utc> {
    use trunkline::clock::Clock as _;
    trunkline::clock::SystemClock.utc()
}

#[tokio::test]
async fn apikey_commands_on_sqlite_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap().to_owned();
    let url = format!("sqlite://{}", data.join("trunkline.db").display());
    apikey_commands(&["--data", &data_s], async || {
        let s = Store::connect(&url).await.unwrap();
        s.migrate().await.unwrap();
        s
    })
    .await;
    assert!(
        data.join("trunkline.db").is_file(),
        "created in the data folder"
    );
}

#[tokio::test]
async fn apikey_commands_on_postgres_when_configured() {
    for db in test_databases().await {
        if db.label == "postgres" {
            let url = db.url.clone();
            apikey_commands(&["--database-url", &url], async || db.store().await).await;
        }
        db.remove().await;
    }
}
