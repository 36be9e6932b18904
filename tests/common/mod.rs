//! Test harness for the real-peer suites (driver side of the tests, STYLE.md sec. 9.3).
//!
//! - [`sipp`]: runs SIPp (scenarios in `tests/sipp/`) as a bounded child process and parses
//!   what it reports, including how much RTP came back to it.
//! - [`baresip`]: a real softphone in its own config folder, driven through stdin.
//! - [`audio`]: test WAVs made with sox, and measurements of what came back.
//! - [`webhook`]: a real HTTP receiver that records every request.
//! - [`Server`] (here): the real `trunkline` binary on loopback ports, killed on drop.
//!
//! Every child process is ended by its PID (on drop at the latest); every wait has a deadline.
//!
//! Shapes of the tests this is for (each test file starts with `mod common;`):
//!
//! ```ignore
//! // SIPp calls the echo number with RTP; the echo comes back to SIPp's -mp socket.
//! let server = common::Server::start();
//! let r = Sipp::uac(Scenario::ours("uac_echo"), server.sip)
//!     .service("echo").calls(Some(200)).rate(20.0).pause(Duration::from_secs(2))
//!     .continue_on_unexpected()
//!     .timeout(Duration::from_secs(40), Duration::from_secs(10))
//!     .run()?;
//! r.assert_success(200);
//! assert!(r.media.received_any(), "{}", r.describe());
//!
//! // The server calls a SIPp far end that demands digest auth.
//! let far = Sipp::uas(Scenario::ours("uas_auth_407")).credentials("alice", "secret").start()?;
//! let server = common::Server::start_with(
//!     ServerOptions::default().trunk_with_auth("t", far.sip_addr(), "alice", "secret"));
//! // ... POST /v1/calls with trunk "t" ...
//! far.wait().assert_success(1); // fails unless the credentials were right
//!
//! // baresip hears the tone prompt.
//! let mut phone = Baresip::start("alice", None)?;
//! phone.dial(&format!("sip:tone@{}", server.sip))?;
//! phone.wait_closed(1, Duration::from_secs(20))?;
//! let heard = audio::read_wav(&phone.heard_wav().unwrap())?;
//! ```
//! Ports come from the OS (`bind 127.0.0.1:0`), checked free in blocks, so test binaries can run
//! in parallel with each other and with other users of the machine.
#![allow(dead_code)]

pub mod api;
pub mod audio;
pub mod baresip;
pub mod sipp;
pub mod webhook;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use trunkline::clock::{Clock, SystemClock};

/// Monotonic time for deadlines (through the crate clock, as the lint asks).
pub fn now() -> Instant {
    SystemClock.now()
}

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a file under `tests/`, e.g. `tests_path("sipp/uas_answer.xml")`.
pub fn tests_path(rel: &str) -> PathBuf {
    repo_root().join("tests").join(rel)
}

/// Polls `f` every `every` until it returns `Some`, or gives up after `timeout`.
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// A block of `len` consecutive ports on 127.0.0.1, free for both UDP and TCP when checked,
/// starting at an even port chosen by the OS. Used for SIPp (`-p`, `-mp` and `-mp + 2`),
/// baresip (SIP port and TLS on port + 1) and the server's RTP range.
pub fn free_port_block(len: u16) -> u16 {
    assert!(len > 0);
    for _ in 0..200 {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let first = probe.local_addr().expect("local addr").port() & !1;
        drop(probe);
        if u32::from(first) + u32::from(len) > 65_000 || first < 1024 {
            continue;
        }
        let mut held_udp = Vec::new();
        let mut held_tcp = Vec::new();
        let mut ok = true;
        for p in first..first + len {
            match (
                UdpSocket::bind(("127.0.0.1", p)),
                TcpListener::bind(("127.0.0.1", p)),
            ) {
                (Ok(u), Ok(t)) => {
                    held_udp.push(u);
                    held_tcp.push(t);
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            return first;
        }
    }
    panic!("no block of {len} free ports on 127.0.0.1 after 200 tries");
}

/// One free port on 127.0.0.1 (UDP and TCP).
pub fn free_port() -> u16 {
    free_port_block(1)
}

/// PostgreSQL URL for tests, from `TRUNKLINE_TEST_PG` (set by `scripts/test.sh`), if any.
pub fn test_pg_url() -> Option<String> {
    std::env::var("TRUNKLINE_TEST_PG")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Sends a signal to a process we started, by PID, with the `kill` program (no libc binding
/// needed). Errors are ignored: the process may be gone already.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `timeout` for a child to exit; returns its status, or `None` if still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    poll_until(timeout, Duration::from_millis(20), || {
        child.try_wait().ok().flatten()
    })
}

/// The last `max` characters of a file (for failure messages), or a note that it is unreadable.
pub fn tail_of_file(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let start = text.len().saturating_sub(max);
            let start = (start..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            text[start..].to_string()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A plain HTTP/1.1 GET on loopback without an async runtime: returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:.200}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// What the `Server` harness writes into the config folder.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `[[number]]` entries: (number, route as an inline TOML table).
    pub numbers: Vec<(String, String)>,
    /// `[[trunk]]` entries, each as the TOML body of one table (without the header).
    pub trunks: Vec<String>,
    /// `[[agent]]` entries of `agents.toml`, each as the TOML body of one table.
    pub agents: Vec<String>,
    /// Extra TOML appended to `server.toml` (e.g. `[calls]\nring_timeout_secs = 3`).
    pub server_extra: String,
    /// Extra keys of `[sip]` (e.g. `trusted_sources = []`).
    pub sip_extra: String,
    /// `--database-url`; `None` lets the server use its default (SQLite in the data folder).
    pub database_url: Option<String>,
    /// Number of RTP ports given to the server (`--rtp-ports`).
    pub rtp_ports: u16,
    /// Value of `RUST_LOG` for the server.
    pub rust_log: String,
    /// Time allowed for `/healthz` to answer 200 after a start.
    pub start_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            numbers: vec![
                ("echo".into(), r#"{ action = "echo" }"#.into()),
                (
                    "tone".into(),
                    r#"{ action = "play", prompt = "tone" }"#.into(),
                ),
                ("busy".into(), r#"{ action = "reject", code = 486 }"#.into()),
            ],
            trunks: Vec::new(),
            agents: Vec::new(),
            server_extra: String::new(),
            sip_extra: String::new(),
            database_url: backend_database_url(),
            rtp_ports: 200,
            rust_log: "info".into(),
            start_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerOptions {
    /// Adds a route for a called number, e.g. `route("ring", r#"{ action = "echo" }"#)`.
    pub fn route(mut self, number: &str, route_toml: &str) -> Self {
        self.numbers.retain(|(n, _)| n != number);
        self.numbers.push((number.into(), route_toml.into()));
        self
    }

    /// Adds a UDP trunk named `name` toward `address` (e.g. a SIPp far end), any destination.
    pub fn trunk(mut self, name: &str, address: SocketAddr) -> Self {
        self.trunks.push(format!(
            "name = \"{name}\"\naddress = \"{address}\"\ntransport = \"udp\"\ncaller_id = \"+15550100000\"\nmax_concurrent = 1000\nmax_cps = 1000\nallowed_prefixes = [\"*\"]\n"
        ));
        self
    }

    /// Adds a UDP trunk with digest credentials.
    pub fn trunk_with_auth(
        mut self,
        name: &str,
        address: SocketAddr,
        user: &str,
        password: &str,
    ) -> Self {
        self = self.trunk(name, address);
        if let Some(last) = self.trunks.last_mut() {
            last.push_str(&format!(
                "username = \"{user}\"\npassword = \"{password}\"\n"
            ));
        }
        self
    }

    /// Adds an agent who may register with `password` (no trunks).
    pub fn agent(mut self, name: &str, password: &str) -> Self {
        self.agents
            .push(format!("name = \"{name}\"\npassword = \"{password}\"\n"));
        self
    }

    /// Uses this database URL (e.g. [`test_pg_url`]).
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.into());
        self
    }
}

/// The database every [`Server`] uses by default: with `TRUNKLINE_IT_DB=postgres` a fresh
/// PostgreSQL database (from `TRUNKLINE_TEST_PG`) per server, else the server's own SQLite.
/// `scripts/test.sh` runs the integration suites once each way.
pub fn backend_database_url() -> Option<String> {
    if std::env::var("TRUNKLINE_IT_DB").ok().as_deref() != Some("postgres") {
        return None;
    }
    let base = test_pg_url().expect("TRUNKLINE_IT_DB=postgres needs TRUNKLINE_TEST_PG");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    Some(
        rt.block_on(trunkline::store::testing::fresh_postgres_url(&base))
            .expect("create a fresh PostgreSQL database"),
    )
}

/// The real `trunkline` binary on loopback: SIP on `sip`, HTTP on `http`, RTP in `rtp_ports`,
/// with its own config and data folders. Killed (SIGKILL, by PID) on drop.
pub struct Server {
    child: Option<Child>,
    /// SIP address (UDP and TCP).
    pub sip: SocketAddr,
    /// HTTP API address.
    pub http: SocketAddr,
    /// RTP port range given with `--rtp-ports`.
    pub rtp_ports: (u16, u16),
    /// The config folder written from [`ServerOptions`].
    pub config_dir: PathBuf,
    /// The data folder (kept across restarts).
    pub data_dir: PathBuf,
    /// Where the server's stderr goes (appended across restarts).
    pub log_path: PathBuf,
    options: ServerOptions,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with the default options (routes `echo`, `tone`, `busy`).
    pub fn start() -> Server {
        Self::start_with(ServerOptions::default())
    }

    /// Writes the config folder, starts the binary and waits for `GET /healthz` to answer 200.
    /// Panics with the server's stderr when it does not come up in time.
    ///
    /// The free ports are probed before the server binds them, so a parallel test may take one
    /// in between; a server that exits with "Address already in use" is started again on new
    /// ports (at most 4 times).
    pub fn start_with(options: ServerOptions) -> Server {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut server = Self::prepare(options.clone());
            match server.try_launch() {
                Ok(()) => return server,
                Err(e) if tries < 4 && e.contains("Address already in use") => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn prepare(options: ServerOptions) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_dir = dir.path().join("sip-config");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(config_dir.join("prompts")).expect("config dir");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let rtp_min = free_port_block(options.rtp_ports.max(4));
        let rtp_ports = (rtp_min, rtp_min + options.rtp_ports.max(4) - 1);
        write_config(&config_dir, &data_dir, sip, http, rtp_ports, &options);
        let log_path = dir.path().join("server.log");
        Server {
            child: None,
            sip,
            http,
            rtp_ports,
            config_dir,
            data_dir,
            log_path,
            options,
            _dir: dir,
        }
    }

    fn launch(&mut self) {
        if let Err(e) = self.try_launch() {
            panic!("{e}");
        }
    }

    /// Starts the binary on this server's ports; the error carries the server's log.
    fn try_launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "server already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("server log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trunkline"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_dir)
            .arg("--data")
            .arg(&self.data_dir)
            .arg("--sip")
            .arg(self.sip.to_string())
            .arg("--http")
            .arg(self.http.to_string())
            .arg("--rtp-ports")
            .arg(format!("{}-{}", self.rtp_ports.0, self.rtp_ports.1))
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", &self.options.rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        if let Some(url) = &self.options.database_url {
            cmd.arg("--database-url").arg(url);
        }
        let child = cmd.spawn().expect("spawn trunkline");
        self.child = Some(child);
        let timeout = self.options.start_timeout;
        let http = self.http;
        let up = poll_until(timeout, Duration::from_millis(50), || {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Some(Err(format!("trunkline exited during start: {status}")));
            }
            match http_get(http, "/healthz", Duration::from_secs(2)) {
                Ok((200, _)) => Some(Ok(())),
                _ => None,
            }
        });
        match up {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                self.child = None;
                Err(format!("{e}\n--- server log ---\n{}", self.log()))
            }
            None => {
                self.kill();
                Err(format!(
                    "trunkline did not answer GET /healthz with 200 within {timeout:?}\n--- server log ---\n{}",
                    self.log()
                ))
            }
        }
    }

    /// PID of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// The server's log so far (stdout and stderr, last 20 kB) for assertion messages.
    pub fn log(&self) -> String {
        tail_of_file(&self.log_path, 20_000)
    }

    /// Kills the server at once with SIGKILL (a crash), keeping its data for a restart.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the server to stop with SIGTERM and waits up to `grace` for it to exit; kills it
    /// after that. Returns the exit status when it exited by itself.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        signal(c.id(), "TERM");
        let status = wait_timeout(&mut c, grace);
        if status.is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
        status
    }

    /// Starts the server again on the same ports, config and data (after `kill` or `stop`).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop(Duration::from_secs(15));
        }
        self.launch();
    }

    /// The database URL given to the server, if not its default SQLite.
    pub fn database_url(&self) -> Option<&str> {
        self.options.database_url.as_deref()
    }

    /// Runs another subcommand of the same binary on the same config, data and database
    /// (e.g. `["apikey", "create"]`) and returns its output.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trunkline"));
        cmd.args(args)
            .arg("--config")
            .arg(&self.config_dir)
            .arg("--data")
            .arg(&self.data_dir)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null());
        if let Some(url) = &self.options.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.output().expect("run trunkline")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        // A fresh PostgreSQL database made for this server is dropped with it.
        if let (Some(url), Some(base)) = (self.options.database_url.clone(), test_pg_url())
            && url.starts_with("postgres")
            && url != base
            && let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        {
            let _ = rt.block_on(trunkline::store::testing::drop_postgres_database(
                &base, &url,
            ));
        }
    }
}

fn write_config(
    config_dir: &Path,
    data_dir: &Path,
    sip: SocketAddr,
    http: SocketAddr,
    rtp: (u16, u16),
    o: &ServerOptions,
) {
    let mut server = format!(
        "# written by tests/common/mod.rs\n[sip]\nlisten = \"{sip}\"\n{}\n\n[rtp]\naddress = \"127.0.0.1\"\nport_min = {}\nport_max = {}\n\n[http]\nlisten = \"{http}\"\n\n[data]\ndir = {:?}\n",
        o.sip_extra,
        rtp.0,
        rtp.1,
        data_dir.display().to_string()
    );
    if !o.server_extra.is_empty() {
        server.push('\n');
        server.push_str(&o.server_extra);
        server.push('\n');
    }
    std::fs::write(config_dir.join("server.toml"), server).expect("write server.toml");
    let mut numbers = String::new();
    for (n, r) in &o.numbers {
        numbers.push_str(&format!("[[number]]\nnumber = \"{n}\"\nroute = {r}\n\n"));
    }
    std::fs::write(config_dir.join("numbers.toml"), numbers).expect("write numbers.toml");
    let mut trunks = String::new();
    for t in &o.trunks {
        trunks.push_str("[[trunk]]\n");
        trunks.push_str(t);
        trunks.push('\n');
    }
    std::fs::write(config_dir.join("trunks.toml"), trunks).expect("write trunks.toml");
    let mut agents = String::new();
    for a in &o.agents {
        agents.push_str("[[agent]]\n");
        agents.push_str(a);
        agents.push('\n');
    }
    std::fs::write(config_dir.join("agents.toml"), agents).expect("write agents.toml");
    let tone = repo_root().join("sip-config/prompts/tone.wav");
    std::fs::copy(&tone, config_dir.join("prompts/tone.wav")).expect("copy the tone prompt");
}

/// Sends one datagram from a fresh socket and returns the first reply (if any) within `wait`.
pub fn exchange(server: &Server, text: &[u8], wait: Duration) -> Option<String> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(wait)).ok();
    sock.send_to(text, server.sip).expect("send");
    let mut buf = [0u8; 65_536];
    let mut replies = String::new();
    // Collect replies until quiet (100 Trying may precede the final response).
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        replies.push_str(&String::from_utf8_lossy(&buf[..n]));
        replies.push_str("\n---\n");
        sock.set_read_timeout(Some(Duration::from_millis(300))).ok();
    }
    (!replies.is_empty()).then_some(replies)
}

/// A minimal INVITE from 127.0.0.1:9 to `user` at the server, with an optional SDP body.
pub fn invite(server: &Server, user: &str, call_id: &str, sdp: &str) -> String {
    let port = server.sip.port();
    format!(
        "INVITE sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:tester@127.0.0.1:9>;tag=t{call_id}\r\n\
To: <sip:{user}@127.0.0.1:{port}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:tester@127.0.0.1:9>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}
