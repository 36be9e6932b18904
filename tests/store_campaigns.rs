//! The dialer data of the store (campaigns, contact lists, imports, the do-not-call list, the
//! contact claim, attempts) on SQLite and (with `TRUNKLINE_TEST_PG`) PostgreSQL.
//!
//! The `#[ignore]`d tests at the end measure the figures of BENCHMARKS.md (import of 100,000
//! rows, claims per second); run them in a release build with `--ignored --nocapture`.

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use trunkline::campaign::import::{self, BadReason, ImportOptions};
use trunkline::campaign::phone::Region;
use trunkline::campaign::{
    AttemptOutcome, CallerIds, CampaignSettings, CampaignState, ContactStatus,
};
use trunkline::dialer::SessionEndReason;
use trunkline::dialer::session::{SessionCounts, SessionState};
use trunkline::store::testing::{TestDb, test_databases};
use trunkline::store::{ClaimedContact, NewCampaign, NewContactList, Store, WindowCheck, new_id};
use uuid::Uuid;

/// The benchmarks' stopwatch; the rule against reading the clock keeps it out of `src/`.
#[allow(clippy::disallowed_methods)]
fn wall_now() -> Instant {
    Instant::now()
}

const LEASE: Duration = Duration::from_secs(120);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T15:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn opts() -> ImportOptions {
    ImportOptions {
        default_region: Region::parse("US").unwrap(),
        max_rows: import::DEFAULT_MAX_ROWS,
        mapping: HashMap::new(),
    }
}

fn open(_: &trunkline::store::ClaimCandidate) -> WindowCheck {
    WindowCheck::Open
}

/// A list with `csv` imported and a running campaign on it.
async fn campaign_with(store: &Store, csv: &str, max_attempts: u32) -> (Uuid, Uuid) {
    let now = t0();
    let list = store
        .insert_contact_list(&NewContactList {
            id: new_id(now),
            name: "spring".into(),
            default_region: "US".into(),
            created_at: now,
        })
        .await
        .unwrap();
    let v = import::validate_contacts(csv.as_bytes(), &opts()).unwrap();
    store
        .import_contacts(list.id, v, now - TimeDelta::minutes(1), false)
        .await
        .unwrap();
    let mut s = CampaignSettings::new("spring", "America/New_York");
    s.list_id = Some(list.id);
    s.trunk = Some("local".into());
    s.caller_ids = CallerIds {
        default: vec!["+15550100000".into()],
        by_prefix: vec![],
    };
    s.max_attempts = max_attempts;
    let c = store
        .insert_campaign(&NewCampaign {
            id: new_id(now),
            settings: s,
            created_at: now,
        })
        .await
        .unwrap();
    store
        .set_campaign_state(c.id, CampaignState::Draft, CampaignState::Running, now)
        .await
        .unwrap()
        .unwrap();
    (c.id, list.id)
}

fn numbers(n: usize) -> String {
    let mut csv = String::from("phone,priority\n");
    for i in 0..n {
        csv.push_str(&format!("+1212{:07},0\n", 2_000_000 + i));
    }
    csv
}

async fn campaigns_and_states(store: &Store, label: &str) {
    let now = t0();
    let mut s = CampaignSettings::new("autumn", "Europe/London");
    s.rate_per_minute = Some(10);
    s.retry_delays.busy = 42;
    let c = store
        .insert_campaign(&NewCampaign {
            id: new_id(now),
            settings: s.clone(),
            created_at: now,
        })
        .await
        .unwrap();
    assert_eq!(c.state, CampaignState::Draft, "{label}");
    assert_eq!(c.settings, s, "{label}: settings round-trip");
    assert_eq!(c.created_at, now);
    let got = store.get_campaign(c.id).await.unwrap().unwrap();
    assert_eq!(got, c, "{label}");
    // Compare and set: only from the state it is in.
    assert!(
        store
            .set_campaign_state(c.id, CampaignState::Paused, CampaignState::Running, now)
            .await
            .unwrap()
            .is_none(),
        "{label}"
    );
    let later = now + TimeDelta::seconds(5);
    let r = store
        .set_campaign_state(c.id, CampaignState::Draft, CampaignState::Running, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.started_at, Some(later), "{label}");
    let p = store
        .set_campaign_state(c.id, CampaignState::Running, CampaignState::Paused, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.state, CampaignState::Paused);
    let mut s2 = s.clone();
    s2.name = "autumn 2".into();
    let u = store
        .update_campaign_settings(c.id, &s2, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.settings.name, "autumn 2");
    assert!(
        !store.delete_campaign(c.id).await.unwrap(),
        "{label}: not a draft"
    );
    let page = store.list_campaigns(&Default::default()).await.unwrap();
    assert_eq!(page.campaigns.len(), 1);
}

async fn imports_and_dnc(store: &Store, label: &str) {
    let now = t0();
    let list = store
        .insert_contact_list(&NewContactList {
            id: new_id(now),
            name: "l".into(),
            default_region: "US".into(),
            created_at: now,
        })
        .await
        .unwrap();
    let (e, new) = store
        .add_dnc("+12125550003", Some("asked"), now)
        .await
        .unwrap();
    assert!(new, "{label}");
    assert_eq!(e.reason.as_deref(), Some("asked"));
    let (_, new) = store.add_dnc("+12125550003", None, now).await.unwrap();
    assert!(!new, "{label}: added once");
    let csv = "phone,name,plan\n+12125550001,A,gold\n+12125550002,B,\n";
    let v = import::validate_contacts(csv.as_bytes(), &opts()).unwrap();
    let s = store.import_contacts(list.id, v, now, false).await.unwrap();
    assert_eq!((s.rows, s.valid, s.imported), (2, 2, 2), "{label}");
    // Second file: one already in the list, one on the DNC list, one bad, one new.
    let csv = "phone,name\n+12125550001,A\n+12125550003,C\nxx,D\n+12125550004,E\n";
    let v = import::validate_contacts(csv.as_bytes(), &opts()).unwrap();
    let dry = store
        .import_contacts(list.id, v.clone(), now, true)
        .await
        .unwrap();
    assert_eq!(dry.imported, 0, "{label}: dry run imports nothing");
    let reasons: Vec<(u64, BadReason)> = dry.bad.iter().map(|b| (b.line, b.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            (2, BadReason::DuplicateInList),
            (3, BadReason::OnDnc),
            (4, BadReason::InvalidNumber)
        ],
        "{label}"
    );
    assert_eq!(store.count_contacts(list.id).await.unwrap(), 2);
    let s = store.import_contacts(list.id, v, now, false).await.unwrap();
    assert_eq!((s.valid, s.imported), (1, 1), "{label}");
    assert_eq!(store.count_contacts(list.id).await.unwrap(), 3);
    let page = store
        .list_contacts(list.id, &Default::default())
        .await
        .unwrap();
    let a = page
        .contacts
        .iter()
        .find(|c| c.phone == "+12125550001")
        .unwrap();
    assert_eq!(a.custom["plan"], "gold", "{label}");
    assert_eq!(a.timezone.as_deref(), Some("America/New_York"));
    assert_eq!(a.status, ContactStatus::Pending);
    // Paging.
    let f = trunkline::store::ContactFilter {
        limit: Some(2),
        ..Default::default()
    };
    let p1 = store.list_contacts(list.id, &f).await.unwrap();
    assert_eq!(p1.contacts.len(), 2);
    let f = trunkline::store::ContactFilter {
        limit: Some(2),
        cursor: p1.next_cursor,
        ..Default::default()
    };
    let p2 = store.list_contacts(list.id, &f).await.unwrap();
    assert_eq!(p2.contacts.len(), 1, "{label}");
    assert!(p2.next_cursor.is_none());
    // DNC list and removal.
    let dnc = store.list_dnc(None, None).await.unwrap();
    assert_eq!(dnc.entries.len(), 1);
    assert!(store.remove_dnc("+12125550003").await.unwrap());
    assert!(!store.remove_dnc("+12125550003").await.unwrap());
    assert!(store.get_dnc("+12125550003").await.unwrap().is_none());
    // A list used by no campaign can go, contacts with it.
    assert!(store.delete_contact_list(list.id).await.unwrap(), "{label}");
    assert_eq!(store.count_contacts(list.id).await.unwrap(), 0);
}

async fn claim_rules(store: &Store, label: &str) {
    let csv = "phone,priority\n\
               +12125550001,0\n\
               +12125550002,5\n\
               +12125550003,0\n\
               +13125550004,0\n";
    let (cid, list) = campaign_with(store, csv, 2).await;
    let now = t0();
    // Highest priority first.
    let a = store
        .claim_next(cid, "n1", now, LEASE, open)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.contact.phone, "+12125550002", "{label}");
    assert_eq!(a.attempt_no, 1);
    assert_eq!(a.contact.status, ContactStatus::Dialing);
    assert_eq!(a.contact.lease_owner.as_deref(), Some("n1"));
    assert_eq!(store.attempts_in_flight(cid).await.unwrap(), 1);
    // A number put on the DNC list mid-campaign is never dialled (checked at claim time even
    // if its contact row was not marked: simulate by inserting directly after the fact).
    store.add_dnc("+12125550001", None, now).await.unwrap();
    // Contacts outside their window move out of the way: Chicago closed, New York open.
    let gate = |c: &trunkline::store::ClaimCandidate| {
        if c.timezone.as_deref() == Some("America/Chicago") {
            WindowCheck::ClosedUntil(t0() + TimeDelta::hours(3))
        } else {
            WindowCheck::Open
        }
    };
    let b = store
        .claim_next(cid, "n1", now, LEASE, gate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.contact.phone, "+12125550003", "{label}: DNC skipped");
    // Nothing else is claimable now: 0001 on DNC, 0004 deferred, two in flight.
    assert!(
        store
            .claim_next(cid, "n1", now, LEASE, gate)
            .await
            .unwrap()
            .is_none(),
        "{label}"
    );
    let counts: HashMap<_, _> = store
        .contact_counts(list)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(counts.get(&ContactStatus::Dnc), Some(&1), "{label}");
    let chicago = store
        .list_contacts(list, &Default::default())
        .await
        .unwrap()
        .contacts
        .into_iter()
        .find(|c| c.phone == "+13125550004")
        .unwrap();
    assert_eq!(chicago.next_due_at, t0() + TimeDelta::hours(3), "{label}");
    // Finish: busy → retry in 10 min; finishing twice changes nothing.
    let due = now + TimeDelta::minutes(10);
    assert!(
        store
            .finish_attempt(
                b.attempt_id,
                now,
                AttemptOutcome::Busy,
                None,
                Some(Duration::from_millis(1500)),
                Some(due),
                ContactStatus::Retry,
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_attempt(
                b.attempt_id,
                now,
                AttemptOutcome::Human,
                None,
                None,
                None,
                ContactStatus::Done,
            )
            .await
            .unwrap(),
        "{label}: an attempt is finished once"
    );
    // Not before its due time.
    assert!(
        store
            .claim_next(cid, "n1", now + TimeDelta::minutes(9), LEASE, open)
            .await
            .unwrap()
            .is_none(),
        "{label}"
    );
    let again = store
        .claim_next(cid, "n2", due, LEASE, gate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.contact.phone, "+12125550003");
    assert_eq!(again.attempt_no, 2, "{label}");
    store
        .finish_attempt(
            again.attempt_id,
            due,
            AttemptOutcome::NoAnswer,
            None,
            None,
            Some(due),
            ContactStatus::Retry,
        )
        .await
        .unwrap();
    // Attempts used up (max 2): marked failed at the next claim, not dialled.
    assert!(
        store
            .claim_next(cid, "n2", due, LEASE, gate)
            .await
            .unwrap()
            .is_none(),
        "{label}"
    );
    let c = store.get_contact(again.contact.id).await.unwrap().unwrap();
    assert_eq!(c.status, ContactStatus::Failed, "{label}");
    assert_eq!(c.attempts, 2);
    assert_eq!(store.attempts_started_since(cid, now).await.unwrap(), 3);
    assert_eq!(store.attempts_started_since(cid, due).await.unwrap(), 1);
    assert_eq!(store.attempts_in_flight(cid).await.unwrap(), 1);
    // Leases: the first attempt is still open; once its lease expired, any node sees it.
    let open_now = store.open_attempts(cid, Some("n1")).await.unwrap();
    assert_eq!(open_now.len(), 1);
    assert_eq!(open_now[0].id, a.attempt_id);
    assert!(store.expired_attempts(now).await.unwrap().is_empty());
    let expired = store
        .expired_attempts(now + TimeDelta::seconds(121))
        .await
        .unwrap();
    assert_eq!(expired.len(), 1, "{label}");
    assert!(store.renew_lease(a.contact.id, "n1", due).await.unwrap());
    assert!(!store.renew_lease(a.contact.id, "n2", due).await.unwrap());
    // The Chicago contact is dialled once its window opens.
    let w = store
        .claim_next(cid, "n1", t0() + TimeDelta::hours(3), LEASE, open)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.contact.phone, "+13125550004", "{label}");
    // Export pages.
    let (rows, next) = store.list_attempts(cid, None, 2).await.unwrap();
    assert_eq!(rows.len(), 2);
    let (rest, none) = store.list_attempts(cid, next.as_deref(), 10).await.unwrap();
    assert_eq!(rest.len(), 2, "{label}");
    assert!(none.is_none());
    // The first two started at the same instant: their order is by id.
    let busy = rows
        .iter()
        .find(|r| r.outcome == Some(AttemptOutcome::Busy))
        .unwrap();
    assert_eq!(busy.duration_ms, Some(1500), "{label}");
    assert!(rows.iter().any(|r| r.outcome.is_none()), "{label}");
    // A paused campaign hands out nothing.
    store
        .set_campaign_state(cid, CampaignState::Running, CampaignState::Paused, due)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .claim_next(cid, "n1", due + TimeDelta::days(1), LEASE, open)
            .await
            .unwrap()
            .is_none()
    );
}

/// A number put on the do-not-call list while its contact is being dialled: the list update
/// cannot mark a contact in flight, so the claim itself must refuse it when it comes due again.
async fn dnc_added_while_dialling(store: &Store, label: &str) {
    let (cid, _) = campaign_with(store, "phone\n+12125550001\n", 5).await;
    let now = t0();
    let a = store
        .claim_next(cid, "n1", now, LEASE, open)
        .await
        .unwrap()
        .unwrap();
    store
        .add_dnc("+12125550001", Some("asked during the call"), now)
        .await
        .unwrap();
    let c = store.get_contact(a.contact.id).await.unwrap().unwrap();
    assert_eq!(
        c.status,
        ContactStatus::Dialing,
        "{label}: in flight, not touched"
    );
    store
        .finish_attempt(
            a.attempt_id,
            now,
            AttemptOutcome::NoAnswer,
            None,
            None,
            Some(now),
            ContactStatus::Retry,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_next(cid, "n1", now + TimeDelta::hours(1), LEASE, open)
            .await
            .unwrap()
            .is_none(),
        "{label}: never dialled again"
    );
    let c = store.get_contact(a.contact.id).await.unwrap().unwrap();
    assert_eq!(c.status, ContactStatus::Dnc, "{label}");
    assert_eq!(c.attempts, 1);
}

/// `tasks` claimers on `stores` (round robin) claim until nothing is left; every contact must
/// be handed out exactly once.
async fn claim_all_concurrently(stores: &[Store], cid: Uuid, tasks: usize) -> Vec<ClaimedContact> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = stores[t % stores.len()].clone();
        handles.push(tokio::spawn(async move {
            let node = format!("node{}", t % 2);
            let mut got = Vec::new();
            while let Some(c) = store
                .claim_next(cid, &node, t0(), LEASE, open)
                .await
                .unwrap()
            {
                got.push(c);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

async fn concurrent_claims(db: &TestDb, n: usize) {
    let a = db.store().await;
    let b = db.store().await;
    let (cid, _) = campaign_with(&a, &numbers(n), 3).await;
    let all = claim_all_concurrently(&[a.clone(), b.clone()], cid, 16).await;
    let ids: HashSet<Uuid> = all.iter().map(|c| c.contact.id).collect();
    assert_eq!(all.len(), n, "{}: every contact claimed", db.label);
    assert_eq!(ids.len(), n, "{}: no contact claimed twice", db.label);
    assert!(all.iter().all(|c| c.attempt_no == 1));
    assert_eq!(a.attempts_in_flight(cid).await.unwrap(), n as u64);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn campaigns_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        campaigns_and_states(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn imports_and_dnc_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        imports_and_dnc(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn claim_rules_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        claim_rules(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

/// `campaign_stats` on the backend: outcomes, verdicts, the abandon windows (today, 30 days)
/// and the mean talk time.
async fn stats(store: &Store, label: &str) {
    let csv = "phone\n+12125550001\n+12125550002\n+12125550003\n";
    let (cid, list) = campaign_with(store, csv, 1).await;
    let plan = [
        (AttemptOutcome::Abandoned, 1_000),
        (AttemptOutcome::Human, 20_000),
        (AttemptOutcome::Human, 40_000),
    ];
    for (outcome, ms) in plan {
        let a = store
            .claim_next(cid, "n1", t0(), LEASE, open)
            .await
            .unwrap()
            .unwrap();
        store
            .finish_attempt(
                a.attempt_id,
                t0(),
                outcome,
                Some("human"),
                Some(Duration::from_millis(ms)),
                None,
                ContactStatus::Done,
            )
            .await
            .unwrap();
    }
    // Two agent sessions: one in wrap-up after two dispositions (50 s of wrap-up), one ended.
    for (state, wrap_s, dispositions) in [
        (SessionState::WrapUp, 50, 2),
        (SessionState::Ended(SessionEndReason::Stopped), 30, 1),
    ] {
        let row = store
            .insert_session(&trunkline::store::NewSession {
                id: new_id(t0()),
                campaign_id: cid,
                agent: "alice".into(),
                node: "n1".into(),
                created_at: t0(),
            })
            .await
            .unwrap();
        let u = trunkline::store::SessionUpdate {
            state,
            current_attempt_id: None,
            current_contact_id: None,
            agent_call_id: None,
            counts: SessionCounts {
                dispositions,
                wrap_up: Duration::from_secs(wrap_s),
                ..SessionCounts::default()
            },
        };
        store.update_session(row.id, &u, t0()).await.unwrap();
    }
    let s = store.campaign_stats(cid, Some(list), t0()).await.unwrap();
    assert_eq!(s.agents.get("wrap-up"), Some(&1), "{label}: {s:?}");
    assert_eq!(s.agents.len(), 1, "{label}: ended sessions are not agents");
    assert_eq!(s.average_wrap_up_ms, Some(80_000.0 / 3.0), "{label}");
    assert_eq!(s.attempts.get("human"), Some(&2), "{label}: {s:?}");
    assert_eq!(s.attempts.get("abandoned"), Some(&1), "{label}");
    assert_eq!(s.amd.get("human"), Some(&3), "{label}");
    assert_eq!(s.contacts.get("done"), Some(&3), "{label}");
    assert_eq!(s.calls_last_minute, 3, "{label}");
    assert_eq!(s.abandon_rate_today, Some(1.0 / 3.0), "{label}");
    assert_eq!(s.abandon_rate_30d, Some(1.0 / 3.0), "{label}");
    assert_eq!(s.answer_rate, Some(1.0), "{label}");
    assert_eq!(s.average_talk_ms, Some(30_000.0), "{label}");
    // Two days later: nothing today, the same over 30 days, no call in the last minute.
    let later = store
        .campaign_stats(cid, Some(list), t0() + TimeDelta::days(2))
        .await
        .unwrap();
    assert_eq!(later.calls_last_minute, 0, "{label}");
    assert_eq!(later.abandon_rate_today, None, "{label}");
    assert_eq!(later.abandon_rate_30d, Some(1.0 / 3.0), "{label}");
    // After 31 days the window is empty; the totals stay.
    let gone = store
        .campaign_stats(cid, Some(list), t0() + TimeDelta::days(31))
        .await
        .unwrap();
    assert_eq!(gone.abandon_rate_30d, None, "{label}");
    assert_eq!(gone.attempts, s.attempts, "{label}");
}

/// Imported contacts get ids in file order (inserts append to the indexes that end in the id;
/// equal contacts are claimed in file order).
async fn ids_in_file_order(store: &Store, label: &str) {
    let phones: Vec<String> = (0..300)
        .map(|i| format!("+1212555{:04}", 9_000 - i))
        .collect();
    let csv = format!("phone\n{}\n", phones.join("\n"));
    let (cid, list) = campaign_with(store, &csv, 1).await;
    let f = trunkline::store::ContactFilter {
        limit: Some(500),
        ..Default::default()
    };
    let listed: Vec<String> = store
        .list_contacts(list, &f)
        .await
        .unwrap()
        .contacts
        .into_iter()
        .map(|c| c.phone)
        .collect();
    assert_eq!(listed, phones, "{label}: listed by id = file order");
    let first = store
        .claim_next(cid, "n1", t0(), LEASE, open)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.contact.phone, phones[0],
        "{label}: claimed in file order"
    );
}

#[tokio::test]
async fn imported_ids_follow_the_file_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        ids_in_file_order(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn campaign_stats_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        stats(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test]
async fn dnc_is_checked_at_claim_time_on_every_backend() {
    for db in test_databases().await {
        let store = db.store().await;
        dnc_added_while_dialling(&store, db.label).await;
        store.close().await;
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_on_two_pools_never_share_a_contact() {
    for db in test_databases().await {
        concurrent_claims(&db, 300).await;
        db.remove().await;
    }
}

/// 100,000 rows with 1% bad (invalid numbers and duplicates in the file): every bad row is
/// reported with its line, the good ones imported (SQLite; the timing is in BENCHMARKS.md).
#[tokio::test]
async fn import_of_100k_rows_reports_every_bad_row() {
    let dbs = test_databases().await;
    let db = &dbs[0];
    let store = db.store().await;
    let (csv, expected_bad) = big_file(100_000);
    let (list, report, _) = timed_import(&store, &csv).await;
    let bad: Vec<u64> = report.bad.iter().map(|b| b.line).collect();
    assert_eq!(bad, expected_bad);
    assert_eq!(report.rows, 100_000);
    assert_eq!(report.imported, 99_000);
    assert_eq!(store.count_contacts(list).await.unwrap(), 99_000);
    store.close().await;
    for db in dbs {
        db.remove().await;
    }
}

/// A CSV of `n` rows, 1% bad (half invalid numbers, half duplicates in the file), and the
/// lines of the bad rows.
fn big_file(n: usize) -> (String, Vec<u64>) {
    let mut csv = String::from("phone,name,timezone,priority,account\n");
    let mut bad = Vec::new();
    for i in 0..n {
        let line = i as u64 + 2;
        if i % 100 == 50 {
            bad.push(line);
            if i % 200 == 50 {
                csv.push_str(&format!("12345,bad {i},,0,A{i}\n"));
            } else {
                // Same number as row i - 1.
                let prev = i - 1;
                csv.push_str(&format!(
                    "+1{}{:07},dup {i},,0,A{i}\n",
                    212 + prev / 8_000_000,
                    2_000_000 + prev % 8_000_000
                ));
            }
        } else {
            csv.push_str(&format!(
                "+1{}{:07},Contact {i},,{},A{i}\n",
                212 + i / 8_000_000,
                2_000_000 + i % 8_000_000,
                i % 10
            ));
        }
    }
    (csv, bad)
}

async fn timed_import(
    store: &Store,
    csv: &str,
) -> (Uuid, trunkline::store::ImportSummary, Duration) {
    let now = t0();
    let list = store
        .insert_contact_list(&NewContactList {
            id: new_id(now),
            name: "big".into(),
            default_region: "US".into(),
            created_at: now,
        })
        .await
        .unwrap();
    let started = wall_now();
    let v = import::validate_contacts(csv.as_bytes(), &opts()).unwrap();
    let validated = started.elapsed();
    // The duplicate lookups alone (the import does them again).
    let phones: Vec<&str> = v.good.iter().map(|r| r.phone.as_str()).collect();
    let t = wall_now();
    store.phones_in_list(list.id, &phones).await.unwrap();
    store.phones_on_dnc(&phones).await.unwrap();
    println!(
        "import lookups (list and do-not-call, {} numbers): {:.2} s",
        phones.len(),
        t.elapsed().as_secs_f64()
    );
    drop(phones);
    let started = started + t.elapsed();
    let report = store.import_contacts(list.id, v, now, false).await.unwrap();
    let took = started.elapsed();
    println!(
        "import split: validate (parse, E.164, zones) {:.2} s, store (lookups, inserts) {:.2} s",
        validated.as_secs_f64(),
        (took - validated).as_secs_f64()
    );
    (list.id, report, took)
}

/// Figures: import of 100,000 rows with 1% bad rows on SQLite.
#[tokio::test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn bench_import_100k_sqlite() {
    let dbs = test_databases().await;
    let store = dbs[0].store().await;
    let (csv, _) = big_file(100_000);
    let (_, report, took) = timed_import(&store, &csv).await;
    println!(
        "import sqlite: {} rows ({} bytes), {} imported, {} bad reported, {:.2} s, {:.0} rows/s",
        report.rows,
        csv.len(),
        report.imported,
        report.bad.len(),
        took.as_secs_f64(),
        report.rows as f64 / took.as_secs_f64()
    );
    store.close().await;
    for db in dbs {
        db.remove().await;
    }
}

/// Figures: contact claims per second, 16 concurrent claimers on two pools (two nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn bench_claims_per_second() {
    for db in test_databases().await {
        let a = db.store().await;
        let b = db.store().await;
        let n = 20_000;
        let (cid, _) = campaign_with(&a, &numbers(n), 3).await;
        let started = wall_now();
        let all = claim_all_concurrently(&[a.clone(), b.clone()], cid, 16).await;
        let took = started.elapsed();
        let ids: HashSet<Uuid> = all.iter().map(|c| c.contact.id).collect();
        assert_eq!(ids.len(), n);
        println!(
            "claims {}: {} contacts, 16 claimers on 2 pools, {:.2} s, {:.0} claims/s",
            db.label,
            n,
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
        a.close().await;
        b.close().await;
        db.remove().await;
    }
}

/// Figures: the store work of the campaign runner per attempt, one claimer after another (what
/// `src/dialer/runner.rs` does for each call): the rate limiter's read of the latest starts
/// (a 10/minute campaign), the in-flight count, the claim, recording the call id, and finishing the attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_runner_store_work_per_attempt() {
    for db in test_databases().await {
        let store = db.store().await;
        let n = 2_000;
        let (cid, _) = campaign_with(&store, &numbers(n), 3).await;
        let now = t0();
        let started = wall_now();
        for i in 0..n {
            store
                .attempt_starts_since(cid, now - TimeDelta::minutes(1), 10)
                .await
                .unwrap();
            store.attempts_in_flight(cid).await.unwrap();
            let c = store
                .claim_next(cid, "bench", now, LEASE, open)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("contact {i} claimed"));
            store
                .set_attempt_call(c.attempt_id, new_id(now))
                .await
                .unwrap();
            assert!(
                store
                    .finish_attempt(
                        c.attempt_id,
                        now,
                        AttemptOutcome::Human,
                        Some("human"),
                        Some(Duration::from_secs(20)),
                        None,
                        ContactStatus::Done,
                    )
                    .await
                    .unwrap()
            );
        }
        let took = started.elapsed();
        println!(
            "runner store work {}: {} attempts one after another, {:.2} s, {:.0} us per attempt",
            db.label,
            n,
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / n as f64
        );
        store.close().await;
        db.remove().await;
    }
}
