package process

import (
	"errors"
	"fmt"
	"os"

	"github.com/baldurfleet/baldur/internal/domain"
)

// Environment variables of the audit key.
const (
	// EnvAuditKeyFile is the twin of --audit-key-file: the path of a file
	// holding the audit key (a mounted secret).
	EnvAuditKeyFile = "BALDUR_AUDIT_KEY_FILE"
	// EnvAuditKey holds the audit key itself, when no file is given.
	EnvAuditKey = "BALDUR_AUDIT_KEY"
)

// ErrNoAuditKey reports a process that writes or verifies the audit log
// started without its key.
var ErrNoAuditKey = errors.New("no audit key")

// AuditKeyFile registers --audit-key-file (twin $BALDUR_AUDIT_KEY_FILE) on
// the binaries that write or verify the audit log; LoadAuditKey resolves it
// after Parse.
func (f *Flags) AuditKeyFile() *string {
	return f.String("audit-key-file", EnvAuditKeyFile, "",
		"file holding the key the audit log is chained with, at least 32 bytes; without it the key itself is read from the environment ($"+EnvAuditKey+")")
}

// LoadAuditKey returns the audit key: the content of file when it is set,
// else the value of $BALDUR_AUDIT_KEY read with getenv (nil: os.Getenv).
// Neither set is an error wrapping ErrNoAuditKey (and ErrInvalidConfig); an unreadable file or a key
// shorter than domain.MinAuditKeyLen one wrapping ErrInvalidConfig. The
// errors never hold the key.
func LoadAuditKey(file string, getenv func(string) string) (domain.AuditKey, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%w: --audit-key-file ($%s): %w", ErrInvalidConfig, EnvAuditKeyFile, err)
		}
		k, err := domain.ParseAuditKey(b)
		if err != nil {
			return nil, fmt.Errorf("%w: --audit-key-file ($%s) %s: %w", ErrInvalidConfig, EnvAuditKeyFile, file, err)
		}
		return k, nil
	}
	if v := getenv(EnvAuditKey); v != "" {
		k, err := domain.ParseAuditKey([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("%w: $%s: %w", ErrInvalidConfig, EnvAuditKey, err)
		}
		return k, nil
	}
	return nil, MissingAuditKey()
}

// MissingAuditKey is the error of a process that needs the audit key and was
// given none: it wraps ErrNoAuditKey and ErrInvalidConfig and says how to
// give one.
func MissingAuditKey() error {
	return fmt.Errorf("%w: %w: the audit log is keyed (HMAC-SHA256): give --audit-key-file ($%s), a file holding at least %d bytes, or $%s",
		ErrInvalidConfig, ErrNoAuditKey, EnvAuditKeyFile, domain.MinAuditKeyLen, EnvAuditKey)
}
