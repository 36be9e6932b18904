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
        .handle_command(
            t(7),
            SessionCommand::Dial {
                contact: Some(id(9)),
            },
        )
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

/// A preview session shown contact `c` under attempt `a` (after `next`).
fn shown(s: &mut Session, at: i64, c: u128, a: u128) {
    s.handle_command(t(at), SessionCommand::Next).unwrap();
    assert_eq!(work(s), vec![SessionAction::ClaimNext]);
    assert_eq!(
        s.state(),
        SessionState::Available,
        "asking does not change the state"
    );
    s.handle_event(
        t(at),
        SessionEvent::ContactShown {
            contact: id(c),
            attempt: id(a),
        },
    )
    .unwrap();
    assert_eq!(
        work(s),
        vec![SessionAction::ShowContact {
            contact: id(c),
            attempt: id(a)
        }]
    );
    assert_eq!(
        s.preview(),
        Some(Preview {
            contact: id(c),
            attempt: id(a)
        })
    );
}

#[test]
fn preview_next_dial_on_call_wrap_up_available() {
    let mut s = connected(DialMode::Preview);
    shown(&mut s, 1, 5, 6);
    assert_eq!(s.state(), SessionState::Available);
    // Asking again while one is shown is refused, and changes nothing.
    let err = s.handle_command(t(2), SessionCommand::Next).unwrap_err();
    assert_eq!(err, SessionError::ContactAlreadyShown(id(5)));
    assert!(err.is_conflict());
    assert!(err.to_string().contains("dial it or skip it"), "{err}");
    // Dialling another contact than the one shown is refused.
    let err = s
        .handle_command(
            t(3),
            SessionCommand::Dial {
                contact: Some(id(99)),
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        SessionError::NotTheShownContact {
            given: id(99),
            shown: id(5)
        }
    );
    assert!(err.is_conflict());
    assert!(s.preview().is_some());
    // Dialling it (named or not) places the call under the claimed attempt.
    s.handle_command(
        t(4),
        SessionCommand::Dial {
            contact: Some(id(5)),
        },
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Dialing);
    assert_eq!(s.preview(), None);
    assert_eq!(s.dialing(), &[id(6)]);
    assert_eq!(
        work(&mut s),
        vec![SessionAction::PlaceCall {
            contact: id(5),
            attempt: id(6)
        }]
    );
    s.handle_event(t(10), SessionEvent::CustomerHuman { attempt: id(6) })
        .unwrap();
    assert_eq!(s.state(), SessionState::OnCall);
    assert_eq!(
        work(&mut s),
        vec![SessionAction::BridgeCustomer { attempt: id(6) }]
    );
    s.handle_event(t(70), SessionEvent::CustomerHungUp { attempt: id(6) })
        .unwrap();
    assert_eq!(s.state(), SessionState::WrapUp);
    s.handle_command(
        t(80),
        SessionCommand::Disposition {
            disposition: "callback".into(),
        },
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Available);
    assert_eq!(
        work(&mut s),
        vec![SessionAction::SaveDisposition {
            attempt: id(6),
            disposition: "callback".into()
        }]
    );
    assert_eq!(s.counts().calls, 1);
    assert_eq!(s.counts().talk, Duration::from_secs(60));
    // The next contact can be asked for again.
    shown(&mut s, 90, 7, 8);
}

#[test]
fn preview_dial_not_answered_is_available_again() {
    let mut s = connected(DialMode::Preview);
    shown(&mut s, 1, 5, 6);
    s.handle_command(t(2), SessionCommand::Dial { contact: None })
        .unwrap();
    drain(&mut s);
    s.handle_event(
        t(30),
        SessionEvent::DialEnded {
            attempt: id(6),
            outcome: AttemptOutcome::NoAnswer,
        },
    )
    .unwrap();
    assert_eq!(s.state(), SessionState::Available);
    assert_eq!(s.preview(), None);
    assert_eq!(s.counts().calls, 0);
}

#[test]
fn preview_agent_takes_only_the_customer_it_dialled() {
    let mut s = connected(DialMode::Preview);
    shown(&mut s, 1, 5, 6);
    // A person on some other attempt (not dialled by this agent) is not taken, even while
    // available, and neither is the shown contact's attempt before it is dialled.
    for attempt in [id(40), id(6)] {
        let err = s
            .handle_event(t(2), SessionEvent::CustomerHuman { attempt })
            .unwrap_err();
        assert_eq!(err, SessionError::UnknownAttempt(attempt));
    }
    assert_eq!(s.state(), SessionState::Available);
    assert!(s.preview().is_some());
}

#[test]
fn preview_skip_pause_stop_release_the_shown_contact() {
    let mut s = connected(DialMode::Preview);
    shown(&mut s, 1, 5, 6);
    s.handle_command(t(2), SessionCommand::Skip).unwrap();
    assert_eq!(
        work(&mut s),
        vec![SessionAction::ReleaseContact {
            contact: id(5),
            attempt: id(6)
        }]
    );
    assert_eq!(s.state(), SessionState::Available);
    assert_eq!(s.preview(), None);
    assert_eq!(s.counts().skipped, 1);
    // Nothing shown: nothing to skip, nothing to dial.
    let err = s.handle_command(t(3), SessionCommand::Skip).unwrap_err();
    assert_eq!(err, SessionError::NoContactShown { command: "skip" });
    assert!(err.is_conflict());
    let err = s
        .handle_command(t(3), SessionCommand::Dial { contact: None })
        .unwrap_err();
    assert_eq!(err, SessionError::NoContactShown { command: "dial" });
    assert_eq!(
        err.to_string(),
        "cannot dial: no contact is shown; ask for the next contact first \
         (POST /v1/sessions/{id}/next)"
    );

    shown(&mut s, 4, 7, 8);
    s.handle_command(t(5), SessionCommand::Pause).unwrap();
    assert_eq!(
        drain(&mut s),
        vec![
            SessionAction::ReleaseContact {
                contact: id(7),
                attempt: id(8)
            },
            SessionAction::StateChanged {
                from: SessionState::Available,
                to: SessionState::Paused
            }
        ],
        "released before the state change"
    );
    let err = s.handle_command(t(6), SessionCommand::Next).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot next while paused: next is allowed when available"
    );
    s.handle_command(t(7), SessionCommand::Resume).unwrap();
    assert_eq!(s.state(), SessionState::Available);
    drain(&mut s);

    shown(&mut s, 8, 9, 10);
    s.handle_command(t(9), SessionCommand::Stop).unwrap();
    assert_eq!(
        work(&mut s),
        vec![
            SessionAction::ReleaseContact {
                contact: id(9),
                attempt: id(10)
            },
            SessionAction::HangUpAgent
        ]
    );
    assert_eq!(s.state(), SessionState::Ended(SessionEndReason::Stopped));
}

#[test]
fn preview_agent_hanging_up_releases_the_shown_contact() {
    let mut s = connected(DialMode::Preview);
    shown(&mut s, 1, 5, 6);
    s.handle_event(t(2), SessionEvent::AgentHungUp).unwrap();
    assert_eq!(
        work(&mut s),
        vec![SessionAction::ReleaseContact {
            contact: id(5),
            attempt: id(6)
        }]
    );
    assert_eq!(
        s.state(),
        SessionState::Ended(SessionEndReason::AgentHangup)
    );
}

#[test]
fn next_and_dial_only_in_preview_mode() {
    for mode in [DialMode::Power, DialMode::Predictive] {
        let mut p = connected(mode);
        for cmd in [SessionCommand::Next, SessionCommand::Dial { contact: None }] {
            let name = cmd.name();
            let err = p.handle_command(t(1), cmd).unwrap_err();
            assert_eq!(
                err,
                SessionError::NotPreview {
                    command: name,
                    mode
                }
            );
            assert!(err.is_conflict());
            assert_eq!(
                err.to_string(),
                format!(
                    "{name} is only for preview sessions; this session's campaign dials in \
                     {mode} mode"
                )
            );
        }
        assert!(work(&mut p).is_empty());
        // A contact shown to a session of another mode is refused (the driver releases it).
        let err = p
            .handle_event(
                t(2),
                SessionEvent::ContactShown {
                    contact: id(1),
                    attempt: id(2),
                },
            )
            .unwrap_err();
        assert!(matches!(err, SessionError::NotPreview { .. }));
    }
    // Preview mode keeps power's rule for skip in other states, and refuses next off
    // `available`.
    let mut connecting = Session::new(t(0), DialMode::Preview);
    drain(&mut connecting);
    let err = connecting
        .handle_command(t(1), SessionCommand::Next)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot next while connecting: next is allowed when available"
    );
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
