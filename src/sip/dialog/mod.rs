//! SIP dialogs (pure), RFC 3261 sec. 12 (dialogs), 13-15 (INVITE, re-INVITE, BYE).
//!
//! A [`Dialog`] holds the state of sec. 12: Call-ID, local and remote tags, local and remote
//! CSeq, local and remote URIs, the remote target (from Contact) and the route set (from
//! Record-Route: in order at the UAS, reversed at the UAC). It builds in-dialog requests
//! ([`Dialog::create_request`]: BYE, re-INVITE, INFO, UPDATE, and the ACK for a 2xx with the
//! INVITE's CSeq number), checks the CSeq of incoming ones and applies target refreshes.
//! [`DialogSet`] keeps dialogs keyed by [`DialogId`] (Call-ID, local tag, remote tag), bounded.
//!
//! The dialog layer neither sends nor times anything: the TU hands its requests to the
//! transaction layer (`sip::transaction`), and ACKs for 2xx go through
//! `TransactionLayer::send_stateless_request`.
//!
//! # Deliberate departures
//!
//! - Loose routing only (sec. 12.2.1.1, first case): the Request-URI is always the remote
//!   target and the route set goes in Route headers as is. Strict routing (a first route without
//!   `lr`, RFC 2543 proxies) is out of scope: such a route set is used as if it were loose.
//! - The secure flag is always off (no `sips:`/TLS here).
//! - The local CSeq of a UAS dialog starts at 1 for its first request (sec. 12.1.1 allows any
//!   value below 2^31).

#[cfg(test)]
mod tests;

use crate::sip::transaction::key;
use crate::sip::transaction::{Request, Response};
use ezk_sip_types::Method;
use ezk_sip_types::Name;
use ezk_sip_types::header::typed::{CSeq, CallID, Contact, FromTo, MaxForwards, Routing};
use ezk_sip_types::uri::SipUri;
use std::collections::HashMap;

/// Default cap on dialogs in one [`DialogSet`].
pub const MAX_DIALOGS: usize = 65_536;

/// Identifies a dialog (sec. 12): Call-ID plus local and remote tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag (From tag at the UAC, To tag at the UAS).
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog an incoming in-dialog request belongs to (local tag = To tag), or
    /// `None` if the request is outside any dialog (no To tag) or lacks headers.
    pub fn for_incoming_request(request: &Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: key::call_id(&request.headers)?,
            local_tag: key::to_tag(&request.headers)?,
            remote_tag: key::from_tag(&request.headers)?,
        })
    }

    /// The id of the dialog an incoming response belongs to (local tag = From tag).
    pub fn for_incoming_response(response: &Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: key::call_id(&response.headers)?,
            local_tag: key::from_tag(&response.headers)?,
            remote_tag: key::to_tag(&response.headers)?,
        })
    }
}

/// Early (created by a 1xx with a To tag) or confirmed (by a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Why a dialog could not be created or a request not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header needed for the dialog is missing or malformed.
    #[error("message lacks a usable {0} header")]
    MissingHeader(&'static str),
    /// The response cannot create a dialog (not 101-299, or no To tag).
    #[error("response {0} does not create a dialog")]
    NotDialogCreating(u16),
    /// No dialog matches: the TU answers 481.
    #[error("no matching dialog")]
    NoDialog,
    /// The request's CSeq is lower than the remote CSeq (sec. 12.2.2): the TU answers 500.
    #[error("cseq {got} is lower than the remote cseq {remote}")]
    CSeqOutOfOrder {
        /// The request's CSeq number.
        got: u32,
        /// The dialog's remote CSeq.
        remote: u32,
    },
    /// The dialog set is full.
    #[error("dialog limit of {0} reached")]
    Capacity(usize),
}

/// One dialog (sec. 12.1).
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Call-ID and tags.
    pub id: DialogId,
    /// Early or confirmed.
    pub state: DialogState,
    /// Our From (at the UAC) or To (at the UAS) header, with our tag.
    pub local: FromTo,
    /// The peer's header, with its tag.
    pub remote: FromTo,
    /// CSeq of the last request we sent in the dialog.
    pub local_cseq: u32,
    /// CSeq of the last request the peer sent, `None` until it sends one.
    pub remote_cseq: Option<u32>,
    /// CSeq number of our last INVITE, used by the ACK for its 2xx.
    pub invite_cseq: u32,
    /// Where in-dialog requests go: the peer's Contact URI.
    pub remote_target: SipUri,
    /// The Route headers of in-dialog requests, in sending order.
    pub route_set: Vec<Routing>,
    /// Our Contact, put on target-refresh requests (INVITE, UPDATE).
    pub local_contact: Option<Contact>,
    /// Always false: no TLS here.
    pub secure: bool,
}

impl Dialog {
    /// The UAC side (sec. 12.1.2): from the INVITE we sent and a 2xx, or a 101-199 with a To
    /// tag (an early dialog). Route set = the response's Record-Route, reversed. Remote target
    /// = the response's Contact or, leniently, the INVITE's Request-URI when it has none (a 2xx
    /// that later brings a Contact replaces it).
    pub fn new_uac(
        invite: &Request,
        response: &Response,
        local_contact: Option<Contact>,
    ) -> Result<Dialog, DialogError> {
        let code = response.code();
        if !(101..=299).contains(&code) {
            return Err(DialogError::NotDialogCreating(code));
        }
        let remote = key::to(&response.headers).ok_or(DialogError::MissingHeader("To"))?;
        let remote_tag = remote
            .tag
            .as_ref()
            .map(|t| t.to_string())
            .ok_or(DialogError::NotDialogCreating(code))?;
        let local = key::from(&invite.headers).ok_or(DialogError::MissingHeader("From"))?;
        let local_tag = local
            .tag
            .as_ref()
            .map(|t| t.to_string())
            .ok_or(DialogError::MissingHeader("From tag"))?;
        let call_id = key::call_id(&invite.headers).ok_or(DialogError::MissingHeader("Call-ID"))?;
        let cseq = key::cseq(&invite.headers).ok_or(DialogError::MissingHeader("CSeq"))?;
        let mut route_set = record_route(&response.headers);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            state: if code >= 200 {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local,
            remote,
            local_cseq: cseq.cseq,
            remote_cseq: None,
            invite_cseq: cseq.cseq,
            // A response without Contact (common on 180) leaves the Request-URI as target.
            remote_target: contact_uri(&response.headers)
                .unwrap_or_else(|| invite.line.uri.clone()),
            route_set,
            local_contact,
            secure: false,
        })
    }

    /// The UAS side (sec. 12.1.1): from the INVITE we received and the To tag we put on our
    /// responses. Route set = the request's Record-Route, in order.
    pub fn new_uas(
        invite: &Request,
        local_tag: &str,
        local_contact: Option<Contact>,
    ) -> Result<Dialog, DialogError> {
        let remote = key::from(&invite.headers).ok_or(DialogError::MissingHeader("From"))?;
        let remote_tag = remote
            .tag
            .as_ref()
            .map(|t| t.to_string())
            .ok_or(DialogError::MissingHeader("From tag"))?;
        let mut local = key::to(&invite.headers).ok_or(DialogError::MissingHeader("To"))?;
        local.tag = Some(local_tag.into());
        let call_id = key::call_id(&invite.headers).ok_or(DialogError::MissingHeader("Call-ID"))?;
        let cseq = key::cseq(&invite.headers).ok_or(DialogError::MissingHeader("CSeq"))?;
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_string(),
                remote_tag,
            },
            state: DialogState::Confirmed,
            local,
            remote,
            local_cseq: 0,
            remote_cseq: Some(cseq.cseq),
            invite_cseq: 0,
            remote_target: contact_uri(&invite.headers)
                .ok_or(DialogError::MissingHeader("Contact"))?,
            route_set: record_route(&invite.headers),
            local_contact,
            secure: false,
        })
    }

    /// The URI the next in-dialog request is physically sent to (the first route, or the
    /// remote target): the TU resolves it to a socket address for the transaction layer.
    pub fn next_hop(&self) -> &SipUri {
        match self.route_set.first() {
            Some(route) => &route.uri.uri,
            None => &self.remote_target,
        }
    }

    /// Builds an in-dialog request (sec. 12.2.1.1) with loose routing: Request-URI = remote
    /// target, Route = route set, From/To/Call-ID of the dialog, Max-Forwards 70, and our
    /// Contact on INVITE and UPDATE. The CSeq is the next local one, except for ACK, which
    /// takes the number of the last INVITE (sec. 13.2.2.4) and does not advance it. No Via: the
    /// transaction layer adds it.
    pub fn create_request(&mut self, method: Method) -> Request {
        let cseq = if method == Method::ACK {
            self.invite_cseq
        } else {
            self.local_cseq = self.local_cseq.wrapping_add(1);
            if method == Method::INVITE {
                self.invite_cseq = self.local_cseq;
            }
            self.local_cseq
        };
        let mut request = Request::new(method.clone(), self.remote_target.clone());
        for route in &self.route_set {
            request.headers.insert_type(Name::ROUTE, route);
        }
        request.headers.insert_type(Name::FROM, &self.local);
        request.headers.insert_type(Name::TO, &self.remote);
        request
            .headers
            .insert_named(&CallID::new(self.id.call_id.clone()));
        request
            .headers
            .insert_named(&CSeq::new(cseq, method.clone()));
        request.headers.insert_named(&MaxForwards(70));
        if method == Method::INVITE || method == Method::UPDATE {
            if let Some(contact) = &self.local_contact {
                request.headers.insert_named(contact);
            }
        }
        request
    }

    /// The ACK for the 2xx to our last INVITE (same as `create_request(Method::ACK)`).
    pub fn create_ack(&mut self) -> Request {
        self.create_request(Method::ACK)
    }

    /// Checks an incoming in-dialog request (sec. 12.2.2): a CSeq lower than the remote CSeq is
    /// refused (the TU answers 500); otherwise the remote CSeq advances and a target refresh
    /// (INVITE, UPDATE) with a Contact replaces the remote target. ACK and CANCEL are not
    /// sequenced (they reuse the INVITE's number).
    pub fn handle_request(&mut self, request: &Request) -> Result<(), DialogError> {
        let method = &request.line.method;
        if *method == Method::ACK || *method == Method::CANCEL {
            return Ok(());
        }
        let cseq = key::cseq(&request.headers).ok_or(DialogError::MissingHeader("CSeq"))?;
        if let Some(remote) = self.remote_cseq {
            if cseq.cseq < remote {
                return Err(DialogError::CSeqOutOfOrder {
                    got: cseq.cseq,
                    remote,
                });
            }
        }
        self.remote_cseq = Some(cseq.cseq);
        if is_target_refresh(method) {
            if let Some(target) = contact_uri(&request.headers) {
                self.remote_target = target;
            }
        }
        Ok(())
    }

    /// Applies a response to one of our requests in this dialog: a 2xx confirms an early
    /// dialog (recomputing the route set from its Record-Route), and a 2xx to a target refresh
    /// replaces the remote target with its Contact (sec. 12.2.1.2).
    pub fn handle_response(&mut self, response: &Response) {
        let code = response.code();
        let Some(cseq) = key::cseq(&response.headers) else {
            return;
        };
        if !(200..=299).contains(&code) {
            return;
        }
        if self.state == DialogState::Early && cseq.method == Method::INVITE {
            self.state = DialogState::Confirmed;
            let mut route_set = record_route(&response.headers);
            route_set.reverse();
            self.route_set = route_set;
        }
        if is_target_refresh(&cseq.method) {
            if let Some(target) = contact_uri(&response.headers) {
                self.remote_target = target;
            }
        }
    }
}

/// INVITE and UPDATE refresh the remote target (sec. 12.2, RFC 3311).
fn is_target_refresh(method: &Method) -> bool {
    *method == Method::INVITE || *method == Method::UPDATE
}

/// The URI of the first Contact.
fn contact_uri(headers: &ezk_sip_types::Headers) -> Option<SipUri> {
    headers
        .get_named::<Contact>()
        .ok()
        .map(|contact| contact.uri.uri)
}

/// All Record-Route values in order (several headers and comma lists alike).
fn record_route(headers: &ezk_sip_types::Headers) -> Vec<Routing> {
    headers
        .get::<Vec<Routing>>(Name::RECORD_ROUTE)
        .unwrap_or_default()
}

/// Dialogs keyed by [`DialogId`], at most `capacity` of them.
#[derive(Debug)]
pub struct DialogSet {
    dialogs: HashMap<DialogId, Dialog>,
    capacity: usize,
}

impl Default for DialogSet {
    fn default() -> Self {
        DialogSet::new(MAX_DIALOGS)
    }
}

impl DialogSet {
    /// An empty set holding at most `capacity` dialogs.
    pub fn new(capacity: usize) -> Self {
        DialogSet {
            dialogs: HashMap::new(),
            capacity,
        }
    }

    /// Number of dialogs.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// Adds (or replaces) a dialog; refused when full.
    pub fn insert(&mut self, dialog: Dialog) -> Result<&mut Dialog, DialogError> {
        if self.dialogs.len() >= self.capacity && !self.dialogs.contains_key(&dialog.id) {
            return Err(DialogError::Capacity(self.capacity));
        }
        let id = dialog.id.clone();
        Ok(self.dialogs.entry(id).insert_entry(dialog).into_mut())
    }

    /// The dialog with this id.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    /// The dialog with this id, mutable.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.get_mut(id)
    }

    /// Removes a dialog (after BYE).
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.dialogs.remove(id)
    }

    /// Matches an incoming in-dialog request and runs [`Dialog::handle_request`] on it:
    /// [`DialogError::NoDialog`] means 481, [`DialogError::CSeqOutOfOrder`] means 500.
    pub fn handle_request(&mut self, request: &Request) -> Result<&mut Dialog, DialogError> {
        let id = DialogId::for_incoming_request(request).ok_or(DialogError::NoDialog)?;
        let dialog = self.dialogs.get_mut(&id).ok_or(DialogError::NoDialog)?;
        dialog.handle_request(request)?;
        Ok(dialog)
    }

    /// Matches a response to one of our in-dialog requests and runs
    /// [`Dialog::handle_response`] on it; `None` when no dialog matches.
    pub fn handle_response(&mut self, response: &Response) -> Option<&mut Dialog> {
        let id = DialogId::for_incoming_response(response)?;
        let dialog = self.dialogs.get_mut(&id)?;
        dialog.handle_response(response);
        Some(dialog)
    }
}
