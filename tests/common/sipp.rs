//! SIPp as a bounded child process (driver of a test peer).
//!
//! [`Sipp`] builds a command line (scenario file or built-in, `-s`, `-r`, `-l`, `-m`, `-d`,
//! `-key`, `-set`, `-au/-ap`, `-rtp_echo`, `-buff_size`), always on 127.0.0.1 with a SIP port
//! (`-p`) and a media port (`-mp`) from [`super::free_port_block`], and always with
//! `-timeout` and a hard kill by PID when a deadline passes or the handle is dropped: SIPp's own
//! `-timeout` only starts a soft exit that waits for calls in progress, and a call stuck in a
//! scenario keeps SIPp running (seen with 3.6.1). It runs in a temp folder with `-trace_stat`,
//! `-trace_err`, `-trace_screen` and `-trace_logs` pointed at known files, and returns a
//! [`SippReport`]: exit code, call counters from the stat CSV, the final screen, an excerpt of
//! the error log and the `<log>` lines.
//!
//! # Telling that RTP came back to SIPp (what works with SIPp 3.6.1)
//!
//! SIPp 3.6.1 keeps no usable cumulative count of RTP it *receives*: the stat CSV has no RTP
//! column, the screen prints only per-period rates (and prints nothing for them in the final
//! dump, where the period is 0 ms), and the `rtp_stream` "RTP IN" rate stayed 0 even while
//! echoed packets arrived. What works is the kernel's view of SIPp's media socket:
//!
//! - A SIPp caller that plays a pcap (`uac_echo.xml`, built-in `uac_pcap`) sends from its `-mp`
//!   port (the packets carry that source port, so an echo comes back to it) and binds a UDP socket
//!   on `-mp` (and `-mp + 2`) that it never reads. Everything sent back to it (an echo) queues
//!   on that socket: `/proc/net/udp` shows the queued bytes (`rx_queue`) and, once the buffer is
//!   full, the packets dropped (`drops`). [`MediaSocketStats`] samples this every 50 ms while
//!   SIPp runs (the socket vanishes when it exits) and estimates packets as
//!   `drops + rx_queue / truesize`, with the per-packet `truesize` measured on a socket of
//!   ours ([`udp_truesize`]). The same holds for a SIPp far end (`uas_answer.xml`): RTP sent
//!   to it queues on its `-mp` socket, proving the server sent media there.
//! - A SIPp far end started with `-rtp_echo` is the reference echo (it echoes whatever reaches
//!   `-mp` to its sender); the count of echoed packets is printed only on a mid-run screen
//!   dump (SIGUSR2, [`SippProcess::dump_screens`]) as "N Total echo RTP pckts 1st stream",
//!   parsed into [`SippReport::echo_packets`].
//!
//! # Scenarios in `tests/sipp/`
//!
//! | file | role | notes |
//! |---|---|---|
//! | `uas_answer.xml` | far end | 100, 180, 200 (PCMA, PCMU, telephone-event), plays `g711a.pcap` after the ACK, takes re-INVITEs, ends on BYE |
//! | `uas_hangup.xml` | far end | answers, sends BYE itself after `-key hangup_ms N` |
//! | `uas_noanswer.xml` | far end | 100, 180, never answers; CANCEL gets 200 and the INVITE 487, takes the ACK |
//! | `uas_busy.xml`, `uas_503.xml` | far end | 486 / 503 (Retry-After), takes the ACK |
//! | `uas_auth_401.xml`, `uas_auth_407.xml` | far end | challenges the first INVITE; 200 only for valid credentials (`credentials(user, password)`), else 403 and a failed call |
//! | `uas_load.xml` | far end | for load: absorbs INVITE retransmissions, ACK optional; add `rtp_echo()` to echo RTP |
//! | `uac_load.xml` | caller | for load: `-d` call length, late 1xx with `continue_on_unexpected()` |
//! | `uac_echo.xml` | caller | `uac_load.xml` plus `g711a.pcap` from `-mp`; echo shows in [`SippReport::media`] |
//! | `uas_late1xx.xml`, `uac_inv_retrans.xml`, `uac_wait_bye.xml`, `uac_cancel.xml`, `uac_reject.xml`, `uac_auth.xml`, `uac_reinvite.xml` | test aids | the other side of each far end, for `tests/peers_selftest.rs` |
//!
//! Behaviour of SIPp 3.6.1 these scenarios work around:
//! - Optional receives before a `<pause>` are refused at load time, so a message arriving
//!   during a pause is "unexpected" and aborts the call unless `-default_behaviors
//!   all,-abortunexp`. A far end cannot take a caller's BYE during its own pause either.
//! - The built-in `uas` aborts a call on an INVITE retransmitted after its 200 ("while
//!   expecting 'ACK'"), and the built-in `uac` aborts on a 180 arriving after the 200.
//! - Jumping back (`next=`) to a `<send>` races with the next incoming message ("unexpected
//!   while sending"); our far ends absorb retransmitted INVITEs with an optional `<recv>` and
//!   let the 200's own retransmission answer them.
//! - `verifyauth` reads only `Authorization`, never `Proxy-Authorization`, and only MD5.
//! - `-key name value` substitutes `[name]` in messages and in `verifyauth` attributes, not in
//!   `<pause>`; `uas_hangup.xml` converts it with `assignstr` + `todouble`.
//! - `-timeout` starts a soft exit that waits for calls in progress: a stuck call keeps SIPp
//!   running (and spinning) past it, hence the hard kill.
//! - SIPp binds a UDP control socket on 0.0.0.0:8888 (the next free port when taken).
//!
//! The pcap shipped with Debian's sip-tester (`g711a.pcap`) holds 236 RTP packets of A-law
//! (payload type 8) over 7.05 s: 240-byte payloads, i.e. 30 ms packets, not 20 ms. An echo
//! that re-frames into 20 ms frames sends back 354 packets of 160 bytes for it; count bytes
//! or use `scripts/load/lib.sh` `make_pcap` (20 ms, any length) when packet counts matter.

use super::{now, poll_until, signal, tail_of_file, wait_timeout};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Folder of SIPp's pcaps on Debian (package `sip-tester`).
pub const PCAP_DIR: &str = "/usr/share/sip-tester";

/// A scenario: one of ours in `tests/sipp/`, any file, or one built into SIPp.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// A scenario file (`-sf`).
    File(PathBuf),
    /// A built-in scenario (`-sn`): `uac`, `uas`, `uac_pcap`, ...
    BuiltIn(String),
}

impl Scenario {
    /// `tests/sipp/{name}.xml`.
    pub fn ours(name: &str) -> Scenario {
        Scenario::File(super::tests_path(&format!("sipp/{name}.xml")))
    }

    /// A built-in scenario. The built-in `uac_pcap` plays `pcap/g711a.pcap` relative to the
    /// working folder: the harness links `pcap` there to the package's pcap folder.
    pub fn built_in(name: &str) -> Scenario {
        Scenario::BuiltIn(name.into())
    }

    fn name(&self) -> String {
        match self {
            Scenario::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "scenario".into()),
            Scenario::BuiltIn(n) => n.clone(),
        }
    }
}

/// Ways running SIPp can fail before it reports anything.
#[derive(Debug, thiserror::Error)]
pub enum SippError {
    /// The program could not be started.
    #[error("cannot start sipp: {0}")]
    Spawn(std::io::Error),
    /// A temp folder could not be made.
    #[error("cannot make a temp folder for sipp: {0}")]
    TempDir(std::io::Error),
}

/// Builder for one SIPp run. Defaults: `-i 127.0.0.1`, free `-p` and `-mp`, `-m 1`,
/// `-timeout 20s` and a hard kill 10 s after that.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: Scenario,
    remote: Option<SocketAddr>,
    sip_port: u16,
    media_port: u16,
    args: Vec<String>,
    calls: Option<u64>,
    timeout: Duration,
    kill_grace: Duration,
    credentials: Option<(String, String)>,
    /// Local address (`-i`), 127.0.0.1 unless [`Sipp::local_ip`] says otherwise.
    local_ip: std::net::IpAddr,
    /// Whether the ports were picked here (and may be picked again if another process took
    /// one between the probe and SIPp's bind); false once a test names a port itself.
    ports_are_ours: bool,
}

impl Sipp {
    /// A caller (client mode) toward `remote`.
    pub fn uac(scenario: Scenario, remote: SocketAddr) -> Sipp {
        Self::new(scenario, Some(remote))
    }

    /// A far end (server mode).
    pub fn uas(scenario: Scenario) -> Sipp {
        Self::new(scenario, None)
    }

    fn new(scenario: Scenario, remote: Option<SocketAddr>) -> Sipp {
        let sip_port = super::free_port();
        // -mp and -mp + 2 are bound by SIPp (audio and video echo sockets).
        let media_port = super::free_port_block(4);
        Sipp {
            scenario,
            remote,
            sip_port,
            media_port,
            args: Vec::new(),
            calls: Some(1),
            timeout: Duration::from_secs(20),
            kill_grace: Duration::from_secs(10),
            credentials: None,
            ports_are_ours: true,
            local_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        }
    }

    /// Local address (`-i`), e.g. `127.0.0.2` to come from a source the server does not know
    /// (any 127/8 address reaches a server on 127.0.0.1).
    pub fn local_ip(mut self, ip: std::net::IpAddr) -> Self {
        self.local_ip = ip;
        self
    }

    /// Local SIP port (`-p`); by default a free one.
    pub fn sip_port(mut self, port: u16) -> Self {
        self.sip_port = port;
        self.ports_are_ours = false;
        self
    }

    /// Local media port (`-mp`; SIPp also binds `port + 2`); by default a free one.
    pub fn media_port(mut self, port: u16) -> Self {
        self.media_port = port;
        self.ports_are_ours = false;
        self
    }

    /// Called user (`-s`), the Request-URI user of `[service]`.
    pub fn service(self, service: &str) -> Self {
        self.arg("-s").arg(service)
    }

    /// Stop after this many calls (`-m`); `None` runs until stopped or `-timeout`.
    pub fn calls(mut self, n: Option<u64>) -> Self {
        self.calls = n;
        self
    }

    /// Call rate in calls per second (`-r`).
    pub fn rate(self, cps: f64) -> Self {
        self.arg("-r").arg(&format!("{cps}"))
    }

    /// Most simultaneous calls (`-l`).
    pub fn limit(self, n: u64) -> Self {
        self.arg("-l").arg(&n.to_string())
    }

    /// Length of `<pause/>` without a value, i.e. the call length of our callers (`-d`).
    pub fn pause(self, d: Duration) -> Self {
        self.arg("-d").arg(&d.as_millis().to_string())
    }

    /// A `[keyword]` substitution (`-key name value`).
    pub fn key(self, name: &str, value: &str) -> Self {
        self.arg("-key").arg(name).arg(value)
    }

    /// A global variable (`-set name value`).
    pub fn set(self, name: &str, value: &str) -> Self {
        self.arg("-set").arg(name).arg(value)
    }

    /// Credentials. For a caller: `-au`/`-ap` (used by `[authentication]`). For the far ends
    /// `uas_auth_401.xml`/`uas_auth_407.xml`: `-key user/password`, and every credential the
    /// scenario logs is checked again with [`verify_digest`] into [`SippReport::auth_failures`].
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some((user.into(), password.into()));
        if self.remote.is_some() {
            self.arg("-au").arg(user).arg("-ap").arg(password)
        } else {
            self.key("user", user).key("password", password)
        }
    }

    /// Echo RTP received on `-mp` back to its sender (`-rtp_echo`).
    pub fn rtp_echo(self) -> Self {
        self.arg("-rtp_echo")
    }

    /// Socket send/receive buffers in bytes (`-buff_size`), for high call rates.
    pub fn buff_size(self, bytes: u64) -> Self {
        self.arg("-buff_size").arg(&bytes.to_string())
    }

    /// Log unexpected messages and go on instead of aborting the call
    /// (`-default_behaviors all,-abortunexp`): the only way in SIPp 3.6.1 to take a 180/183
    /// that arrives during a `<pause>` (optional receives before a pause are refused).
    pub fn continue_on_unexpected(self) -> Self {
        self.arg("-default_behaviors").arg("all,-abortunexp")
    }

    /// SIPp's global timeout (`-timeout`); the hard kill comes `kill_grace` later.
    pub fn timeout(mut self, t: Duration, kill_grace: Duration) -> Self {
        self.timeout = t;
        self.kill_grace = kill_grace;
        self
    }

    /// Any other argument, as is.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    /// The SIP address this SIPp listens on.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.local_ip, self.sip_port)
    }

    /// The media port (`-mp`).
    pub fn media_port_number(&self) -> u16 {
        self.media_port
    }

    /// The full command line (for messages and scripts).
    pub fn command_line(&self, dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        match &self.scenario {
            Scenario::File(p) => {
                v.push("-sf".into());
                v.push(p.display().to_string());
            }
            Scenario::BuiltIn(n) => {
                v.push("-sn".into());
                v.push(n.clone());
            }
        }
        for a in [
            "-i",
            &self.local_ip.to_string(),
            "-p",
            &self.sip_port.to_string(),
            "-mp",
            &self.media_port.to_string(),
            "-nostdin",
            "-timeout",
            &format!("{}s", self.timeout.as_secs().max(1)),
            "-trace_stat",
            "-stf",
            &dir.join("stat.csv").display().to_string(),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            &dir.join("errors.log").display().to_string(),
            "-trace_screen",
            "-screen_file",
            &dir.join("screen.log").display().to_string(),
            "-screen_overwrite",
            "false",
            "-trace_logs",
            "-log_file",
            &dir.join("logs.log").display().to_string(),
        ] {
            v.push(a.to_string());
        }
        if let Some(m) = self.calls {
            v.push("-m".into());
            v.push(m.to_string());
        }
        v.extend(self.args.iter().cloned());
        if let Some(r) = self.remote {
            v.push(r.to_string());
        }
        v
    }

    /// Starts SIPp in the background.
    ///
    /// The free ports are probed before SIPp starts, so another process may bind one in
    /// between; SIPp then exits at once ("cannot bind"), or the port we wait on belongs to
    /// someone else and calls sent there go unanswered. So this waits until the SIP port's
    /// socket belongs to the SIPp it started (its `/proc/<pid>/fd`), and when ports were
    /// picked here and SIPp did not get them, starts it again on new ones (at most 4 times).
    pub fn start(mut self) -> Result<SippProcess, SippError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut started = self.clone().start_once()?;
            let pid = started.pid().unwrap_or(0);
            let sip_port = self.sip_port;
            let holds = poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
                if pid_holds_udp_port(pid, sip_port) {
                    return Some(true);
                }
                (!started.is_running()).then_some(false)
            });
            if holds == Some(true) || !self.ports_are_ours || tries >= 4 {
                return Ok(started);
            }
            drop(started);
            self.sip_port = super::free_port();
            self.media_port = super::free_port_block(4);
        }
    }

    fn start_once(self) -> Result<SippProcess, SippError> {
        let dir = tempfile::Builder::new()
            .prefix("sipp-")
            .tempdir()
            .map_err(SippError::TempDir)?;
        let args = self.command_line(dir.path());
        // The built-in uac_pcap plays "pcap/g711a.pcap" relative to the working folder.
        if Path::new(PCAP_DIR).is_dir() {
            let _ = std::os::unix::fs::symlink(PCAP_DIR, dir.path().join("pcap"));
        }
        let out = std::fs::File::create(dir.path().join("stdout.log")).map_err(SippError::Spawn)?;
        let err = std::fs::File::create(dir.path().join("stderr.log")).map_err(SippError::Spawn)?;
        let child = Command::new("sipp")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(SippError::Spawn)?;
        let stop = Arc::new(AtomicBool::new(false));
        let media = Arc::new(Mutex::new(MediaSocketStats::default()));
        let sampler = {
            let stop = stop.clone();
            let media = media.clone();
            let port = self.media_port;
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(s) = read_proc_udp(port) {
                        let mut m = media.lock().unwrap_or_else(|e| e.into_inner());
                        m.rx_queue_bytes = m.rx_queue_bytes.max(s.0);
                        m.drops = m.drops.max(s.1);
                        m.samples += 1;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Ok(SippProcess {
            child: Some(child),
            deadline: now() + self.timeout + self.kill_grace,
            config: self,
            args,
            dir,
            stop,
            media,
            sampler: Some(sampler),
            echo_packets: None,
        })
    }

    /// Runs SIPp to its end (bounded) and returns its report.
    pub fn run(self) -> Result<SippReport, SippError> {
        Ok(self.start()?.wait())
    }
}

/// A far end of ours on a given SIP port: `start_uas("uas_answer", port)`.
pub fn start_uas(scenario: &str, port: u16) -> Result<SippUas, SippError> {
    Sipp::uas(Scenario::ours(scenario)).sip_port(port).start()
}

/// A SIPp far end running in the background.
pub type SippUas = SippProcess;

/// A running SIPp. Dropping it kills the process (SIGKILL by PID).
pub struct SippProcess {
    child: Option<Child>,
    deadline: std::time::Instant,
    config: Sipp,
    args: Vec<String>,
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    media: Arc<Mutex<MediaSocketStats>>,
    sampler: Option<std::thread::JoinHandle<()>>,
    echo_packets: Option<u64>,
}

impl SippProcess {
    /// The SIP address it listens on (give this to the server as a trunk).
    pub fn sip_addr(&self) -> SocketAddr {
        self.config.sip_addr()
    }

    /// Its media port (`-mp`).
    pub fn media_port(&self) -> u16 {
        self.config.media_port
    }

    /// Its PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether SIPp is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Media socket counters sampled so far.
    pub fn media_stats(&self) -> MediaSocketStats {
        *self.media.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the media socket has queued at least `bytes` (or dropped a packet).
    pub fn wait_media(&self, bytes: u64, timeout: Duration) -> bool {
        poll_until(timeout, Duration::from_millis(50), || {
            let m = self.media_stats();
            (m.rx_queue_bytes >= bytes || m.drops > 0).then_some(())
        })
        .is_some()
    }

    /// SIGUSR2: SIPp appends its screens to the screen file now; the echo counter of
    /// `-rtp_echo` ("Total echo RTP pckts 1st stream") is read from it.
    pub fn dump_screens(&mut self) -> Option<u64> {
        let pid = self.pid()?;
        let path = self.dir.path().join("screen.log");
        let before = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        signal(pid, "USR2");
        poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            (len > before).then_some(())
        });
        std::thread::sleep(Duration::from_millis(50));
        let n = parse_echo_packets(&std::fs::read_to_string(&path).unwrap_or_default());
        if n.is_some() {
            self.echo_packets = n;
        }
        n
    }

    /// Waits for SIPp to end by itself (its `-m` calls done, or its `-timeout`), killing it at
    /// the hard deadline, and returns the report.
    pub fn wait(mut self) -> SippReport {
        let left = self.deadline.saturating_duration_since(now());
        self.finish(left)
    }

    /// Asks SIPp to stop (SIGUSR1: no new calls, calls in progress end), waits up to `grace`,
    /// then kills it; returns the report.
    pub fn stop(mut self, grace: Duration) -> SippReport {
        if let Some(pid) = self.pid() {
            signal(pid, "USR1");
        }
        self.finish(grace)
    }

    fn finish(&mut self, wait: Duration) -> SippReport {
        let mut killed = false;
        let mut exit_code = None;
        if let Some(mut c) = self.child.take() {
            match wait_timeout(&mut c, wait) {
                Some(st) => exit_code = st.code(),
                None => {
                    killed = true;
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.sampler.take() {
            let _ = h.join();
        }
        let dir = self.dir.path();
        let stat = std::fs::read_to_string(dir.join("stat.csv")).unwrap_or_default();
        let counters = parse_stat_csv(&stat);
        let get = |k: &str| counters.get(k).copied().unwrap_or(0);
        let screen = std::fs::read_to_string(dir.join("screen.log")).unwrap_or_default();
        let errors = tail_of_file(&dir.join("errors.log"), 4000);
        let errors = if errors.starts_with("(cannot read") {
            String::new()
        } else {
            errors
        };
        let logs: Vec<String> = std::fs::read_to_string(dir.join("logs.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let mut auth_checked = 0;
        let mut auth_failures = Vec::new();
        if let Some((user, password)) = &self.config.credentials
            && self.config.remote.is_none()
        {
            for l in &logs {
                if let Some(h) = l.strip_prefix("credentials INVITE") {
                    auth_checked += 1;
                    if let Err(e) = verify_digest(h.trim(), "INVITE", user, password) {
                        auth_failures.push(format!("{e}: {}", h.trim()));
                    }
                }
            }
        }
        let echo_packets = parse_echo_packets(&screen).or(self.echo_packets);
        SippReport {
            command: format!("sipp {}", self.args.join(" ")),
            exit_code,
            killed,
            successful: get("SuccessfulCall(C)"),
            failed: get("FailedCall(C)"),
            created: get("TotalCallCreated"),
            retransmissions: get("Retransmissions(C)"),
            unexpected: get("FailedUnexpectedMessage(C)"),
            max_udp_retrans: get("FailedMaxUDPRetrans(C)"),
            timeout_on_recv: get("FailedTimeoutOnRecv(C)"),
            media: *self.media.lock().unwrap_or_else(|e| e.into_inner()),
            echo_packets,
            errors,
            screen: tail(&screen, 6000),
            stdout: tail_of_file(&dir.join("stdout.log"), 3000),
            stderr: tail_of_file(&dir.join("stderr.log"), 3000),
            logs,
            auth_checked,
            auth_failures,
        }
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Queue and drop counters of a UDP socket we do not read (SIPp's `-mp` socket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaSocketStats {
    /// Largest `rx_queue` seen (bytes of kernel buffer used by unread datagrams).
    pub rx_queue_bytes: u64,
    /// Datagrams dropped because the buffer was full.
    pub drops: u64,
    /// How many times the socket was seen in `/proc/net/udp`.
    pub samples: u64,
}

impl MediaSocketStats {
    /// Whether anything at all arrived on the socket.
    pub fn received_any(&self) -> bool {
        self.rx_queue_bytes > 0 || self.drops > 0
    }

    /// Estimated datagrams received: `drops + rx_queue / truesize` (see [`udp_truesize`]).
    pub fn estimated_packets(&self, truesize: u64) -> u64 {
        self.drops + self.rx_queue_bytes / truesize.max(1)
    }
}

/// Kernel memory charged per queued datagram of `payload_len` bytes on loopback: sends 4 to a
/// socket of ours and reads its `rx_queue` from `/proc/net/udp`.
pub fn udp_truesize(payload_len: usize) -> u64 {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = rx.local_addr().expect("addr").port();
    let buf = vec![0x80u8; payload_len];
    for _ in 0..4 {
        tx.send_to(&buf, rx.local_addr().expect("addr"))
            .expect("send");
    }
    let q = poll_until(Duration::from_secs(2), Duration::from_millis(5), || {
        read_proc_udp(port).filter(|(q, _)| *q > 0)
    })
    .map(|(q, _)| q)
    .unwrap_or(0);
    (q / 4).max(1)
}

/// Whether process `pid` holds a UDP socket bound to `port` on an IPv4 address (the socket's
/// inode from `/proc/net/udp` among the links of `/proc/<pid>/fd`).
pub fn pid_holds_udp_port(pid: u32, port: u16) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/net/udp") else {
        return false;
    };
    let want = format!(":{port:04X}");
    let inodes: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 9 && f[1].ends_with(&want)).then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .map(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str()))
            .unwrap_or(false)
    })
}

/// `(rx_queue bytes, drops)` of the socket bound to 127.0.0.1:`port`, from `/proc/net/udp`.
pub fn read_proc_udp(port: u16) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/udp").ok()?;
    let want = format!("0100007F:{port:04X}");
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 13 || f[1] != want {
            continue;
        }
        let rx = f[4]
            .split_once(':')
            .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())?;
        let drops = f[f.len() - 1].parse().ok()?;
        return Some((rx, drops));
    }
    None
}

/// What a SIPp run reported.
#[derive(Debug, Clone)]
pub struct SippReport {
    /// The command line.
    pub command: String,
    /// Exit code: 0 all calls successful, 1 at least one failed, 97 stopped by command or
    /// timeout, 99 no call processed, 255 fatal (e.g. cannot bind); `None` if killed.
    pub exit_code: Option<i32>,
    /// Killed at the hard deadline (or stopped by us and not exiting in time).
    pub killed: bool,
    /// `SuccessfulCall(C)` of the stat CSV.
    pub successful: u64,
    /// `FailedCall(C)`.
    pub failed: u64,
    /// `TotalCallCreated`.
    pub created: u64,
    /// `Retransmissions(C)`.
    pub retransmissions: u64,
    /// `FailedUnexpectedMessage(C)`.
    pub unexpected: u64,
    /// `FailedMaxUDPRetrans(C)`.
    pub max_udp_retrans: u64,
    /// `FailedTimeoutOnRecv(C)`.
    pub timeout_on_recv: u64,
    /// The `-mp` socket as the kernel saw it (RTP that reached this SIPp).
    pub media: MediaSocketStats,
    /// Packets echoed by `-rtp_echo`, if a screen dump showed the counter.
    pub echo_packets: Option<u64>,
    /// Tail of the error log (unexpected messages, aborted calls).
    pub errors: String,
    /// Tail of the screen dumps (final screens on a clean exit).
    pub screen: String,
    /// Tail of stdout.
    pub stdout: String,
    /// Tail of stderr.
    pub stderr: String,
    /// Lines of `<log>` actions.
    pub logs: Vec<String>,
    /// Credentials checked with [`verify_digest`] (far ends given `credentials`).
    pub auth_checked: usize,
    /// Credentials that failed the check.
    pub auth_failures: Vec<String>,
}

impl SippReport {
    /// Panics with the whole story unless exactly `calls` calls succeeded, none failed and
    /// every logged credential was valid.
    pub fn assert_success(&self, calls: u64) {
        assert!(
            self.is_success(calls),
            "expected {calls} successful calls and none failed\n{}",
            self.describe()
        );
    }

    /// Exactly `calls` calls succeeded, none failed, every logged credential was valid and
    /// SIPp was not killed.
    pub fn is_success(&self, calls: u64) -> bool {
        self.successful == calls
            && self.failed == 0
            && self.auth_failures.is_empty()
            && !self.killed
    }

    /// A multi-line account for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{}\nexit={:?} killed={} successful={} failed={} created={} retrans={} unexpected={} \
             media={:?} echo={:?} auth_checked={} auth_failures={:?}\n--- errors ---\n{}\n--- stderr ---\n{}\n--- screen ---\n{}",
            self.command,
            self.exit_code,
            self.killed,
            self.successful,
            self.failed,
            self.created,
            self.retransmissions,
            self.unexpected,
            self.media,
            self.echo_packets,
            self.auth_checked,
            self.auth_failures,
            self.errors,
            self.stderr,
            self.screen
        )
    }
}

fn tail(s: &str, max: usize) -> String {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// Last row of a SIPp `-trace_stat` CSV (`;`-separated) as counters by column name; columns
/// that are not plain integers (times, dates) are left out.
pub fn parse_stat_csv(text: &str) -> HashMap<String, u64> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let Some(last) = lines.next_back() else {
        return HashMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .filter_map(|(k, v)| {
            v.trim()
                .parse::<u64>()
                .ok()
                .map(|v| (k.trim().to_string(), v))
        })
        .collect()
}

/// The largest "N Total echo RTP pckts 1st stream" in screen dumps.
pub fn parse_echo_packets(screen: &str) -> Option<u64> {
    screen
        .lines()
        .filter(|l| l.contains("Total echo RTP pckts 1st stream"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .max()
}

/// Checks an RFC 2617/7616 digest credential (the value of an `Authorization` or
/// `Proxy-Authorization` header, `Digest ...`) for `method`, `username` and `password`:
/// MD5 or SHA-256, with or without `qop=auth`.
pub fn verify_digest(
    header: &str,
    method: &str,
    username: &str,
    password: &str,
) -> Result<(), String> {
    use md5::Digest as _;
    let rest = header
        .trim()
        .strip_prefix("Digest")
        .ok_or_else(|| "not a Digest credential".to_string())?;
    let params = parse_auth_params(rest);
    let p = |k: &str| params.get(k).map(String::as_str);
    let need = |k: &str| p(k).ok_or_else(|| format!("no {k} parameter"));
    if need("username")? != username {
        return Err(format!(
            "username is {:?}, expected {username:?}",
            need("username")?
        ));
    }
    let algorithm = p("algorithm").unwrap_or("MD5").to_ascii_uppercase();
    let h = |s: String| -> Result<String, String> {
        match algorithm.as_str() {
            "MD5" => Ok(hex::encode(md5::Md5::digest(s.as_bytes()))),
            "SHA-256" => Ok(hex::encode(sha2::Sha256::digest(s.as_bytes()))),
            other => Err(format!("unsupported algorithm {other}")),
        }
    };
    let ha1 = h(format!("{username}:{}:{password}", need("realm")?))?;
    let ha2 = h(format!("{method}:{}", need("uri")?))?;
    let expected = match p("qop") {
        Some(qop) => h(format!(
            "{ha1}:{}:{}:{}:{qop}:{ha2}",
            need("nonce")?,
            need("nc")?,
            need("cnonce")?
        ))?,
        None => h(format!("{ha1}:{}:{ha2}", need("nonce")?))?,
    };
    if need("response")?.eq_ignore_ascii_case(&expected) {
        Ok(())
    } else {
        Err("digest response does not match the password".into())
    }
}

fn parse_auth_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let key = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.insert(key, value);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}
