package events

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

// TestIdleArchive checks the wire forms of idle archival: the watchdog's
// archive command with trigger idle and its idle period as ttl, and the
// archived event of a breaker of any name.
func TestIdleArchive(t *testing.T) {
	t.Parallel()
	c, err := DecodeControl([]byte(`{"action":"archive","actor":"wd-1","reason":"no activity since 2026-03-07","trigger":"idle","ttl":"168h"}`))
	require.NoError(t, err)
	require.Equal(t, domain.TriggerIdle, c.Trigger)
	require.Equal(t, 168*time.Hour, c.TTL.D())
	require.NoError(t, ValidateCommand(c.Command("id-1")))

	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	for _, ev := range []ArchivedEvent{
		{Service: "payments", State: domain.StateClosed, Mode: domain.ModeAuto, Generation: 3,
			Trigger: domain.TriggerIdle, Actor: "wd-1", Reason: "idle", At: at},
		{Service: "payments--eu2", Cell: "eu2", State: domain.StateClosed, Mode: domain.ModeAuto,
			Trigger: domain.TriggerIdle, Actor: "wd-1", Reason: "idle", At: at},
	} {
		require.NoError(t, ev.Validate(), ev.Service)
		msg, err := NewMsg("baldur.event.breaker."+ev.Service+".archived", NewArchivedEnvelope("bw-1", ev), ev)
		require.NoError(t, err)
		back, err := DecodeArchivedEvent(msg.Data)
		require.NoError(t, err)
		require.Equal(t, ev, back)
	}
}
