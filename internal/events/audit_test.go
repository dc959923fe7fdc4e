package events_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

func TestAuditHead_RoundTrip(t *testing.T) {
	t.Parallel()
	rec := domain.AuditRecord{Seq: 42, At: time.Date(2026, 12, 3, 7, 0, 0, 123000, time.UTC), Hash: bytes.Repeat([]byte{0xab}, 32)}
	h := events.NewAuditHead(rec)
	msg, err := events.NewAuditHeadMsg(h)
	require.NoError(t, err)
	require.Equal(t, events.SubjectAuditHead, msg.Subject)
	require.Equal(t, "audit-42-abababababababab", msg.Header.Get(nats.MsgIdHdr))
	back, err := events.DecodeAuditHead(msg.Data)
	require.NoError(t, err)
	require.Equal(t, h, back)
	require.Equal(t, domain.AuditHead{Seq: 42, Hash: rec.Hash}, back.Head())
}

func TestAuditHead_Refuses(t *testing.T) {
	t.Parallel()
	hash := fmt.Sprintf("%064x", 7)
	for name, body := range map[string]string{
		"seq zero":        `{"seq":0,"hash":"` + hash + `","at":"2026-12-03T07:00:00Z"}`,
		"short hash":      `{"seq":1,"hash":"abcd","at":"2026-12-03T07:00:00Z"}`,
		"upper-case hash": `{"seq":1,"hash":"` + fmt.Sprintf("%064X", 0xabc) + `","at":"2026-12-03T07:00:00Z"}`,
		"no time":         `{"seq":1,"hash":"` + hash + `"}`,
		"unknown field":   `{"seq":1,"hash":"` + hash + `","at":"2026-12-03T07:00:00Z","x":1}`,
		"not an object":   `[1]`,
		"too large":       `{"seq":1,"hash":"` + hash + `","at":"2026-12-03T07:00:00Z"}` + string(bytes.Repeat([]byte(" "), events.MaxAuditHeadBody)),
	} {
		_, err := events.DecodeAuditHead([]byte(body))
		require.Error(t, err, name)
	}
	_, err := events.NewAuditHeadMsg(events.AuditHead{Seq: 1, Hash: "x", At: time.Now()})
	require.ErrorIs(t, err, events.ErrInvalidValue, "refused on the way out too")
	ok, err := json.Marshal(events.AuditHead{Seq: 1, Hash: hash, At: time.Unix(0, 0).UTC()})
	require.NoError(t, err)
	_, err = events.DecodeAuditHead(ok)
	require.NoError(t, err)
}
