//! Prometheus metrics: names in one place, the recorder installed once per process.
//!
//! Media code never touches a metric per packet: the media worker sums its counters and adds
//! them once per tick (STYLE.md sec. 4, "count, don't log").

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Gauge: calls in progress on this node.
pub const ACTIVE_CALLS: &str = "trunkline_active_calls";
/// Counter: calls ended, label `status` (completed, busy, no-answer, failed, canceled).
pub const CALLS_ENDED: &str = "trunkline_calls_ended_total";
/// Counter: inbound calls recorded missed, label `reason` (caller-hangup, no-answer, busy,
/// no-agents, closed, restart).
pub const CALLS_MISSED: &str = "trunkline_calls_missed_total";
/// Counter: SIP responses, labels `code` and `direction` (sent, received).
pub const SIP_RESPONSES: &str = "trunkline_sip_responses_total";
/// Counter: SIP messages that could not be parsed, label `action` (answered_400, dropped).
pub const SIP_MALFORMED: &str = "trunkline_sip_malformed_total";
/// Counter: RTP packets, label `direction` (in, out).
pub const RTP_PACKETS: &str = "trunkline_rtp_packets_total";
/// Counter: RTP packets that arrived too late for the jitter buffer.
pub const RTP_LATE: &str = "trunkline_rtp_late_packets_total";
/// Counter: RTP packets lost (sequence gaps).
pub const RTP_LOST: &str = "trunkline_rtp_lost_packets_total";
/// Counter: RTP packets dropped as malformed or from an unexpected source.
pub const RTP_DROPPED: &str = "trunkline_rtp_dropped_packets_total";
/// Counter: recording chunks (500 ms of audio) dropped because the writer thread was behind.
pub const RECORDER_CHUNKS_DROPPED: &str = "trunkline_recorder_chunks_dropped_total";
/// Counter: webhook delivery attempts, label `outcome` (kept by the outbox driver).
pub const WEBHOOKS: &str = crate::events::outbox::DELIVERIES_METRIC;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (first call) and returns the handle that renders `/metrics`.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = match PrometheusBuilder::new().install_recorder() {
                Ok(h) => h,
                // Another recorder is already installed (a test harness): render an empty one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!(ACTIVE_CALLS, Unit::Count, "calls in progress on this node");
    describe_counter!(CALLS_ENDED, Unit::Count, "calls ended, by final status");
    describe_counter!(CALLS_MISSED, Unit::Count, "inbound calls missed, by reason");
    describe_counter!(
        SIP_RESPONSES,
        Unit::Count,
        "SIP responses by code and direction"
    );
    describe_counter!(SIP_MALFORMED, Unit::Count, "unparseable SIP messages");
    describe_counter!(RTP_PACKETS, Unit::Count, "RTP packets by direction");
    describe_counter!(
        RTP_LATE,
        Unit::Count,
        "RTP packets too late for the jitter buffer"
    );
    describe_counter!(RTP_LOST, Unit::Count, "RTP packets lost");
    describe_counter!(
        RTP_DROPPED,
        Unit::Count,
        "RTP packets dropped (malformed, wrong source)"
    );
    describe_counter!(
        RECORDER_CHUNKS_DROPPED,
        Unit::Count,
        "recording chunks dropped because the writer was behind"
    );
    describe_counter!(
        WEBHOOKS,
        Unit::Count,
        "webhook delivery attempts by outcome"
    );
    // Present every series from the start, so a scrape of an idle server shows them at 0.
    metrics::gauge!(ACTIVE_CALLS).set(0.0);
    for d in ["in", "out"] {
        metrics::counter!(RTP_PACKETS, "direction" => d).increment(0);
    }
    for c in [RTP_LATE, RTP_LOST, RTP_DROPPED, RECORDER_CHUNKS_DROPPED] {
        metrics::counter!(c).increment(0);
    }
}
