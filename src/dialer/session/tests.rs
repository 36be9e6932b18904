//! Tests of the agent session state machine, in simulated time.

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(s)
}

fn drain(s: &mut Session) -> Vec<SessionAction> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// Actions without the state-change notices, to check what the driver must do.
fn work(s: &mut Session) -> Vec<SessionAction> {
    drain(s)
        .into_iter()
        .filter(|a| !matches!(a, SessionAction::StateChanged { .. }))
        .collect()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn connected(mode: DialMode) -> Session {
    let mut s = Session::new(t(0), mode);
    assert_eq!(work(&mut s), vec![SessionAction::CallAgent]);
    s.handle_event(t(3), SessionEvent::AgentAnswered).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![SessionAction::StateChanged {
            from: SessionState::Connecting,
            to: SessionState::Available
        }]
    );
    s
}

#[test]
fn power_call_cycle_available_dialing_on_call_wrap_up_available() {
    let mut s = connected(DialMode::Power);
    s.handle_event(t(10), SessionEvent::DialStarted { attempt: id(1) })
        .unwrap();
    s.handle_event(t(10), SessionEvent::DialStarted { attempt: id(2) })
        .unwrap();
    assert_eq!(s.state(), SessionState::Dialing);
    assert_eq!(s.state().agent_state(), Some(AgentState::Dialing));
    s.handle_event(
        t(20),
        SessionEvent::DialEnded {
            attempt: id(1),
            outcome: AttemptOutcome::Busy,
        },
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Dialing, "one line still ringing");
    s.handle_event(t(25), SessionEvent::CustomerHuman { attempt: id(2) })
        .unwrap();
    assert_eq!(s.state(), SessionState::OnCall);
    assert_eq!(
        work(&mut s),
        vec![SessionAction::BridgeCustomer { attempt: id(2) }]
    );
    s.handle_event(t(85), SessionEvent::CustomerHungUp { attempt: id(2) })
        .unwrap();
    assert_eq!(s.state(), SessionState::WrapUp);
    s.handle_command(
        t(100),
        SessionCommand::Disposition {
            disposition: "sale".into(),
        },
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Available);
    assert_eq!(
        work(&mut s),
        vec![SessionAction::SaveDisposition {
            attempt: id(2),
            disposition: "sale".into()
        }]
    );
    let c = s.counts();
    assert_eq!((c.calls, c.dispositions), (1, 1));
    assert_eq!(c.talk, Duration::from_secs(60));
    assert_eq!(c.wrap_up, Duration::from_secs(15));
}

#[test]
fn agent_that_does_not_answer_ends_the_session_unreachable() {
    let mut s = Session::new(t(0), DialMode::Predictive);
    drain(&mut s);
    s.handle_event(t(30), SessionEvent::AgentFailed).unwrap();
    assert_eq!(
        s.state(),
        SessionState::Ended(SessionEndReason::AgentUnreachable)
    );
    // No leg to hang up, nothing else to do.
    assert_eq!(work(&mut s), vec![]);
    let err = s.handle_command(t(31), SessionCommand::Resume).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot resume: the session has ended (agent-unreachable)"
    );
    assert!(err.is_conflict());
}

#[test]
fn commands_in_the_wrong_state_say_which_state_and_what_is_allowed() {
    let mut s = connected(DialMode::Power);
    let err = s.handle_command(t(5), SessionCommand::Resume).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot resume while available: resume is allowed when paused"
    );
    assert!(err.is_conflict());
    let err = s
        .handle_command(
            t(5),
            SessionCommand::Disposition {
                disposition: "x".into(),
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot disposition while available: disposition is allowed when wrap-up"
    );
    s.handle_event(t(6), SessionEvent::CustomerHuman { attempt: id(7) })
        .unwrap();
    let err = s.handle_command(t(7), SessionCommand::Skip).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot skip while on-call: skip is allowed when available, dialing or paused"
    );
    let err = s
        .handle_command(t(7), SessionCommand::Dial { contact: id(9) })
        .unwrap_err();
    assert!(err.is_conflict());
    // Nothing changed on refusals.
    assert_eq!(s.state(), SessionState::OnCall);
    let mut connecting = Session::new(t(0), DialMode::Power);
    let err = connecting
        .handle_command(t(1), SessionCommand::Pause)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot pause while connecting: pause is allowed when available, dialing, on-call or wrap-up"
    );
}

#[test]
fn pause_during_a_call_takes_effect_after_the_disposition() {
    let mut s = connected(DialMode::Predictive);
    s.handle_event(t(5), SessionEvent::CustomerHuman { attempt: id(1) })
        .unwrap();
    s.handle_command(t(6), SessionCommand::Pause).unwrap();
    assert_eq!(s.state(), SessionState::OnCall);
    assert!(s.pause_pending());
    s.handle_event(t(50), SessionEvent::CustomerHungUp { attempt: id(1) })
        .unwrap();
    s.handle_command(
        t(60),
        SessionCommand::Disposition {
            disposition: "callback".into(),
        },
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Paused);
    assert!(!s.pause_pending());
    drain(&mut s);
    let err = s.handle_command(t(61), SessionCommand::Pause).unwrap_err();
    assert!(err.to_string().starts_with("cannot pause while paused"));
    s.handle_command(t(70), SessionCommand::Resume).unwrap();
    assert_eq!(s.state(), SessionState::Available);
    assert_eq!(
        work(&mut s),
        vec![],
        "the agent leg is still up: no new call"
    );
}

#[test]
fn pause_and_skip_while_dialing_cancel_the_dials() {
    let mut s = connected(DialMode::Power);
    s.handle_event(t(1), SessionEvent::DialStarted { attempt: id(1) })
        .unwrap();
    s.handle_event(t(1), SessionEvent::DialStarted { attempt: id(2) })
        .unwrap();
    drain(&mut s);
    s.handle_command(t(2), SessionCommand::Skip).unwrap();
    assert_eq!(
        work(&mut s),
        vec![
            SessionAction::CancelAttempt { attempt: id(1) },
            SessionAction::CancelAttempt { attempt: id(2) }
        ]
    );
    assert_eq!(s.state(), SessionState::Available);
    // The cancelled calls' late reports are harmless.
    s.handle_event(
        t(3),
        SessionEvent::DialEnded {
            attempt: id(1),
            outcome: AttemptOutcome::Cancelled,
        },
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Available);
    s.handle_event(t(4), SessionEvent::DialStarted { attempt: id(3) })
        .unwrap();
    s.handle_command(t(5), SessionCommand::Pause).unwrap();
    assert_eq!(s.state(), SessionState::Paused);
    assert_eq!(
        work(&mut s),
        vec![SessionAction::CancelAttempt { attempt: id(3) }]
    );
    s.handle_command(t(6), SessionCommand::Skip).unwrap();
    assert_eq!(work(&mut s), vec![SessionAction::SkipNextContact]);
    assert_eq!(s.counts().skipped, 2);
}

#[test]
fn a_second_human_for_a_busy_agent_is_refused_so_the_runner_routes_or_abandons_it() {
    let mut s = connected(DialMode::Power);
    s.handle_event(t(1), SessionEvent::DialStarted { attempt: id(1) })
        .unwrap();
    s.handle_event(t(1), SessionEvent::DialStarted { attempt: id(2) })
        .unwrap();
    s.handle_event(t(9), SessionEvent::CustomerHuman { attempt: id(1) })
        .unwrap();
    let err = s
        .handle_event(t(9), SessionEvent::CustomerHuman { attempt: id(2) })
        .unwrap_err();
    assert!(matches!(
        err,
        SessionError::WrongState {
            state: SessionState::OnCall,
            ..
        }
    ));
    assert_eq!(s.current_attempt(), Some(id(1)));
    let err = s
        .handle_event(t(10), SessionEvent::CustomerHungUp { attempt: id(2) })
        .unwrap_err();
    assert_eq!(err, SessionError::UnknownAttempt(id(2)));
}

#[test]
fn preview_dial_only_in_preview_mode() {
    let mut s = connected(DialMode::Preview);
    s.handle_command(t(1), SessionCommand::Dial { contact: id(5) })
        .unwrap();
    assert_eq!(s.state(), SessionState::Dialing);
    assert_eq!(
        work(&mut s),
        vec![SessionAction::PlaceCall { contact: id(5) }]
    );
    s.handle_event(t(1), SessionEvent::DialStarted { attempt: id(6) })
        .unwrap();
    s.handle_event(
        t(20),
        SessionEvent::DialEnded {
            attempt: id(6),
            outcome: AttemptOutcome::NoAnswer,
        },
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Available);

    let mut p = connected(DialMode::Power);
    let err = p
        .handle_command(t(1), SessionCommand::Dial { contact: id(5) })
        .unwrap_err();
    assert_eq!(err, SessionError::NotPreview(DialMode::Power));
    assert!(!err.is_conflict());
}

#[test]
fn stop_on_a_call_hangs_up_both_legs() {
    let mut s = connected(DialMode::Power);
    s.handle_event(t(1), SessionEvent::DialStarted { attempt: id(1) })
        .unwrap();
    s.handle_event(t(1), SessionEvent::DialStarted { attempt: id(2) })
        .unwrap();
    s.handle_event(t(5), SessionEvent::CustomerHuman { attempt: id(1) })
        .unwrap();
    drain(&mut s);
    s.handle_command(t(9), SessionCommand::Stop).unwrap();
    assert_eq!(
        work(&mut s),
        vec![
            SessionAction::CancelAttempt { attempt: id(2) },
            SessionAction::HangUpCustomer { attempt: id(1) },
            SessionAction::HangUpAgent
        ]
    );
    assert_eq!(s.state(), SessionState::Ended(SessionEndReason::Stopped));
    assert_eq!(s.counts().talk, Duration::from_secs(4));
    let err = s.handle_command(t(10), SessionCommand::Stop).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot stop: the session has ended (stopped)"
    );
}

#[test]
fn agent_hang_up_mid_session_ends_it_and_drops_the_customer() {
    let mut s = connected(DialMode::Predictive);
    s.handle_event(t(5), SessionEvent::CustomerHuman { attempt: id(1) })
        .unwrap();
    drain(&mut s);
    s.handle_event(t(8), SessionEvent::AgentHungUp).unwrap();
    assert_eq!(
        s.state(),
        SessionState::Ended(SessionEndReason::AgentHangup)
    );
    assert_eq!(
        work(&mut s),
        vec![SessionAction::HangUpCustomer { attempt: id(1) }]
    );
}

#[test]
fn restart_comes_back_paused_and_resume_calls_the_agent_again() {
    let counts = SessionCounts {
        calls: 4,
        ..Default::default()
    };
    let mut s = Session::restored(t(0), DialMode::Power, counts);
    assert_eq!(s.state(), SessionState::Paused);
    assert_eq!(
        drain(&mut s),
        vec![SessionAction::Notify(Notice::RestartedPaused)]
    );
    assert_eq!(s.counts().calls, 4);
    s.handle_command(t(60), SessionCommand::Resume).unwrap();
    assert_eq!(s.state(), SessionState::Connecting);
    assert_eq!(work(&mut s), vec![SessionAction::CallAgent]);
    s.handle_event(t(62), SessionEvent::AgentFailed).unwrap();
    assert_eq!(
        s.state(),
        SessionState::Ended(SessionEndReason::AgentUnreachable)
    );
}

#[test]
fn disposition_is_validated() {
    let mut s = connected(DialMode::Power);
    s.handle_event(t(1), SessionEvent::CustomerHuman { attempt: id(1) })
        .unwrap();
    s.handle_event(t(2), SessionEvent::CustomerHungUp { attempt: id(1) })
        .unwrap();
    for bad in ["", "   ", &"x".repeat(MAX_DISPOSITION_LEN + 1)] {
        let err = s
            .handle_command(
                t(3),
                SessionCommand::Disposition {
                    disposition: bad.to_string(),
                },
            )
            .unwrap_err();
        assert_eq!(err, SessionError::BadDisposition);
    }
    assert_eq!(s.state(), SessionState::WrapUp);
}

#[test]
fn campaign_end_ends_every_live_session() {
    let mut s = connected(DialMode::Power);
    s.handle_event(t(1), SessionEvent::DialStarted { attempt: id(1) })
        .unwrap();
    drain(&mut s);
    s.handle_event(t(2), SessionEvent::CampaignEnded).unwrap();
    assert_eq!(
        work(&mut s),
        vec![
            SessionAction::CancelAttempt { attempt: id(1) },
            SessionAction::HangUpAgent
        ]
    );
    assert_eq!(s.state().as_str(), "ended");
    assert_eq!(s.state().to_string(), "ended (campaign-ended)");
}
