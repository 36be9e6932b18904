//! baresip 1.0.0 as a test softphone (driver of a test peer).
//!
//! Each instance gets its own config folder (`-f DIR`) with:
//! - `sip_listen 127.0.0.1:PORT` and `net_interface 127.0.0.1` (the address, not `lo`, which
//!   fails; without it the SDP carries the machine's external address and media leaves
//!   loopback). It also opens TLS on PORT + 1, so ports come in blocks.
//! - modules `stdio` (commands on a pipe to stdin), `g711`, `aufile` (microphone: plays a WAV),
//!   `sndfile` (writes what it sends and hears to `dump-*-enc.wav` / `dump-*-dec.wav` in the
//!   folder), `aubridge` as a silent speaker (device `spk`, which no source reads), `menu`.
//! - one account `<sip:USER@127.0.0.1:PORT>;regint=0`: an incoming call must be addressed to
//!   `USER` exactly, or baresip answers 404. With [`BaresipOptions::register`] the account
//!   registers with digest auth at a registrar instead:
//!   `<sip:USER@REGISTRAR>;auth_pass=PASSWORD;regint=SECS` (the AOR's host is where REGISTER
//!   goes; `auth_user` defaults to USER; baresip re-registers before `regint` runs out and
//!   unregisters on `/quit`).
//!
//! `aufile` ends the call when its WAV ends (the menu hangs up on the "end of file" audio
//! error): the microphone WAV sets the longest a call can last. Without a WAV, a 120 s file of
//! silence is used so that the phone still sends RTP.

use super::{now, poll_until};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// baresip's module folder as installed by the Debian package `baresip`.
pub const MODULE_DIR: &str = "/usr/lib/baresip/modules";

/// Errors starting or driving baresip.
#[derive(Debug, thiserror::Error)]
pub enum BaresipError {
    /// Setup (temp folder, config, silence WAV) failed.
    #[error("cannot set up baresip: {0}")]
    Setup(String),
    /// The program could not be started.
    #[error("cannot start baresip: {0}")]
    Spawn(std::io::Error),
    /// A command could not be written to its stdin.
    #[error("cannot send a command to baresip: {0}")]
    Command(std::io::Error),
    /// It did not print the expected line in time.
    #[error("baresip did not print {expected:?} within {timeout:?}; output:\n{output}")]
    Timeout {
        /// What was awaited.
        expected: String,
        /// How long.
        timeout: Duration,
        /// Its output so far.
        output: String,
    },
}

/// How a [`Baresip`] is set up.
#[derive(Debug, Clone)]
pub struct BaresipOptions {
    /// Account user (calls must be addressed to it).
    pub user: String,
    /// WAV played as the microphone (8 kHz 16-bit mono is simplest); `None`: 120 s of silence.
    pub microphone: Option<PathBuf>,
    /// Answer incoming calls by itself (`answermode=auto`).
    pub auto_answer: bool,
    /// Register at this registrar: (address, password, registration interval in seconds).
    pub register: Option<(std::net::SocketAddr, String, u32)>,
}

impl BaresipOptions {
    /// A phone for `user` playing `microphone`.
    pub fn new(user: &str, microphone: Option<&Path>) -> Self {
        Self {
            user: user.into(),
            microphone: microphone.map(Path::to_path_buf),
            auto_answer: false,
            register: None,
        }
    }

    /// Registers at `registrar` with digest auth (`password`), every `regint` seconds.
    pub fn register(
        mut self,
        registrar: std::net::SocketAddr,
        password: &str,
        regint: u32,
    ) -> Self {
        self.register = Some((registrar, password.into(), regint));
        self
    }
}

/// A running baresip. Dropping it kills the process (by PID).
pub struct Baresip {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// SIP port (UDP/TCP; TLS is on the next port).
    pub sip_port: u16,
    /// Account user.
    pub user: String,
    /// Its config folder (also where recordings go).
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Baresip {
    /// Starts a phone for `user` that plays `microphone` (or silence); waits until it is ready.
    pub fn start(user: &str, microphone: Option<&Path>) -> Result<Baresip, BaresipError> {
        Self::start_with(BaresipOptions::new(user, microphone))
    }

    /// Starts a phone with full options; waits until it prints "baresip is ready".
    pub fn start_with(o: BaresipOptions) -> Result<Baresip, BaresipError> {
        let tmp = tempfile::Builder::new()
            .prefix("baresip-")
            .tempdir()
            .map_err(|e| BaresipError::Setup(e.to_string()))?;
        let dir = tmp.path().to_path_buf();
        let mic = match &o.microphone {
            Some(p) => p.clone(),
            None => {
                let p = dir.join("silence.wav");
                super::audio::make_silence(&p, 120.0)
                    .map_err(|e| BaresipError::Setup(e.to_string()))?;
                p
            }
        };
        let sip_port = super::free_port_block(2);
        let rtp = super::free_port_block(8);
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             net_interface 127.0.0.1\n\
             call_local_timeout 120\n\
             call_max_calls 4\n\
             audio_player aubridge,spk\n\
             audio_source aufile,{mic}\n\
             audio_alert aubridge,alert\n\
             audio_level no\n\
             ausrc_format s16\n\
             auplay_format s16\n\
             auenc_format s16\n\
             audec_format s16\n\
             audio_buffer 20-160\n\
             rtp_ports {}-{}\n\
             jitter_buffer_delay 1-10\n\
             module_path {MODULE_DIR}\n\
             module stdio.so\n\
             module g711.so\n\
             module sndfile.so\n\
             module aubridge.so\n\
             module aufile.so\n\
             module_tmp account.so\n\
             module_app menu.so\n\
             snd_path {}\n",
            rtp,
            rtp + 7,
            dir.display(),
            mic = mic.display(),
        );
        std::fs::write(dir.join("config"), config)
            .map_err(|e| BaresipError::Setup(e.to_string()))?;
        let answer = if o.auto_answer {
            ";answermode=auto"
        } else {
            ""
        };
        let account = match &o.register {
            None => format!(
                "<sip:{}@127.0.0.1:{sip_port}>;regint=0;audio_codecs=PCMU,PCMA{answer}\n",
                o.user
            ),
            Some((registrar, password, regint)) => format!(
                "<sip:{}@{registrar}>;auth_pass={password};regint={regint};audio_codecs=PCMU,PCMA{answer}\n",
                o.user
            ),
        };
        std::fs::write(dir.join("accounts"), account)
            .map_err(|e| BaresipError::Setup(e.to_string()))?;
        std::fs::write(dir.join("contacts"), "").map_err(|e| BaresipError::Setup(e.to_string()))?;
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(BaresipError::Spawn)?;
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let reader = {
            let output = output.clone();
            std::thread::spawn(move || {
                // stdout carries the log; stderr is folded in by a second, short-lived thread.
                let err_out = output.clone();
                let err_thread = stderr.map(|e| {
                    std::thread::spawn(move || {
                        for line in BufReader::new(e).lines().map_while(Result::ok) {
                            let mut o = err_out.lock().unwrap_or_else(|p| p.into_inner());
                            o.push_str(&line);
                            o.push('\n');
                        }
                    })
                });
                if let Some(out) = stdout {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        let mut o = output.lock().unwrap_or_else(|p| p.into_inner());
                        o.push_str(&line);
                        o.push('\n');
                    }
                }
                if let Some(t) = err_thread {
                    let _ = t.join();
                }
            })
        };
        let stdin = child.stdin.take();
        let b = Baresip {
            child: Some(child),
            stdin,
            output,
            reader: Some(reader),
            sip_port,
            user: o.user,
            dir,
            _tmp: tmp,
        };
        b.wait_for("baresip is ready", 1, Duration::from_secs(15))?;
        Ok(b)
    }

    /// `sip:USER@127.0.0.1:PORT`, the URI that reaches this phone.
    pub fn uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    /// Sends one command line (e.g. `/dial sip:...`).
    pub fn command(&mut self, line: &str) -> Result<(), BaresipError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| BaresipError::Command(std::io::Error::other("stdin closed")))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(BaresipError::Command)
    }

    /// Dials a SIP URI.
    pub fn dial(&mut self, uri: &str) -> Result<(), BaresipError> {
        self.command(&format!("/dial {uri}"))
    }

    /// Answers the ringing call.
    pub fn answer(&mut self) -> Result<(), BaresipError> {
        self.command("/accept")
    }

    /// Hangs up the current call.
    pub fn hangup(&mut self) -> Result<(), BaresipError> {
        self.command("/hangup")
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many times `needle` occurs in its output.
    pub fn count(&self, needle: &str) -> usize {
        self.output().matches(needle).count()
    }

    /// Waits until `needle` has occurred at least `n` times.
    pub fn wait_for(&self, needle: &str, n: usize, timeout: Duration) -> Result<(), BaresipError> {
        poll_until(timeout, Duration::from_millis(20), || {
            (self.count(needle) >= n).then_some(())
        })
        .ok_or_else(|| BaresipError::Timeout {
            expected: format!("{needle} (x{n})"),
            timeout,
            output: self.output(),
        })
    }

    /// Waits for the `n`-th incoming call ("Incoming call from").
    pub fn wait_incoming(&self, n: usize, timeout: Duration) -> Result<(), BaresipError> {
        self.wait_for("Incoming call from", n, timeout)
    }

    /// Waits for the `n`-th established call ("Call established").
    pub fn wait_established(&self, n: usize, timeout: Duration) -> Result<(), BaresipError> {
        self.wait_for("Call established", n, timeout)
    }

    /// Waits for the `n`-th ended call (" terminated (duration", printed for every call end).
    pub fn wait_closed(&self, n: usize, timeout: Duration) -> Result<(), BaresipError> {
        self.wait_for(" terminated (duration", n, timeout)
    }

    /// Recordings of what it heard (`dump-*-dec.wav`), oldest first.
    pub fn heard_recordings(&self) -> Vec<PathBuf> {
        self.recordings("-dec.wav")
    }

    /// Recordings of what it sent (`dump-*-enc.wav`), oldest first.
    pub fn sent_recordings(&self) -> Vec<PathBuf> {
        self.recordings("-enc.wav")
    }

    fn recordings(&self, suffix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .map(|n| n.to_string_lossy())
                            .is_some_and(|n| n.starts_with("dump-") && n.ends_with(suffix))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The latest recording of what it heard (the WAV header is complete once the call ended).
    pub fn heard_wav(&self) -> Option<PathBuf> {
        self.heard_recordings().pop()
    }

    /// Sends `/quit` and waits up to `grace` for it to exit, then kills it. Returns its output.
    /// The folder (and recordings) stay until the handle is dropped.
    pub fn quit(&mut self, grace: Duration) -> String {
        self.shutdown(grace);
        self.output()
    }

    fn shutdown(&mut self, grace: Duration) {
        let _ = self.command("/quit");
        self.stdin.take();
        if let Some(mut c) = self.child.take() {
            let deadline = now() + grace;
            while now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
