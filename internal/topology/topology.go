// Package topology declares Baldur's JetStream resources once — the streams, the
// KV buckets and the breaker-workers' partition consumers — and creates them
// idempotently.
//
// # Partitions
//
// Outcome reports and breaker commands for one service must be folded in order
// by one worker at a time. BALDUR_INPUT therefore stores them under a
// partitioned subject: a stream subject transform rewrites
//
//	baldur.<kind>.<svc>  →  baldur.in.<p>.<kind>.<svc>,  p = partition(svc)
//
// where partition is nats-server's hash partition (FNV-1a of the service name
// modulo Partitions; Partition below computes the same value). Each partition
// has one durable pull consumer, "breaker-p<p>", filtered on baldur.in.<p>.>.
// Partition 0's consumer also takes the governance commands (baldur.governance)
// and anything published to a malformed input subject (baldur.outcome.a.b), so
// that such a message is refused with a rejected event instead of lying unread.
//
// The number of partitions is fixed when the stream is created: changing it
// would move services between partitions while messages are in flight, so
// Ensure refuses a stream whose transform disagrees with the configuration.
package topology

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/events"
)

// Stream and bucket names.
const (
	// StreamInput holds outcome reports, breaker commands and governance
	// commands, partitioned by service.
	StreamInput = "BALDUR_INPUT"
	// StreamDLQ is the work queue of dead letters on their way to PostgreSQL.
	StreamDLQ = "BALDUR_DLQ"
	// StreamEvents holds transitions, replay results, governance changes and
	// rejected inputs.
	StreamEvents = "BALDUR_EVENTS"
	// StreamAudit anchors the audit log's head outside PostgreSQL: every
	// writer of the log publishes (seq, hash) to it as it appends. Messages
	// cannot be deleted and the stream cannot be purged.
	StreamAudit = "BALDUR_AUDIT"

	// BucketBreakers maps a service to its breaker state (domain.Breaker JSON).
	BucketBreakers = "baldur_breakers"
	// BucketConfig maps "_defaults" and services to breaker config objects.
	BucketConfig = "baldur_config"
	// BucketGovernance holds the keys kill_switch, emergency_level,
	// error_budget and aggregate.
	BucketGovernance = "baldur_governance"
	// BucketPartitions holds the breaker-workers' partition leases and
	// presence keys; entries expire after LeaseTTL unless renewed.
	BucketPartitions = "baldur_partitions"

	// ConfigDefaultsKey is the key of the fleet-wide config in BucketConfig.
	ConfigDefaultsKey = "_defaults"
)

// Defaults of Config.
const (
	DefaultPartitions      = 16
	DefaultReplicas        = 1
	DefaultInputMaxAge     = 24 * time.Hour
	DefaultEventsMaxAge    = 7 * 24 * time.Hour
	DefaultDuplicateWindow = 2 * time.Minute
	// DefaultEventsDuplicateWindow is long enough for a worker that died
	// between a breaker write and the transition's publish to be replaced and
	// to publish it again without a duplicate event.
	DefaultEventsDuplicateWindow = 10 * time.Minute
	DefaultLeaseTTL              = 5 * time.Second
	// MaxPartitions bounds Config.Partitions.
	MaxPartitions = 256
	// PartitionAckWait is the partition consumers' ack wait: inputs a
	// worker fetched and did not acknowledge are delivered again after it.
	PartitionAckWait = 30 * time.Second

	// DefaultInputMaxBytes, DefaultDLQMaxBytes and DefaultEventsMaxBytes
	// bound what each stream stores. A full BALDUR_INPUT or BALDUR_DLQ
	// refuses new messages (the publisher gets an error; nothing stored is
	// dropped); a full BALDUR_EVENTS drops its oldest events.
	DefaultInputMaxBytes  = 1 << 30
	DefaultDLQMaxBytes    = 4 << 30
	DefaultEventsMaxBytes = 2 << 30
	// DefaultDLQMaxPerService bounds the dead letters of one service waiting
	// in BALDUR_DLQ for the ingest: beyond it that service's publishers are
	// refused ("maximum messages per subject exceeded") while other services
	// are not affected.
	DefaultDLQMaxPerService = 100_000
	// DefaultAuditMaxHeads is how many audit heads BALDUR_AUDIT keeps (about
	// 200 bytes each); beyond it the oldest go. Records older than the oldest
	// head kept are still covered by the chain and its key, and a cut of the
	// log's tail by the newest heads.
	DefaultAuditMaxHeads = 1_000_000
)

// Message size limits of the streams: the contract's largest body of what
// each stream carries, plus HeaderAllowance for the CloudEvents and trace
// headers. JetStream refuses a larger message to its publisher.
const (
	HeaderAllowance  = 4 << 10
	InputMaxMsgSize  = max(events.MaxOutcomeBody, events.MaxCommandBody, events.MaxGovernanceBody) + HeaderAllowance
	DLQMaxMsgSize    = events.MaxDeadLetterBody + HeaderAllowance
	EventsMaxMsgSize = 128 << 10
	AuditMaxMsgSize  = events.MaxAuditHeadBody + HeaderAllowance
)

// Config sizes the topology. The zero value means the defaults.
type Config struct {
	// Replicas of every stream and bucket: 1 on one server, 3 in a cluster.
	Replicas int
	// Partitions of BALDUR_INPUT; fixed once the stream exists.
	Partitions int
	// InputMaxAge is how long BALDUR_INPUT keeps messages.
	InputMaxAge time.Duration
	// EventsMaxAge is how long BALDUR_EVENTS keeps events.
	EventsMaxAge time.Duration
	// LeaseTTL is how long a partition lease or presence key lives without
	// renewal: a dead worker's partitions are taken over after at most this.
	LeaseTTL time.Duration
	// Storage of streams and buckets; file unless set to memory (tests,
	// benchmarks).
	Storage jetstream.StorageType
	// InputMaxBytes, DLQMaxBytes and EventsMaxBytes bound the bytes each
	// stream stores (the Default*MaxBytes when 0).
	InputMaxBytes, DLQMaxBytes, EventsMaxBytes int64
	// DLQMaxPerService bounds one service's dead letters waiting in
	// BALDUR_DLQ (DefaultDLQMaxPerService when 0).
	DLQMaxPerService int64
}

// Errors.
var (
	// ErrInvalidConfig reports a Config value out of range.
	ErrInvalidConfig = errors.New("topology: invalid config")
	// ErrIncompatible reports an existing stream or bucket that cannot serve
	// this version of Baldur and that Ensure will not change on its own.
	ErrIncompatible = errors.New("topology: incompatible existing resource")
)

func (c Config) withDefaults() (Config, error) {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.InputMaxAge == 0 {
		c.InputMaxAge = DefaultInputMaxAge
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	c.InputMaxBytes = cmp.Or(c.InputMaxBytes, DefaultInputMaxBytes)
	c.DLQMaxBytes = cmp.Or(c.DLQMaxBytes, DefaultDLQMaxBytes)
	c.EventsMaxBytes = cmp.Or(c.EventsMaxBytes, DefaultEventsMaxBytes)
	c.DLQMaxPerService = cmp.Or(c.DLQMaxPerService, DefaultDLQMaxPerService)
	var errs []error
	for _, l := range []struct {
		name string
		v    int64
	}{{"input max bytes", c.InputMaxBytes}, {"DLQ max bytes", c.DLQMaxBytes}, {"events max bytes", c.EventsMaxBytes}} {
		if l.v < 1<<20 {
			errs = append(errs, fmt.Errorf("%w: %s %d must be at least 1 MiB", ErrInvalidConfig, l.name, l.v))
		}
	}
	if c.DLQMaxPerService < 1 {
		errs = append(errs, fmt.Errorf("%w: DLQ max per service %d must be at least 1", ErrInvalidConfig, c.DLQMaxPerService))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("%w: replicas %d must be between 1 and 5", ErrInvalidConfig, c.Replicas))
	}
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("%w: partitions %d must be between 1 and %d", ErrInvalidConfig, c.Partitions, MaxPartitions))
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("%w: lease TTL %s must be at least 1s", ErrInvalidConfig, c.LeaseTTL))
	}
	if c.InputMaxAge < time.Minute || c.EventsMaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("%w: stream max ages must be at least 1m", ErrInvalidConfig))
	}
	return c, errors.Join(errs...)
}

// Topology is the created topology: the resolved Config and handles on the
// buckets.
type Topology struct {
	Config     Config
	Breakers   jetstream.KeyValue
	ConfigKV   jetstream.KeyValue
	Governance jetstream.KeyValue
	Partitions jetstream.KeyValue
}

// Partition returns the partition of BALDUR_INPUT that holds svc's messages
// when there are n partitions: the same value nats-server's
// {{partition(n,2)}} transform computes (FNV-1a 32 of the name, modulo n).
func Partition(svc string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(svc))
	return int(h.Sum32() % uint32(n))
}

// PartitionFilter returns the subject filter of partition p's stored messages.
func PartitionFilter(p int) string { return "baldur.in." + strconv.Itoa(p) + ".>" }

// ConsumerName returns the durable consumer name of partition p.
func ConsumerName(p int) string { return fmt.Sprintf("breaker-p%03d", p) }

// inputTransform returns the stream subject transform of BALDUR_INPUT.
func inputTransform(partitions int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      "baldur.*.*",
		Destination: fmt.Sprintf("baldur.in.{{partition(%d,2)}}.{{wildcard(1)}}.{{wildcard(2)}}", partitions),
	}
}

// OriginalSubject maps a subject as stored in BALDUR_INPUT back to the subject
// it was published on: baldur.in.<p>.<kind>.<svc> → baldur.<kind>.<svc>.
// Other subjects (governance, malformed ones that were not transformed) are
// returned unchanged.
func OriginalSubject(stored string) string {
	rest, ok := strings.CutPrefix(stored, "baldur.in.")
	if !ok {
		return stored
	}
	_, tail, ok := strings.Cut(rest, ".")
	if !ok {
		return stored
	}
	return "baldur." + tail
}

// partitionFilters returns the filter subjects of partition p's consumer.
// Partition 0 also takes governance commands and the input the transform
// leaves as published, so that a worker rejects it: subjects with more
// tokens than baldur.<kind>.<svc>, and those whose name is a literal
// wildcard token (baldur.outcome.*, baldur.control.>), which JetStream stores
// untransformed too.
func partitionFilters(p int) []string {
	f := []string{PartitionFilter(p)}
	if p == 0 {
		f = append(f, events.SubjectGovernance, events.FilterOutcome, events.FilterControl)
	}
	return f
}

// legacyPartition0Filters are partition 0's filters before literal wildcard
// names were captured; Ensure widens a consumer that still has them.
var legacyPartition0Filters = []string{PartitionFilter(0), events.SubjectGovernance, "baldur.outcome.*.>", "baldur.control.*.>"}

// Ensure creates what is missing of the topology and checks what exists. It
// never deletes or shrinks anything: an existing stream keeps the limits it
// has (an operator may have tuned them); only missing input subjects and the
// limits it lacks are added. A
// stream whose partitioning disagrees with cfg is refused with
// ErrIncompatible.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (*Topology, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, js, inputStreamConfig(cfg)); err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamDLQ,
		Description: "Dead letters on their way to PostgreSQL (work queue)",
		Subjects:    slices.Clone(events.DLQSubjects),
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		Duplicates:  DefaultDuplicateWindow,
		MaxMsgSize:  DLQMaxMsgSize,
		MaxBytes:    cfg.DLQMaxBytes,
		Discard:     jetstream.DiscardNew,
		// One service's flood is refused to its publishers alone.
		MaxMsgsPerSubject:    cfg.DLQMaxPerService,
		DiscardNewPerSubject: true,
	}); err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "Breaker transitions, replay results, governance changes and rejected inputs",
		Subjects:    slices.Clone(events.EventSubjects),
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.EventsMaxAge,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		Duplicates:  DefaultEventsDuplicateWindow,
		MaxMsgSize:  EventsMaxMsgSize,
		MaxBytes:    cfg.EventsMaxBytes,
		Discard:     jetstream.DiscardOld,
	}); err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamAudit,
		Description: "The audit log's head (seq, hash), anchored outside PostgreSQL as the log advances",
		Subjects:    slices.Clone(events.AuditSubjects),
		Retention:   jetstream.LimitsPolicy,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		Duplicates:  DefaultDuplicateWindow,
		MaxMsgSize:  AuditMaxMsgSize,
		MaxMsgs:     DefaultAuditMaxHeads,
		Discard:     jetstream.DiscardOld,
		// No one removes a head: what a database writer cut, the heads
		// still name.
		DenyDelete: true,
		DenyPurge:  true,
	}); err != nil {
		return nil, err
	}
	for p := range cfg.Partitions {
		if err := ensureConsumer(ctx, js, p, cfg); err != nil {
			return nil, err
		}
	}
	t := &Topology{Config: cfg}
	buckets := []struct {
		dst *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&t.Breakers, jetstream.KeyValueConfig{Bucket: BucketBreakers, Description: "Breaker state per service", History: 1}},
		{&t.ConfigKV, jetstream.KeyValueConfig{Bucket: BucketConfig, Description: "Breaker config: _defaults and per service", History: 5}},
		{&t.Governance, jetstream.KeyValueConfig{Bucket: BucketGovernance, Description: "Kill switch, emergency level, error budget", History: 10}},
		{&t.Partitions, jetstream.KeyValueConfig{Bucket: BucketPartitions, Description: "Breaker-worker partition leases and presence", History: 1, TTL: cfg.LeaseTTL}},
	}
	for _, b := range buckets {
		b.cfg.Replicas = cfg.Replicas
		b.cfg.Storage = cfg.Storage
		kv, err := ensureBucket(ctx, js, b.cfg)
		if err != nil {
			return nil, err
		}
		*b.dst = kv
	}
	return t, nil
}

func inputStreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:             StreamInput,
		Description:      "Outcome reports, breaker and governance commands, partitioned by service",
		Subjects:         slices.Clone(events.InputSubjects),
		SubjectTransform: inputTransform(cfg.Partitions),
		Retention:        jetstream.LimitsPolicy,
		MaxAge:           cfg.InputMaxAge,
		Storage:          cfg.Storage,
		Replicas:         cfg.Replicas,
		Duplicates:       DefaultDuplicateWindow,
		MaxMsgSize:       InputMaxMsgSize,
		MaxBytes:         cfg.InputMaxBytes,
		// Full: refuse new input rather than drop reports not yet folded.
		Discard: jetstream.DiscardNew,
	}
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("topology: create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("topology: look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Retention != want.Retention {
		return fmt.Errorf("%w: stream %s has retention %s, want %s", ErrIncompatible, want.Name, have.Retention, want.Retention)
	}
	if want.SubjectTransform != nil {
		if have.SubjectTransform == nil || *have.SubjectTransform != *want.SubjectTransform {
			return fmt.Errorf("%w: stream %s partitions its subjects as %v, want %s → %s (the partition count is fixed once the stream exists)",
				ErrIncompatible, want.Name, have.SubjectTransform, want.SubjectTransform.Source, want.SubjectTransform.Destination)
		}
	}
	changed := false
	for _, subj := range want.Subjects {
		if !slices.Contains(have.Subjects, subj) {
			have.Subjects = append(have.Subjects, subj)
			changed = true
		}
	}
	// Limits a stream lacks (created before they existed) are set; a limit
	// an operator set is kept.
	if have.MaxMsgSize <= 0 && want.MaxMsgSize > 0 {
		have.MaxMsgSize, changed = want.MaxMsgSize, true
	}
	if have.MaxBytes <= 0 && want.MaxBytes > 0 {
		have.MaxBytes, have.Discard, changed = want.MaxBytes, want.Discard, true
	}
	if have.MaxMsgsPerSubject <= 0 && want.MaxMsgsPerSubject > 0 {
		have.MaxMsgsPerSubject, have.Discard, have.DiscardNewPerSubject, changed =
			want.MaxMsgsPerSubject, want.Discard, want.DiscardNewPerSubject, true
	}
	if changed {
		if _, err := js.UpdateStream(ctx, have); err != nil {
			return fmt.Errorf("topology: update stream %s (subjects, limits): %w", want.Name, err)
		}
	}
	return nil
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, p int, cfg Config) error {
	want := jetstream.ConsumerConfig{
		Durable:        ConsumerName(p),
		Description:    fmt.Sprintf("Breaker-worker partition %d of %d", p, cfg.Partitions),
		FilterSubjects: partitionFilters(p),
		// AckAll: a worker acks the last message of each folded batch
		// once. A consumer created by an older version keeps AckExplicit
		// (the server cannot change the policy of an existing consumer);
		// the worker reads the policy and acks every message then.
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       PartitionAckWait,
		MaxAckPending: 20_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      cfg.Replicas,
	}
	c, err := js.Consumer(ctx, StreamInput, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if _, err := js.CreateConsumer(ctx, StreamInput, want); err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
			return fmt.Errorf("topology: create consumer %s: %w", want.Durable, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("topology: look up consumer %s: %w", want.Durable, err)
	}
	if have := c.CachedInfo().Config; p == 0 && slices.Equal(have.FilterSubjects, legacyPartition0Filters) {
		have.FilterSubjects = want.FilterSubjects
		if _, err := js.UpdateConsumer(ctx, StreamInput, have); err != nil {
			return fmt.Errorf("topology: widen the filters of consumer %s: %w", want.Durable, err)
		}
		return nil
	}
	if have := c.CachedInfo().Config; !slices.Equal(have.FilterSubjects, want.FilterSubjects) && have.FilterSubject != want.FilterSubjects[0] {
		return fmt.Errorf("%w: consumer %s filters %v, want %v", ErrIncompatible, want.Durable, have.FilterSubjects, want.FilterSubjects)
	}
	return nil
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, want)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, want.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("topology: bucket %s: %w", want.Bucket, err)
	}
	return kv, nil
}
