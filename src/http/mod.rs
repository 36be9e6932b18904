//! HTTP control API (axum): `router(state)` and `serve`.
