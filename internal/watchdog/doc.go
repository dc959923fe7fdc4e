// Package watchdog is the fleet's clock and janitor (DESIGN §6): one active
// instance fleet-wide, elected by a lease in the KV bucket baldur_partitions,
// runs its duties every tick.
//
// The watchdog never writes breaker state. For a breaker whose deadline passed
// it publishes a half_open command to baldur.control.<svc>, which the
// breaker-workers fold by their rules; the trigger says which deadline:
//
//   - recovery_timeout: an OPEN auto breaker past recovery_at → HALF_OPEN;
//   - stuck_half_open: a full half-open window older than
//     half_open_stuck_timeout starts afresh;
//   - manual_expired: a forced mode past its expiry → HALF_OPEN, mode auto;
//   - override_expired: a threshold override past its expiry is removed.
//
// It learns the deadlines from its own watch of baldur_breakers, decoded into
// a compact index, and remembers which command it sent for which breaker
// generation so that it does not send the same one every tick.
//
// Over PostgreSQL it rescues replays whose lease expired, flags entries past
// their domain's SLA (baldur.event.dlq.<svc>.sla_breached), expires entries
// past expires_at and purges old terminal entries. Other duties (error
// budget, cells) plug in through Duty.
//
// Every action is counted in Stats and is an event, an audit entry or both.
// See docs/watchdog.md.
package watchdog
