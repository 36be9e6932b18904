//! HTTP control API (axum): [`router`] builds every route from an [`AppState`], [`serve`] runs
//! them on a bound listener with graceful shutdown.
//!
//! - `/healthz` and `/metrics` need no key; everything under `/v1` needs
//!   `Authorization: Bearer <api key>` (keys from `trunkline apikey create`).
//! - `/v1/openapi.json` is generated from the handlers' annotations (utoipa).
//! - Errors are `{"error": {"code", "message", "details"}}` ([`error::ApiError`]).

pub mod auth;
pub mod calls;
pub mod campaigns;
pub mod conferences;
pub mod contact_lists;
pub mod error;
pub mod events;
pub mod inbound;
pub mod recordings;
pub mod registrations;
pub mod sessions;
pub mod state;

pub use state::AppState;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Requests taking longer than this get 408 (SSE streams are exempt: they are not timed).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The OpenAPI document of the `/v1` API.
#[derive(OpenApi)]
#[openapi(
    info(title = "trunkline", description = "Control API of the trunkline SIP/RTP media server"),
    paths(
        calls::create_call, calls::list_calls, calls::get_call, calls::hangup, calls::play, calls::stop_play, calls::dtmf,
        conferences::create_conference, conferences::list_conferences, conferences::get_conference, conferences::end_conference,
        conferences::add_participant, conferences::update_participant, conferences::remove_participant,
        conferences::play, conferences::stop_play, conferences::bridge,
        recordings::start_call_recording, recordings::start_conference_recording, recordings::pause, recordings::resume,
        recordings::stop, recordings::list_recordings, recordings::get_recording, recordings::audio, recordings::delete_recording,
        registrations::list_registrations,
        events::stream,
        inbound::list_missed_calls, inbound::add_opt_out, inbound::list_opt_outs, inbound::remove_opt_out,
        campaigns::create_campaign, campaigns::list_campaigns, campaigns::get_campaign, campaigns::update_campaign,
        campaigns::delete_campaign, campaigns::start, campaigns::pause, campaigns::resume, campaigns::complete,
        campaigns::archive, campaigns::attempts_csv, campaigns::stats,
        contact_lists::create_list, contact_lists::list_lists, contact_lists::get_list, contact_lists::update_list,
        contact_lists::delete_list, contact_lists::list_contacts, contact_lists::template, contact_lists::import_contacts,
        contact_lists::add_dnc, contact_lists::list_dnc, contact_lists::check_dnc, contact_lists::remove_dnc,
        contact_lists::import_dnc,
        sessions::create_session, sessions::get_session, sessions::list_sessions, sessions::pause, sessions::resume,
        sessions::next, sessions::dial, sessions::skip, sessions::stop, sessions::disposition,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail, calls::CreateCall, calls::CallResource, calls::RtpResource, calls::AmdResource,
        calls::CallList, calls::PlayRequest, calls::DtmfRequest, calls::Accepted, calls::AmdRequest, calls::OnMachineAction,
        conferences::CreateConference, conferences::ConferenceResource, conferences::ConferenceOptions,
        conferences::ParticipantResource, conferences::ConferenceList, conferences::JoinOnAnswer, conferences::AddParticipant,
        conferences::UpdateParticipant, conferences::ParticipantCreated, conferences::RoomPlayRequest, conferences::BridgeRequest,
        recordings::RecordingResource, recordings::RecordingList, recordings::StartCallRecording, recordings::StartConferenceRecording,
        inbound::MissedCallList, inbound::CreateOptOut, inbound::OptOutList, crate::store::MissedCallRow, crate::store::FollowupState,
        crate::store::OptOut,
        registrations::RegistrationResource, registrations::RegistrationList,
        campaigns::CampaignInput, campaigns::CampaignResource, campaigns::CampaignList,
        crate::store::CampaignStats,
        crate::campaign::CallerIds, crate::campaign::PrefixPool, crate::campaign::RetryDelays,
        contact_lists::CreateList, contact_lists::UpdateList, contact_lists::ContactListResource,
        contact_lists::ContactListList, contact_lists::ContactResource, contact_lists::ContactPageResource,
        contact_lists::ImportReport, crate::campaign::import::BadRow, contact_lists::AddDnc,
        contact_lists::DncResource, contact_lists::DncList, contact_lists::DncCheck, contact_lists::DncImportReport,
        sessions::CreateSession, sessions::DispositionInput, sessions::SessionResource, sessions::SessionCountsResource,
        sessions::SessionContact, sessions::SessionList, sessions::DialInput, sessions::PreviewResource,
        sessions::PreviewContact, sessions::PastAttempt,
    )),
    modifiers(&SecurityAddon),
    tags(
        (name = "calls", description = "Outbound calls and live call control"),
        (name = "conferences", description = "Conferences, participants, room playback and two-party bridges"),
        (name = "recordings", description = "Dual-channel call and conference recordings: control, download, deletion"),
        (name = "registrations", description = "Agents' SIP registrations (registrar bindings)"),
        (name = "events", description = "Live event stream"),
        (name = "inbound", description = "Missed inbound calls, their follow-up, and the follow-up opt-out list"),
        (name = "campaigns", description = "Dialer campaigns: settings, states, attempt export"),
        (name = "contact-lists", description = "Contact lists, CSV import with dry run, contacts"),
        (name = "dnc", description = "Do-not-call list, checked when a contact is claimed"),
        (name = "sessions", description = "Agent sessions of preview, power and predictive campaigns: the agent's leg, controls, dispositions"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let comps = openapi.components.get_or_insert_with(Default::default);
        comps.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route, ready for `axum::serve` or `tower::ServiceExt::oneshot`.
pub fn router(state: AppState) -> Router {
    // CSV imports take bodies up to `contact_lists::MAX_IMPORT_BYTES`; everything else
    // `MAX_BODY_BYTES`.
    let imports = contact_lists::import_router()
        .layer(RequestBodyLimitLayer::new(contact_lists::MAX_IMPORT_BYTES));
    let timed = Router::new()
        .merge(calls::router())
        .merge(conferences::router())
        .merge(recordings::router())
        .merge(inbound::router())
        .merge(registrations::router())
        .merge(campaigns::router())
        .merge(contact_lists::router())
        .merge(sessions::router())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .merge(imports)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    let v1 = Router::new()
        .merge(timed)
        .merge(events::router().layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES)))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .nest("/v1", v1)
        .fallback(|| async { error::ApiError::NotFound("route".into()) })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn metrics(axum::extract::State(st): axum::extract::State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// Serves the API on `listener` until `shutdown` resolves, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
