//! The webhook outbox against a real HTTP receiver (axum on loopback), on SQLite and (with
//! `TRUNKLINE_TEST_PG`) PostgreSQL: signatures, per-call order, retries, give-up, and a receiver
//! that is down while trunkline restarts.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trunkline::clock::{Clock, SystemClock};
use trunkline::events::{Event, EventBus, OutboxConfig, kinds, run_outbox, verify_signature};
use trunkline::store::Store;
use trunkline::store::testing::test_databases;
use uuid::Uuid;

const CALL_KINDS: [&str; 4] = [
    kinds::CALL_INITIATED,
    kinds::CALL_RINGING,
    kinds::CALL_ANSWERED,
    kinds::CALL_COMPLETED,
];

/// One request the receiver answered with 2xx.
#[derive(Debug, Clone)]
struct Got {
    event_id_header: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Answer this many requests with 500 before accepting.
    fail_first: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    /// Hold this many requests (counted on arrival) for `HOLD` before answering.
    hold_first: Arc<AtomicUsize>,
    /// Requests seen, answered or not.
    arrived: Arc<AtomicUsize>,
}

const HOLD: Duration = Duration::from_millis(800);

impl Receiver {
    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.arrived.fetch_add(1, Ordering::SeqCst);
    if r.hold_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        // The sender gives up on us (shutdown) before this ends; nothing is recorded.
        tokio::time::sleep(HOLD).await;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if r.fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        r.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    r.got.lock().unwrap().push(Got {
        event_id_header: h("x-trunkline-event-id"),
        timestamp: h("x-trunkline-timestamp"),
        signature: h("x-trunkline-signature"),
        content_type: h("content-type"),
        body: body.to_vec(),
    });
    StatusCode::NO_CONTENT
}

/// Serves the receiver on `listener` until the returned sender is dropped or fired.
fn serve(listener: TcpListener, r: Receiver) -> (JoinHandle<()>, oneshot::Sender<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let app = Router::new().route("/hook", post(hook)).with_state(r);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (task, tx)
}

fn test_config() -> OutboxConfig {
    OutboxConfig {
        base_backoff: Duration::from_millis(30),
        max_backoff: Duration::from_millis(200),
        give_up_after: Duration::from_secs(3600),
        concurrency: 4,
        request_timeout: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(1),
        poll_interval: Duration::from_millis(200),
        secret: None,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A running outbox driver and the way to stop it.
struct Driver {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), trunkline::store::StoreError>>,
}

fn start_driver(store: &Store, config: OutboxConfig) -> Driver {
    let (stop, rx) = oneshot::channel::<()>();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let task = tokio::spawn(run_outbox(
        store.clone(),
        client(),
        clock,
        config,
        async move {
            let _ = rx.await;
        },
    ));
    Driver { stop, task }
}

impl Driver {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the outbox driver stops within its grace period")
            .unwrap()
            .unwrap();
    }
}

/// Polls `cond` every 20 ms until it holds; panics after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let poll = async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(limit, poll).await.is_err() {
        panic!("timed out waiting for {what}");
    }
}

async fn publish_call_event(bus: &EventBus, call: Uuid, kind: &str, url: &str) -> Arc<Event> {
    bus.publish(
        SystemClock.utc(),
        kind,
        Some(call),
        json!({"call_id": call, "status": kind}),
        Some(url),
    )
    .await
    .unwrap()
}

/// Checks every delivery: headers, signature, body; each event exactly once; per-call order.
fn check_deliveries(got: &[Got], secret: &str, expected: &HashMap<Uuid, Vec<Uuid>>, label: &str) {
    let mut per_call: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut seen = HashMap::<Uuid, usize>::new();
    for g in got {
        assert_eq!(g.content_type, "application/json", "{label}");
        assert!(
            verify_signature(secret, &g.timestamp, &g.body, &g.signature),
            "{label}: bad signature {:?}",
            g.signature
        );
        assert!(!verify_signature(
            "wrong",
            &g.timestamp,
            &g.body,
            &g.signature
        ));
        let e: Event = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(g.event_id_header, e.id.to_string());
        *seen.entry(e.id).or_default() += 1;
        per_call.entry(e.call_id.unwrap()).or_default().push(e.id);
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "{label}: an event arrived twice"
    );
    assert_eq!(
        &per_call, expected,
        "{label}: every event, in order per call"
    );
}

#[tokio::test]
async fn delivers_signed_events_in_order_with_retries_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        let secret = store.webhook_secret().await.unwrap();
        let bus = EventBus::new(store.clone());
        let receiver = Receiver::default();
        receiver.fail_first.store(3, Ordering::SeqCst);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (server, server_stop) = serve(listener, receiver.clone());
        let driver = start_driver(&store, test_config());

        // Three calls, their events interleaved.
        let calls: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let mut expected: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for kind in CALL_KINDS {
            for &c in &calls {
                let e = publish_call_event(&bus, c, kind, &url).await;
                expected.entry(c).or_default().push(e.id);
            }
        }
        wait_until("all 12 deliveries", Duration::from_secs(30), || async {
            receiver.got().len() >= 12 && store.pending_deliveries().await.unwrap() == 0
        })
        .await;
        check_deliveries(&receiver.got(), &secret, &expected, db.label);
        assert_eq!(receiver.refused.load(Ordering::SeqCst), 3);
        // The refused attempts were recorded on the rows that got them.
        let mut retried = 0;
        for ids in expected.values() {
            for id in ids {
                let e = &store.outbox_entries(*id).await.unwrap()[0];
                assert!(e.delivered_at.is_some());
                if e.attempts > 0 {
                    retried += e.attempts;
                    assert_eq!(e.last_error.as_deref(), Some("http status 500"));
                }
            }
        }
        assert_eq!(retried, 3, "{}", db.label);

        driver.stop().await;
        let _ = server_stop.send(());
        server.await.unwrap();
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn gives_up_after_the_limit_and_unblocks_the_call_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        let bus = EventBus::new(store.clone());
        // Nothing listens on this port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/hook");
        let config = OutboxConfig {
            give_up_after: Duration::from_millis(300),
            ..test_config()
        };
        let driver = start_driver(&store, config);
        let call = Uuid::new_v4();
        let first = publish_call_event(&bus, call, kinds::CALL_INITIATED, &url).await;
        let second = publish_call_event(&bus, call, kinds::CALL_RINGING, &url).await;
        wait_until("both given up", Duration::from_secs(30), || async {
            store.pending_deliveries().await.unwrap() == 0
        })
        .await;
        // The first is retried until the limit; the second, unblocked only then, is already
        // past the limit (measured from its event) and gets one last attempt.
        for (e, min_attempts) in [(&first, 2), (&second, 1)] {
            let row = &store.outbox_entries(e.id).await.unwrap()[0];
            assert!(row.given_up_at.is_some(), "{}", db.label);
            assert!(row.delivered_at.is_none());
            assert!(
                row.attempts >= min_attempts,
                "{}: {} attempts",
                db.label,
                row.attempts
            );
            let err = row.last_error.as_deref().unwrap_or_default();
            assert!(err.starts_with("connection failed"), "{}: {err}", db.label);
        }
        driver.stop().await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn receiver_down_across_a_restart_gets_every_event_once_in_order_on_every_backend() {
    for db in test_databases().await {
        // A port with nothing listening (bound, noted, released), used again later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/hook");
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut expected: HashMap<Uuid, Vec<Uuid>> = HashMap::new();

        // First life: publish while the receiver is down; the driver keeps failing.
        let store = db.store().await;
        let secret = store.webhook_secret().await.unwrap();
        let bus = EventBus::new(store.clone());
        let driver = start_driver(&store, test_config());
        for kind in CALL_KINDS {
            let e = publish_call_event(&bus, a, kind, &url).await;
            expected.entry(a).or_default().push(e.id);
        }
        for kind in &CALL_KINDS[..2] {
            let e = publish_call_event(&bus, b, kind, &url).await;
            expected.entry(b).or_default().push(e.id);
        }
        let heads = [expected[&a][0], expected[&b][0]];
        wait_until(
            "failed attempts while down",
            Duration::from_secs(30),
            || async {
                let mut ok = true;
                for id in heads {
                    ok &= store.outbox_entries(id).await.unwrap()[0].attempts >= 2;
                }
                ok
            },
        )
        .await;
        driver.stop().await;
        store.close().await;
        drop(bus);
        drop(store);

        // Second life: a new store and driver on the same database; more events meanwhile.
        let store = db.store().await;
        assert_eq!(store.webhook_secret().await.unwrap(), secret);
        let bus = EventBus::new(store.clone());
        let driver = start_driver(&store, test_config());
        for kind in &CALL_KINDS[2..] {
            let e = publish_call_event(&bus, b, kind, &url).await;
            expected.entry(b).or_default().push(e.id);
        }
        for kind in CALL_KINDS {
            let e = publish_call_event(&bus, c, kind, &url).await;
            expected.entry(c).or_default().push(e.id);
        }
        assert_eq!(
            store.pending_deliveries().await.unwrap(),
            12,
            "{}",
            db.label
        );

        // The receiver comes up on the same port.
        let receiver = Receiver::default();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let (server, server_stop) = serve(listener, receiver.clone());
        wait_until(
            "all 12 deliveries after restart",
            Duration::from_secs(30),
            || async {
                receiver.got().len() >= 12 && store.pending_deliveries().await.unwrap() == 0
            },
        )
        .await;
        check_deliveries(&receiver.got(), &secret, &expected, db.label);

        driver.stop().await;
        let _ = server_stop.send(());
        server.await.unwrap();
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn shutdown_flushes_what_is_due_and_a_configured_secret_signs_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        let bus = EventBus::new(store.clone());
        let receiver = Receiver::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (server, server_stop) = serve(listener, receiver.clone());
        let config = OutboxConfig {
            secret: Some("configured-secret".into()),
            shutdown_grace: Duration::from_secs(10),
            ..test_config()
        };
        let driver = start_driver(&store, config);
        let call = Uuid::new_v4();
        let mut expected: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for kind in CALL_KINDS {
            let e = publish_call_event(&bus, call, kind, &url).await;
            expected.entry(call).or_default().push(e.id);
        }
        // Stop at once: the driver delivers what is due before it returns.
        driver.stop().await;
        assert_eq!(store.pending_deliveries().await.unwrap(), 0, "{}", db.label);
        check_deliveries(&receiver.got(), "configured-secret", &expected, db.label);

        let _ = server_stop.send(());
        server.await.unwrap();
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn a_delivery_cut_off_by_shutdown_is_sent_after_restart_on_every_backend() {
    for db in test_databases().await {
        let receiver = Receiver::default();
        receiver.hold_first.store(1, Ordering::SeqCst);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (server, server_stop) = serve(listener, receiver.clone());
        let config = OutboxConfig {
            request_timeout: Duration::from_secs(2),
            shutdown_grace: Duration::from_millis(50),
            ..test_config()
        };

        // First life: the request is in flight (held by the receiver) when shutdown's grace ends.
        let store = db.store().await;
        let secret = store.webhook_secret().await.unwrap();
        let bus = EventBus::new(store.clone());
        let driver = start_driver(&store, config.clone());
        let call = Uuid::new_v4();
        let e = publish_call_event(&bus, call, kinds::CALL_INITIATED, &url).await;
        wait_until("the request to arrive", Duration::from_secs(30), || async {
            receiver.arrived.load(Ordering::SeqCst) >= 1
        })
        .await;
        driver.stop().await;
        store.close().await;
        drop(bus);
        drop(store);
        assert!(receiver.got().is_empty());

        // Second life: the row's lease runs out and it is sent again.
        let store = db.store().await;
        assert_eq!(store.pending_deliveries().await.unwrap(), 1, "{}", db.label);
        let driver = start_driver(&store, config);
        wait_until(
            "redelivery after the lease",
            Duration::from_secs(30),
            || async { store.pending_deliveries().await.unwrap() == 0 },
        )
        .await;
        let expected = HashMap::from([(call, vec![e.id])]);
        check_deliveries(&receiver.got(), &secret, &expected, db.label);

        driver.stop().await;
        let _ = server_stop.send(());
        server.await.unwrap();
        store.close().await;
        db.remove().await;
    }
}
