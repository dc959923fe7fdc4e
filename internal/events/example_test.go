package events_test

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/events"
)

// A node publishes the outcomes it saw since its last flush: build the
// subject, the CloudEvents headers and the body, then hand the message to
// JetStream (js.PublishMsg(ctx, msg)).
func Example_publishOutcome() {
	subject, err := events.OutcomeSubject("payments")
	if err != nil {
		panic(err)
	}
	id := uuid.MustParse("0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f")
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	env := events.NewEnvelope(events.TypeOutcome, id, "payments-7f9c-2", at)

	msg, err := events.NewMsg(subject, env, events.OutcomeReport{
		Successes: 120, Failures: 3, SlowCalls: 1, TrailingFailures: 2,
		FailureTypes: map[string]int64{"TIMEOUT": 2, "HTTP_503": 1},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(msg.Subject)
	for _, k := range []string{"ce-specversion", "ce-type", "ce-id", "ce-source", "ce-time", "content-type", "Nats-Msg-Id"} {
		fmt.Printf("%s: %s\n", k, msg.Header.Get(k))
	}
	fmt.Println(string(msg.Data))
	// Output:
	// baldur.outcome.payments
	// ce-specversion: 1.0
	// ce-type: baldur.outcome.v1
	// ce-id: 0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f
	// ce-source: payments-7f9c-2
	// ce-time: 2026-03-14T15:09:26Z
	// content-type: application/json
	// Nats-Msg-Id: 0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f
	// {"successes":120,"failures":3,"slow_calls":1,"trailing_failures":2,"failure_types":{"HTTP_503":1,"TIMEOUT":2}}
}

// A worker decodes what it consumed. A refused message is terminated, and its
// error becomes the Rejected event published on baldur.event.rejected.<kind>.
func ExampleDecode_refused() {
	id := uuid.MustParse("0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f")
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	h := events.NewEnvelope(events.TypeOutcome, id, "payments-7f9c-2", at).Header()
	body := []byte(`{"successes": 5, "failures": 3, "trailing_failures": 5}`)

	_, err := events.Decode("baldur.outcome.payments", h, body)
	fmt.Println(err)

	r := events.NewRejected("baldur.outcome.payments", h, len(body), err, at)
	subject, _ := events.RejectedSubject(r.Kind)
	fmt.Println(subject, r.Code)
	// Output:
	// outcome report: field "trailing_failures" is 5, more than failures (3): events: invalid value
	// baldur.event.rejected.outcome invalid_value
}

func ExampleValidateServiceName() {
	fmt.Println(events.ValidateServiceName("payments-eu"))
	fmt.Println(events.ValidateServiceName("payments.eu"))
	// Output:
	// <nil>
	// events: invalid service name: name "payments.eu" has the character '.' at position 8; only A-Z, a-z, 0-9, '_' and '-' are allowed
}

func ExampleParseSubject() {
	s, err := events.ParseSubject("baldur.event.breaker.payments.opened")
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Kind, s.Service, s.Name)
	// Output:
	// event.breaker payments opened
}
