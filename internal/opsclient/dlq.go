package opsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/baldurfleet/baldur/internal/events"
)

// DLQ calls the endpoint baldur.api.dlq.<op> with req encoded as JSON (nil
// sends {}) and decodes the answer into resp (nil ignores it). The request
// and reply types are internal/replay's: replay.DLQListRequest and
// replay.DLQListReply, and so on. An error answer is an *APIError (ErrNotFound
// for 404, ErrConflict for 409, ErrInvalid for 400, ErrDLQ otherwise); no
// replay-worker serving the endpoints is ErrNoReplayWorker. ctx bounds the
// request; give it a deadline (replays take as long as their deliveries).
func (c *Client) DLQ(ctx context.Context, op events.DLQOp, req, resp any) error {
	subject, err := events.APIDLQSubject(op)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	body := []byte("{}")
	if req != nil {
		if body, err = json.Marshal(req); err != nil {
			return fmt.Errorf("%w: encode the %s request: %v", ErrInvalid, op, err)
		}
	}
	msg, err := c.nc.RequestWithContext(ctx, subject, body)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w (%s)", ErrNoReplayWorker, subject)
	}
	if err != nil {
		return natsErr("request "+subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		n, _ := strconv.Atoi(code)
		text := msg.Header.Get(micro.ErrorHeader)
		var eb struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(msg.Data, &eb) == nil && eb.Error != "" {
			text = eb.Error
		}
		return &APIError{Op: string(op), Code: n, Message: text}
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("%w: decode the %s reply: %v", ErrDLQ, op, err)
	}
	return nil
}
