//! Simulated-time tests of the call engine: a scripted peer talks to the pure engine through
//! datagrams; time jumps to the engine's deadlines.

use super::*;

#[test]
fn final_status_mapping_follows_twilio_names() {
    assert_eq!(final_status_for(486), FinalStatus::Busy);
    assert_eq!(final_status_for(487), FinalStatus::NoAnswer);
    assert_eq!(final_status_for(503), FinalStatus::Failed);
}
