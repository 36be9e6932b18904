//! A minimal HTTP/1.1 client for the API (one request per connection), plus helpers to get an
//! API key from the real binary and to read calls.

use super::Server;
use chrono::{DateTime, Utc};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON (panics with the body on failure: tests want to see it).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request; `key` adds `Authorization: Bearer`, `body` is sent as JSON.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    extra_headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to API");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(k) = key {
        req.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    for (n, v) in extra_headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// An attempt as a campaign's export (`GET /v1/campaigns/{id}/attempts.csv`) shows it.
#[derive(Debug, Clone)]
pub struct ExportedAttempt {
    /// `attempt_id`.
    pub id: String,
    /// `contact_id`.
    pub contact: String,
    /// `attempt_no`.
    pub no: u32,
    /// `phone`.
    pub phone: String,
    /// `call_id` (empty before the call).
    pub call_id: String,
    /// `node`.
    pub node: String,
    /// `started_at`.
    pub started: DateTime<Utc>,
    /// `ended_at`.
    pub ended: Option<DateTime<Utc>>,
    /// `outcome` (empty while in flight).
    pub outcome: String,
    /// `session_id` (empty outside agent sessions).
    pub session: String,
    /// `disposition`.
    pub disposition: String,
}

impl Server {
    /// The rows of a campaign's `attempts.csv` (header left out), each split into its fields.
    pub fn attempt_fields(&self, key: &str, campaign: &str) -> Vec<Vec<String>> {
        let r = request(
            self.http,
            "GET",
            &format!("/v1/campaigns/{campaign}/attempts.csv"),
            Some(key),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "attempts.csv: {}", r.body);
        r.body
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    }

    /// A campaign's attempts from its `attempts.csv`, in start order.
    pub fn attempts(&self, key: &str, campaign: &str) -> Vec<ExportedAttempt> {
        let ts = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("time {s:?}: {e}"))
                .with_timezone(&Utc)
        };
        self.attempt_fields(key, campaign)
            .into_iter()
            .map(|f| {
                assert!(f.len() >= 13, "attempt row {f:?}");
                ExportedAttempt {
                    id: f[0].clone(),
                    contact: f[1].clone(),
                    no: f[2].parse().expect("attempt_no"),
                    phone: f[3].clone(),
                    call_id: f[4].clone(),
                    node: f[5].clone(),
                    started: ts(&f[6]),
                    ended: (!f[7].is_empty()).then(|| ts(&f[7])),
                    outcome: f[8].clone(),
                    session: f[11].clone(),
                    disposition: f[12].clone(),
                }
            })
            .collect()
    }

    /// Downloads a recording's audio (`GET /v1/recordings/{id}/audio`, a plain body) into a
    /// file of this server's data directory.
    pub fn recording_wav(&self, key: &str, id: &str) -> std::path::PathBuf {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).expect("connect");
        write!(
            s,
            "GET /v1/recordings/{id}/audio HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\r\n"
        )
        .expect("request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read");
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("chunked"), "expected a plain body: {head}");
        let p = self.data_dir.join(format!("dl-{id}.wav"));
        std::fs::write(&p, &raw[split..]).expect("write");
        p
    }

    /// Waits (bounded) until `GET /v1/registrations` lists `n` bindings; false on time-out.
    pub fn wait_registrations(&self, key: &str, n: usize, within: Duration) -> bool {
        super::poll_until(within, Duration::from_millis(100), || {
            let r = request(self.http, "GET", "/v1/registrations", Some(key), &[], None);
            (r.json()["registrations"].as_array().map(Vec::len) == Some(n)).then_some(())
        })
        .is_some()
    }

    /// Creates an API key with the real binary on this server's data and database.
    pub fn api_key(&self) -> String {
        let out = self.command(&["apikey", "create"]);
        assert!(
            out.status.success(),
            "apikey create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// `GET /v1/calls/{id}` as JSON.
    pub fn call(&self, key: &str, id: &str) -> serde_json::Value {
        let r = request(
            self.http,
            "GET",
            &format!("/v1/calls/{id}"),
            Some(key),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "GET call {id}: {}", r.body);
        r.json()
    }

    /// Waits (bounded) until the call's `status` is `status`; panics with the server log if not.
    pub fn wait_status(&self, key: &str, id: &str, status: &str) -> serde_json::Value {
        super::poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
            let c = self.call(key, id);
            (c["status"] == status).then_some(c)
        })
        .unwrap_or_else(|| {
            panic!(
                "call {id} never reached {status}\n--- server ---\n{}",
                self.log()
            )
        })
    }

    /// Waits (bounded) until the call has its final status; returns the row.
    pub fn wait_final(&self, key: &str, id: &str) -> serde_json::Value {
        super::poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
            let c = self.call(key, id);
            c["final_status"].is_string().then_some(c)
        })
        .unwrap_or_else(|| panic!("call {id} never ended\n--- server ---\n{}", self.log()))
    }

    /// `POST /v1/calls/{id}/hangup`, expecting 202.
    pub fn hangup(&self, key: &str, id: &str) {
        let r = request(
            self.http,
            "POST",
            &format!("/v1/calls/{id}/hangup"),
            Some(key),
            &[],
            None,
        );
        assert_eq!(r.status, 202, "hangup {id}: {}", r.body);
    }

    /// Every call (pages of 500 followed to the end), newest first.
    pub fn all_calls(&self, key: &str, query: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/calls?limit=500{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let r = request(self.http, "GET", &path, Some(key), &[], None);
            assert_eq!(r.status, 200, "list calls: {}", r.body);
            let j = r.json();
            out.extend(j["calls"].as_array().cloned().unwrap_or_default());
            match j["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }
}
