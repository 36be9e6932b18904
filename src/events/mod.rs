//! Events: the event log, the durable webhook outbox with signed delivery, SSE fan-out.
