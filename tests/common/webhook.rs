//! A real HTTP receiver for webhook tests (driver).
//!
//! axum on 127.0.0.1 (port 0 or a given one), on its own thread and tokio runtime so that
//! both plain `#[test]`s and `#[tokio::test]`s can use it. Every request, on any path and
//! method, is recorded in arrival order with its headers and body, and answered with the
//! status set by [`WebhookReceiver::set_status`] (200 by default). It can be stopped (the port
//! is released: deliveries fail) and restarted on the same port, keeping what it recorded.

use super::{now, poll_until};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// First value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// HMAC-SHA256 of the concatenated `parts` under `key`, lowercase hex: recompute a webhook
/// signature (e.g. over timestamp, `.`, body) to compare with the header the server sent.
pub fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("hmac takes any key length");
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    arrived: std::sync::Condvar,
}

struct Running {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A recording HTTP server. Dropping it stops the server.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    status: Arc<AtomicU16>,
    /// Body of every answer (empty by default).
    reply: Arc<Mutex<String>>,
    running: Option<Running>,
}

impl WebhookReceiver {
    /// Starts on 127.0.0.1 with a port from the OS.
    pub fn start() -> std::io::Result<WebhookReceiver> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts on a given address (port 0: any).
    pub fn start_on(addr: SocketAddr) -> std::io::Result<WebhookReceiver> {
        let mut w = WebhookReceiver {
            addr,
            shared: Arc::new(Shared::default()),
            status: Arc::new(AtomicU16::new(200)),
            reply: Arc::new(Mutex::new(String::new())),
            running: None,
        };
        w.listen()?;
        Ok(w)
    }

    fn listen(&mut self) -> std::io::Result<()> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let addr = self.addr;
        let shared = self.shared.clone();
        let status = self.status.clone();
        let reply = self.reply.clone();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match bind(addr) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let local = listener.local_addr();
                let _ = ready_tx.send(local);
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let shared = shared.clone();
                        let status = status.clone();
                        let reply = reply.clone();
                        async move {
                            let rec = RecordedRequest {
                                method: method.to_string(),
                                path: uri.to_string(),
                                headers: headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                                body: body.to_vec(),
                            };
                            shared
                                .requests
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(rec);
                            shared.arrived.notify_all();
                            let code = StatusCode::from_u16(status.load(Ordering::Relaxed))
                                .unwrap_or(StatusCode::OK);
                            let body = reply.lock().unwrap_or_else(|p| p.into_inner()).clone();
                            (
                                code,
                                [(axum::http::header::CONTENT_TYPE, "application/json")],
                                body,
                            )
                        }
                    },
                );
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stop_rx => {}
                }
            });
            // Connection tasks still open (keep-alive) are dropped here, closing their sockets.
            rt.shutdown_timeout(Duration::from_millis(500));
        });
        let local = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| std::io::Error::other(format!("webhook receiver did not start: {e}")))??;
        self.addr = local;
        self.running = Some(Running {
            shutdown: Some(stop_tx),
            thread: Some(thread),
        });
        Ok(())
    }

    /// Answers every request from now on with this body (JSON).
    pub fn set_reply(&self, body: &str) {
        *self.reply.lock().unwrap_or_else(|p| p.into_inner()) = body.to_owned();
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Status code for the following requests (e.g. 500 to make deliveries fail).
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::Relaxed);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Blocks until at least `n` requests arrived or `timeout` passed; returns them all, or
    /// those that arrived (as the error) on timeout. In an async test call it through
    /// `tokio::task::spawn_blocking`, or use [`Self::wait_for_async`].
    pub fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, Vec<RecordedRequest>> {
        let deadline = now() + timeout;
        let mut g = self
            .shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while g.len() < n {
            let left = deadline.saturating_duration_since(now());
            if left.is_zero() {
                return Err(g.clone());
            }
            g = self
                .shared
                .arrived
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(g.clone())
    }

    /// [`Self::wait_for`] for async tests: polls every 20 ms without blocking the runtime.
    pub async fn wait_for_async(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, Vec<RecordedRequest>> {
        let deadline = now() + timeout;
        loop {
            let r = self.requests();
            if r.len() >= n {
                return Ok(r);
            }
            if now() >= deadline {
                return Err(r);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops listening and closes every connection (the port is free afterwards).
    pub fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            if let Some(tx) = r.shutdown.take() {
                let _ = tx.send(());
            }
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Listens again on the same port, keeping the recorded requests. The port may be briefly
    /// unavailable: retries for up to 5 s.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let mut last = None;
        let ok = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || match self.listen() {
                Ok(()) => Some(()),
                Err(e) => {
                    last = Some(e);
                    None
                }
            },
        );
        match ok {
            Some(()) => Ok(()),
            None => Err(last.unwrap_or_else(|| std::io::Error::other("restart failed"))),
        }
    }

    /// Whether it is listening.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}
