//! A real softphone (baresip) calls trunkline.
//!
//! Issue 2, "Done when": baresip dials a number routed to `answer+play` and records what it
//! hears; the recording holds the prompt (a tone prompt checked for frequency and duration).

mod common;

use common::Server;
use common::audio;
use common::baresip::Baresip;
use std::time::Duration;

#[test]
fn baresip_dialling_the_tone_number_hears_the_1khz_prompt_for_two_seconds() {
    let server = Server::start();
    let mut phone = Baresip::start("alice", None).expect("baresip starts");
    phone
        .dial(&format!("sip:tone@{}", server.sip))
        .expect("dial");
    phone
        .wait_established(1, Duration::from_secs(20))
        .unwrap_or_else(|e| {
            panic!(
                "call not established: {e}\n{}\n--- server ---\n{}",
                phone.output(),
                server.log()
            )
        });
    // The route hangs up when the prompt ends (2 s).
    phone
        .wait_closed(1, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("call not closed by the server: {e}\n{}", phone.output()));
    let heard = phone.heard_wav().expect("baresip recorded what it heard");
    let out = phone.quit(Duration::from_secs(5));
    let a = audio::read_wav(&heard).expect("read the recording");
    let (onset, dur) = a
        .loud_span(-30.0)
        .unwrap_or_else(|| panic!("no tone in the recording\n{out}"));
    // The prompt is 2.00 s; allow for the jitter buffer and packet edges.
    assert!(
        (1.8..=2.2).contains(&dur),
        "tone lasted {dur:.3} s (from {onset:.3} s)"
    );
    let f =
        audio::dominant_frequency(a.slice(onset + 0.2, onset + dur - 0.2), a.rate).expect("a tone");
    assert!((f - 1000.0).abs() < 10.0, "heard {f} Hz, want 1000 Hz");

    // The call row: inbound, completed, ended by the system when the prompt finished.
    let key = server.api_key();
    let calls = common::poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let c = server.all_calls(&key, "");
        (c.len() == 1 && c[0]["final_status"].is_string()).then_some(c)
    })
    .expect("one finished call row");
    assert_eq!(calls[0]["to"], "tone");
    assert_eq!(calls[0]["final_status"], "completed");
    assert_eq!(calls[0]["ended_by"], "system");
    assert_eq!(calls[0]["end_reason"], "prompt finished");
}
