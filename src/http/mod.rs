//! HTTP control API (axum): `router(state)` builds the routes, `serve` runs them on a listener.

pub mod error;
