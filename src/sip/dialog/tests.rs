//! Dialog unit tests: creation on both sides, in-dialog requests, CSeq rules, target refresh.

use super::*;
use crate::sip::transaction::SipMessage;
use bytes::Bytes;
use ezk_sip_types::StatusCode;

fn req(text: &str) -> Request {
    match crate::sip::message::parse_lenient(&Bytes::copy_from_slice(text.as_bytes())) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad request: {other:?}"),
    }
}

fn invite_sent() -> Request {
    req("INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
         From: \"Alice\" <sip:alice@example.org>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: dlg-1\r\n\
         CSeq: 10 INVITE\r\n\
         Contact: <sip:alice@10.0.0.1:5060>\r\n\r\n")
}

fn ok_with_routes(request: &Request, code: StatusCode) -> Response {
    let mut response = Response::for_request(code, request, Some("b1"));
    response.headers.insert(
        Name::RECORD_ROUTE,
        "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
    );
    response
        .headers
        .insert(Name::CONTACT, "<sip:bob@10.0.0.2:5070>");
    response
}

fn uri_text(uri: &SipUri) -> String {
    format!("{uri:?}")
}

#[test]
fn uac_dialog_from_2xx_reverses_record_route_and_builds_bye_and_ack() {
    let invite = invite_sent();
    let ok = ok_with_routes(&invite, StatusCode::OK);
    let mut dialog = Dialog::new_uac(&invite, &ok, None).expect("dialog");
    assert_eq!(dialog.state, DialogState::Confirmed);
    assert_eq!(
        dialog.id,
        DialogId {
            call_id: "dlg-1".into(),
            local_tag: "a1".into(),
            remote_tag: "b1".into()
        }
    );
    assert_eq!(
        DialogId::for_incoming_response(&ok).as_ref(),
        Some(&dialog.id)
    );
    assert!(!dialog.secure);
    assert_eq!(uri_text(&dialog.remote_target), "sip:bob@10.0.0.2:5070");
    assert_eq!(uri_text(dialog.next_hop()), "sip:p1.example.com;lr");

    let ack = dialog.create_ack();
    assert_eq!(
        key::cseq(&ack.headers).map(|c| (c.cseq, c.method)),
        Some((10, Method::ACK))
    );
    let bye = dialog.create_request(Method::BYE);
    assert_eq!(bye.line.method, Method::BYE);
    assert_eq!(uri_text(&bye.line.uri), "sip:bob@10.0.0.2:5070");
    let routes: Vec<String> = bye
        .headers
        .get::<Vec<Routing>>(Name::ROUTE)
        .expect("routes")
        .iter()
        .map(|r| uri_text(&r.uri.uri))
        .collect();
    assert_eq!(routes, ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]);
    assert_eq!(key::from_tag(&bye.headers).as_deref(), Some("a1"));
    assert_eq!(key::to_tag(&bye.headers).as_deref(), Some("b1"));
    assert_eq!(key::call_id(&bye.headers).as_deref(), Some("dlg-1"));
    assert_eq!(key::cseq(&bye.headers).map(|c| c.cseq), Some(11));
    assert!(
        !bye.headers.contains(&Name::VIA),
        "the transaction layer adds the Via"
    );
    // The BYE survives printing and parsing.
    assert!(crate::sip::message::parse_lenient(&bye.to_bytes()).is_ok());
}

#[test]
fn uas_dialog_keeps_record_route_order_and_numbers_its_own_requests() {
    let mut invite = invite_sent();
    invite
        .headers
        .insert(Name::RECORD_ROUTE, "<sip:p1.example.com;lr>");
    invite
        .headers
        .insert(Name::RECORD_ROUTE, "<sip:p2.example.com;lr>");
    let contact = Contact::new(ezk_sip_types::uri::NameAddr::uri(
        "sip:bob@10.0.0.2:5070".parse().expect("uri"),
    ));
    let mut dialog = Dialog::new_uas(&invite, "b1", Some(contact)).expect("dialog");
    assert_eq!(dialog.remote_cseq, Some(10));
    assert_eq!(uri_text(&dialog.remote_target), "sip:alice@10.0.0.1:5060");
    assert_eq!(uri_text(dialog.next_hop()), "sip:p1.example.com;lr");
    let bye = dialog.create_request(Method::BYE);
    assert_eq!(key::from_tag(&bye.headers).as_deref(), Some("b1"));
    assert_eq!(key::to_tag(&bye.headers).as_deref(), Some("a1"));
    assert_eq!(key::cseq(&bye.headers).map(|c| c.cseq), Some(1));
    let reinvite = dialog.create_request(Method::INVITE);
    assert_eq!(key::cseq(&reinvite.headers).map(|c| c.cseq), Some(2));
    assert!(reinvite.headers.contains(&Name::CONTACT));
    assert_eq!(
        key::cseq(&dialog.create_ack().headers).map(|c| c.cseq),
        Some(2)
    );
}

#[test]
fn in_dialog_requests_are_matched_and_sequenced() {
    let invite = invite_sent();
    let mut set = DialogSet::default();
    set.insert(Dialog::new_uas(&invite, "b1", None).expect("dialog"))
        .expect("insert");
    let in_dialog = |method: &str, cseq: u32, to_tag: &str| {
        req(&format!(
            "{method} sip:bob@10.0.0.2 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{cseq}\r\n\
             From: <sip:alice@example.org>;tag=a1\r\n\
             To: <sip:bob@example.com>;tag={to_tag}\r\n\
             Call-ID: dlg-1\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:alice@10.9.9.9:5999>\r\n\r\n"
        ))
    };
    // The ACK reuses the INVITE's number and is not sequenced.
    assert!(set.handle_request(&in_dialog("ACK", 10, "b1")).is_ok());
    // A lower CSeq is out of order: the TU answers 500.
    assert_eq!(
        set.handle_request(&in_dialog("INFO", 9, "b1")).err(),
        Some(DialogError::CSeqOutOfOrder { got: 9, remote: 10 })
    );
    // A re-INVITE refreshes the target.
    let dialog = set
        .handle_request(&in_dialog("INVITE", 11, "b1"))
        .expect("re-invite");
    assert_eq!(uri_text(&dialog.remote_target), "sip:alice@10.9.9.9:5999");
    assert_eq!(dialog.remote_cseq, Some(11));
    // Unknown tags: 481.
    assert_eq!(
        set.handle_request(&in_dialog("BYE", 12, "other")).err(),
        Some(DialogError::NoDialog)
    );
    let bye = in_dialog("BYE", 12, "b1");
    let id = set.handle_request(&bye).expect("bye").id.clone();
    assert!(set.remove(&id).is_some());
    assert!(set.is_empty());
}

#[test]
fn early_dialog_from_1xx_is_confirmed_by_2xx_and_2xx_refreshes_target() {
    let invite = invite_sent();
    let trying = Response::for_request(StatusCode::TRYING, &invite, None);
    assert_eq!(
        Dialog::new_uac(&invite, &trying, None).err(),
        Some(DialogError::NotDialogCreating(100))
    );
    // A 180 without Contact: the target stays the Request-URI until the 2xx.
    let ringing = Response::for_request(StatusCode::RINGING, &invite, Some("b1"));
    let mut set = DialogSet::new(1);
    let early = set
        .insert(Dialog::new_uac(&invite, &ringing, None).expect("early"))
        .expect("insert");
    assert_eq!(uri_text(&early.remote_target), "sip:bob@example.com");
    let id = DialogId::for_incoming_response(&ringing).expect("id");
    assert_eq!(set.get(&id).map(|d| d.state), Some(DialogState::Early));
    let mut ok = ok_with_routes(&invite, StatusCode::OK);
    ok.headers.remove(&Name::CONTACT);
    ok.headers.insert(Name::CONTACT, "<sip:bob@10.0.0.3:5080>");
    let dialog = set.handle_response(&ok).expect("matched");
    assert_eq!(dialog.state, DialogState::Confirmed);
    assert_eq!(dialog.route_set.len(), 2);
    assert_eq!(uri_text(&dialog.remote_target), "sip:bob@10.0.0.3:5080");
    // The set is bounded.
    let other = Response::for_request(StatusCode::OK, &invite, Some("b2"));
    let mut other = other;
    other.headers.insert(Name::CONTACT, "<sip:x@10.0.0.4>");
    assert_eq!(
        set.insert(Dialog::new_uac(&invite, &other, None).expect("fork"))
            .err(),
        Some(DialogError::Capacity(1))
    );
}
