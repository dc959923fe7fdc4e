// Package opsclient is the operator's client of a Baldur fleet: the one
// writer path every operator tool uses (the baldur CLI and the admin HTTP
// API).
//
// Writes go where the fleet expects them: breaker commands are published to
// baldur.control.<svc> and governance commands to baldur.governance, and the
// client waits until a worker has applied them (the breaker's
// last_command_id, or the governance key showing the new value) or refused
// them (a rejected event carrying the command's ce-id); dead-letter actions
// are requests to the baldur-dlq micro endpoints, which audit them; config
// values are validated with the domain's parsers before a compare-and-set
// write to baldur_config. Reads come from the KV buckets, the DLQ endpoints
// and, for the audit log, PostgreSQL through a store the caller gives.
//
// Every error wraps one of the sentinels in errors.go, so a caller maps it to
// an exit code or an HTTP status with errors.Is.
package opsclient
