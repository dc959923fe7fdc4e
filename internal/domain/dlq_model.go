package domain

import (
	"encoding/json"
	"time"
)

// DLQStatus is a dead-letter entry's status (the seed's FailedOperation statuses).
type DLQStatus string

// Dead-letter statuses.
const (
	DLQPending           DLQStatus = "pending"
	DLQReplaying         DLQStatus = "replaying"
	DLQReplayed          DLQStatus = "replayed"
	DLQRequiresReview    DLQStatus = "requires_review"
	DLQReviewing         DLQStatus = "reviewing"
	DLQResolved          DLQStatus = "resolved"
	DLQRejected          DLQStatus = "rejected"
	DLQArchived          DLQStatus = "archived"
	DLQExpired           DLQStatus = "expired"
	DLQPermanentlyFailed DLQStatus = "permanently_failed"
)

// DLQStatuses lists every status.
var DLQStatuses = []DLQStatus{DLQPending, DLQReplaying, DLQReplayed, DLQRequiresReview,
	DLQReviewing, DLQResolved, DLQRejected, DLQArchived, DLQExpired, DLQPermanentlyFailed}

// Priority orders replay: critical first, then normal, then low.
type Priority string

// Priorities.
const (
	PriorityCritical Priority = "critical"
	PriorityNormal   Priority = "normal"
	PriorityLow      Priority = "low"
)

// Priorities lists the priorities in replay order.
var Priorities = []Priority{PriorityCritical, PriorityNormal, PriorityLow}

// FailureDomain is the seed's domain of a failed operation.
type FailureDomain string

// Failure domains.
const (
	DomainExternalService FailureDomain = "external_service"
	DomainInternalProcess FailureDomain = "internal_process"
	DomainAsyncTask       FailureDomain = "async_task"
	DomainNotification    FailureDomain = "notification"
	DomainDataSync        FailureDomain = "data_sync"
	DomainCustom          FailureDomain = "custom"
)

// FailureDomains lists every failure domain.
var FailureDomains = []FailureDomain{DomainExternalService, DomainInternalProcess,
	DomainAsyncTask, DomainNotification, DomainDataSync, DomainCustom}

// ResolutionType says how an entry left the queue.
type ResolutionType string

// Resolution types (the seed's).
const (
	ResolutionAutoReplay          ResolutionType = "auto_replay"
	ResolutionManualFix           ResolutionType = "manual_fix"
	ResolutionRejected            ResolutionType = "rejected"
	ResolutionExpired             ResolutionType = "expired"
	ResolutionInternalError       ResolutionType = "internal_error"
	ResolutionArchived            ResolutionType = "archived"
	ResolutionMaxRetriesExhausted ResolutionType = "max_retries_exhausted"
	ResolutionTTLExpired          ResolutionType = "ttl_expired"
)

// RecommendedAction is the seed's hint for an operator.
type RecommendedAction string

// Recommended actions.
const (
	RecommendReplay      RecommendedAction = "replay"
	RecommendManualCheck RecommendedAction = "manual_check"
	RecommendEscalate    RecommendedAction = "escalate"
	RecommendArchive     RecommendedAction = "archive"
)

// DefaultMaxRetries is the seed's max_retries for a dead letter.
const DefaultMaxRetries = 2

// DefaultRetention is how long an entry is kept before it expires (seed: 30 days).
const DefaultRetention = 30 * 24 * time.Hour

// ErrorRecord is one failed attempt in an entry's error history.
type ErrorRecord struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
}

// DLQEntry is a dead letter as stored: the wire fields plus the replay
// bookkeeping.
type DLQEntry struct {
	ID                string            `json:"id"`
	Service           string            `json:"service"`
	Domain            FailureDomain     `json:"domain"`
	FailureType       string            `json:"failure_type"`
	Operation         string            `json:"operation"`
	IdempotencyKey    string            `json:"idempotency_key,omitempty"`
	EntityType        string            `json:"entity_type,omitempty"`
	EntityID          string            `json:"entity_id,omitempty"`
	Request           json.RawMessage   `json:"request,omitempty"`
	ErrorCode         string            `json:"error_code,omitempty"`
	ErrorMessage      string            `json:"error_message,omitempty"`
	Priority          Priority          `json:"priority"`
	Metadata          json.RawMessage   `json:"metadata,omitempty"`
	Status            DLQStatus         `json:"status"`
	RetryCount        int               `json:"retry_count"`
	MaxRetries        int               `json:"max_retries"`
	LastRetryAt       time.Time         `json:"last_retry_at,omitzero"`
	NextAttemptAt     time.Time         `json:"next_attempt_at,omitzero"`
	LastError         string            `json:"last_error,omitempty"`
	ErrorHistory      []ErrorRecord     `json:"error_history,omitempty"`
	ResolutionType    ResolutionType    `json:"resolution_type,omitempty"`
	ResolutionNote    string            `json:"resolution_note,omitempty"`
	RecommendedAction RecommendedAction `json:"recommended_action,omitempty"`
	ResolvedAt        time.Time         `json:"resolved_at,omitzero"`
	LeaseOwner        string            `json:"lease_owner,omitempty"`
	FencingToken      int64             `json:"fencing_token,omitempty"`
	SLABreachedAt     time.Time         `json:"sla_breached_at,omitzero"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`
	ExpiresAt         time.Time         `json:"expires_at"`
}
