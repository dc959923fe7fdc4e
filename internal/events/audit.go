package events

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/baldurfleet/baldur/internal/domain"
)

// SubjectAuditHead carries the audit log's head, published by every writer of
// the log each time it appends (stream BALDUR_AUDIT). It is not under
// baldur.event: it has a stream of its own, kept longer and never purged.
const SubjectAuditHead = "baldur.audit.head"

// AuditSubjects are the subjects of stream BALDUR_AUDIT.
var AuditSubjects = []string{SubjectAuditHead}

// MaxAuditHeadBody bounds an audit head's body.
const MaxAuditHeadBody = 512

// auditHashLen is the length of an audit hash (HMAC-SHA256).
const auditHashLen = 32

// AuditHead is the body of a message on baldur.audit.head: the seq and hash
// of the newest audit record a writer appended, anchored outside PostgreSQL
// so that `baldur audit verify` sees a cut tail or a re-hashed log.
type AuditHead struct {
	// Seq is the record's sequence number, from domain.AuditGenesisSeq.
	Seq int64 `json:"seq"`
	// Hash is the record's hash, lower-case hex.
	Hash string `json:"hash"`
	// At is the record's time.
	At time.Time `json:"at"`
}

const payloadAuditHead = "audit head"

var auditHeadFields = objectFields{payloadAuditHead, []string{"seq", "hash", "at"}}

// NewAuditHead returns the head of record r.
func NewAuditHead(r domain.AuditRecord) AuditHead {
	return AuditHead{Seq: r.Seq, Hash: hex.EncodeToString(r.Hash), At: r.At.UTC()}
}

// Validate checks the head: a seq from domain.AuditGenesisSeq, a hash of 32
// bytes in lower-case hex, and a time.
func (h AuditHead) Validate() error {
	if h.Seq < domain.AuditGenesisSeq {
		return fmt.Errorf("%w: %s: seq %d, want at least %d", ErrInvalidValue, payloadAuditHead, h.Seq, domain.AuditGenesisSeq)
	}
	b, err := hex.DecodeString(h.Hash)
	if err != nil || len(b) != auditHashLen || hex.EncodeToString(b) != h.Hash {
		return fmt.Errorf("%w: %s: hash %q is not %d bytes of lower-case hex", ErrInvalidValue, payloadAuditHead, clip(h.Hash, 80), auditHashLen)
	}
	if h.At.IsZero() {
		return fmt.Errorf("%w: %s: at is required", ErrInvalidValue, payloadAuditHead)
	}
	return nil
}

// Head returns the head as the domain's (seq, hash); h must be valid.
func (h AuditHead) Head() domain.AuditHead {
	b, _ := hex.DecodeString(h.Hash)
	return domain.AuditHead{Seq: h.Seq, Hash: b}
}

// AuditHeadMsgID is the Nats-Msg-Id of the head of seq with hash: the same
// head published twice within the stream's duplicate window is stored once.
func AuditHeadMsgID(h AuditHead) string {
	return "audit-" + strconv.FormatInt(h.Seq, 10) + "-" + h.Hash[:min(len(h.Hash), 16)]
}

// NewAuditHeadMsg returns the message that anchors h.
func NewAuditHeadMsg(h AuditHead) (*nats.Msg, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidValue, payloadAuditHead, err)
	}
	msg := nats.NewMsg(SubjectAuditHead)
	msg.Header.Set(nats.MsgIdHdr, AuditHeadMsgID(h))
	msg.Data = body
	return msg, nil
}

// DecodeAuditHead strictly decodes and validates an audit head body.
func DecodeAuditHead(body []byte) (AuditHead, error) {
	var h AuditHead
	if err := checkSize(payloadAuditHead, body, MaxAuditHeadBody); err != nil {
		return h, err
	}
	if err := unmarshalStrict(body, &h, auditHeadFields, nil); err != nil {
		return AuditHead{}, err
	}
	if err := h.Validate(); err != nil {
		return AuditHead{}, err
	}
	return h, nil
}
