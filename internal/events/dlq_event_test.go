package events

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestDLQEventSubject(t *testing.T) {
	t.Parallel()
	subj, err := DLQEventSubject("payments", DLQSLABreached)
	require.NoError(t, err)
	require.Equal(t, "baldur.event.dlq.payments.sla_breached", subj)
	s, err := ParseSubject(subj)
	require.NoError(t, err)
	require.Equal(t, Subject{Kind: SubjectDLQEvent, Service: "payments", Name: "sla_breached"}, s)
	require.Equal(t, subj, s.String())
	require.Equal(t, TypeDLQSLABreached, TypeFor(s))
	require.Equal(t, "event.dlq", s.Kind.String())

	_, err = DLQEventSubject("payments", "late")
	require.ErrorIs(t, err, ErrInvalidSubject)
	_, err = DLQEventSubject("-bad", DLQSLABreached)
	require.ErrorIs(t, err, ErrInvalidName)
	_, err = ParseSubject("baldur.event.dlq.payments.late")
	require.ErrorIs(t, err, ErrInvalidSubject)
	require.ErrorContains(t, err, `unknown dead-letter event "late"`)
}

func TestDLQEventRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	ev := SLABreachedEvent{Service: "payments", EntryID: uuid.NewString(), Domain: domain.DomainNotification, SLAHours: 4, At: at}
	subj := must(DLQEventSubject("payments", DLQSLABreached))
	msg, err := NewMsg(subj, NewEnvelopeRandomID(TypeDLQSLABreached, "watchdog-1", at), ev)
	require.NoError(t, err)
	m, err := Decode(msg.Subject, msg.Header, msg.Data)
	require.NoError(t, err)
	require.Equal(t, ev, m.Payload)

	other := must(DLQEventSubject("orders", DLQSLABreached))
	_, err = NewMsg(other, NewEnvelopeRandomID(TypeDLQSLABreached, "w", at), ev)
	require.NoError(t, err, "NewMsg checks the body, Decode checks it against the subject")
	msg.Subject = other
	_, err = Decode(other, msg.Header, msg.Data)
	require.ErrorIs(t, err, ErrTypeMismatch)
}

func TestSLABreachedEventRefuses(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	ok := SLABreachedEvent{Service: "payments", EntryID: "e1", Domain: domain.DomainCustom, SLAHours: 24, At: at}
	for _, tc := range []struct {
		name  string
		edit  func(*SLABreachedEvent)
		field string
	}{
		{"service", func(e *SLABreachedEvent) { e.Service = "" }, "service"},
		{"entry", func(e *SLABreachedEvent) { e.EntryID = "" }, "entry_id"},
		{"domain", func(e *SLABreachedEvent) { e.Domain = "payments" }, "domain"},
		{"hours low", func(e *SLABreachedEvent) { e.SLAHours = 0 }, "sla_hours"},
		{"hours high", func(e *SLABreachedEvent) { e.SLAHours = 721 }, "sla_hours"},
		{"at", func(e *SLABreachedEvent) { e.At = time.Time{} }, "at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := ok
			tc.edit(&e)
			err := e.Validate()
			require.Error(t, err)
			require.ErrorContains(t, err, tc.field)
		})
	}
	_, err := DecodeSLABreachedEvent([]byte(`{"service":"payments","entry_id":"e1","domain":"custom","sla_hours":24,"at":"2026-03-14T15:09:26Z","extra":1}`))
	require.ErrorIs(t, err, ErrUnknownField)
}
