// Package admin serves the fleet's admin HTTP API and its live dashboard.
//
// The API is JSON over HTTP (docs/admin-api.md): reads of breaker state,
// governance, the dead-letter queue and the audit log, and the operator's
// writes — breaker commands, governance commands and dead-letter actions —
// which go through the fleet's one writer path (the operator client,
// internal/opsclient) and answer once the fleet has applied them. Writes need
// the admin token as a bearer token; reads are open.
//
// GET /api/events is a server-sent event stream: a snapshot on connect, then
// every change of a breaker (from a watch of the baldur_breakers bucket), of
// governance, the DLQ depth (polled) and the fleet's recent events (from the
// BALDUR_EVENTS stream). The dashboard at / is plain HTML, CSS and JavaScript
// embedded in the binary, with no build step and no external resources.
package admin
