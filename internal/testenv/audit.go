package testenv

import "github.com/baldurfleet/baldur/internal/domain"

// AuditKey is the audit key of every store a test builds: a fixed key, so a
// log written by one component verifies in another.
var AuditKey = domain.AuditKey("baldur-test-audit-key-0123456789abcdef")
