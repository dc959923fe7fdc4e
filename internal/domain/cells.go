package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Cells (the seed's cell topology): a service may have one breaker per cell,
// named "<svc>--<cell>". Cells are listed, with their states, under the key
// "_cells" of baldur_config; the cells that own keys form a consistent-hash
// ring (SHA-256, 150 virtual nodes per cell) that maps a service to its cell.

// ConfigCellsKey is the key of baldur_config that holds the CellsConfig.
const ConfigCellsKey = "_cells"

// CellSeparator separates a service from its cell in a cell-scoped breaker
// name. Cell ids never contain '-', so the cell is the part after the last
// separator and a name parses one way only.
const CellSeparator = "--"

// VirtualNodesPerCell is the number of points each cell has on the ring.
const VirtualNodesPerCell = 150

// MaxCells bounds a CellsConfig; MaxCellIDLen bounds a cell id.
const (
	MaxCells     = 64
	MaxCellIDLen = 16
)

// maxNameLen is the longest breaker name (the contract's service names).
const maxNameLen = 64

// CellState is the state of a cell (seed: ACTIVE, WARMUP, DRAINING,
// ISOLATED).
type CellState string

// Cell states.
const (
	// CellActive: the cell serves and owns its share of the ring.
	CellActive CellState = "active"
	// CellWarmup: a new cell that owns its share of the ring while it warms
	// up.
	CellWarmup CellState = "warmup"
	// CellDraining: the cell is being emptied; it owns no keys, so its
	// breakers are archived by reconciliation.
	CellDraining CellState = "draining"
	// CellIsolated: the cell is cut off; it owns no keys.
	CellIsolated CellState = "isolated"
)

// CellStates lists every cell state.
var CellStates = []CellState{CellActive, CellWarmup, CellDraining, CellIsolated}

// OnRing reports whether a cell in state s owns keys on the ring (active and
// warmup cells).
func (s CellState) OnRing() bool { return s == CellActive || s == CellWarmup }

// Cell is one cell of the configuration.
type Cell struct {
	ID    string    `json:"id"`
	State CellState `json:"state"`
}

// CellsConfig is the value of the key "_cells" of baldur_config.
type CellsConfig struct {
	Cells []Cell `json:"cells"`
}

// ValidateCellID returns an error wrapping ErrInvalidCell unless id matches
// ^[a-z0-9][a-z0-9_]{0,15}$.
func ValidateCellID(id string) error {
	if id == "" || len(id) > MaxCellIDLen {
		return fmt.Errorf("%w: cell id %q must be 1..%d characters long", ErrInvalidCell, id, MaxCellIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && c == '_') {
			continue
		}
		return fmt.Errorf("%w: cell id %q has %q at position %d; ids are a-z, 0-9 and '_' (not first)", ErrInvalidCell, id, c, i)
	}
	return nil
}

// Validate returns an error naming every invalid cell: a bad id, a repeated
// id, an unknown state, or too many cells.
func (c CellsConfig) Validate() error {
	var errs []error
	if len(c.Cells) > MaxCells {
		errs = append(errs, fmt.Errorf("%w: %d cells, at most %d are allowed", ErrInvalidCell, len(c.Cells), MaxCells))
	}
	seen := make(map[string]bool, len(c.Cells))
	for i, cell := range c.Cells {
		if err := ValidateCellID(cell.ID); err != nil {
			errs = append(errs, fmt.Errorf("cells[%d]: %w", i, err))
		}
		if seen[cell.ID] {
			errs = append(errs, fmt.Errorf("%w: cells[%d]: cell id %q is listed twice", ErrInvalidCell, i, cell.ID))
		}
		seen[cell.ID] = true
		if !slices.Contains(CellStates, cell.State) {
			errs = append(errs, fmt.Errorf("%w: cells[%d]: cell %q has state %q; want active, warmup, draining or isolated", ErrInvalidCell, i, cell.ID, cell.State))
		}
	}
	return errors.Join(errs...)
}

// ParseCellsConfig strictly decodes and validates a "_cells" value.
func ParseCellsConfig(raw []byte) (CellsConfig, error) {
	var c CellsConfig
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return CellsConfig{}, fmt.Errorf("%w: %s: %w", ErrInvalidCell, ConfigCellsKey, err)
	}
	if dec.More() {
		return CellsConfig{}, fmt.Errorf("%w: %s: data after the object", ErrInvalidCell, ConfigCellsKey)
	}
	if err := c.Validate(); err != nil {
		return CellsConfig{}, err
	}
	return c, nil
}

// Has reports whether id is a configured cell, in any state.
func (c CellsConfig) Has(id string) bool {
	return slices.ContainsFunc(c.Cells, func(x Cell) bool { return x.ID == id })
}

// Ring returns the ring of the cells that own keys (active and warmup).
func (c CellsConfig) Ring() *Ring {
	var ids []string
	for _, cell := range c.Cells {
		if cell.State.OnRing() {
			ids = append(ids, cell.ID)
		}
	}
	return NewRing(ids)
}

// Ring is a consistent-hash ring: each cell has VirtualNodesPerCell points,
// the first 8 bytes of SHA-256("<cell>#<i>"); a key belongs to the cell of
// the first point at or after SHA-256(key), wrapping around. Adding or
// removing one cell moves only the keys of the points it gains or loses.
type Ring struct {
	points []ringPoint
	cells  []string
}

type ringPoint struct {
	hash uint64
	cell string
}

// NewRing returns the ring of cells (duplicates count once).
func NewRing(cells []string) *Ring {
	r := &Ring{}
	for _, c := range cells {
		if slices.Contains(r.cells, c) {
			continue
		}
		r.cells = append(r.cells, c)
		for i := range VirtualNodesPerCell {
			r.points = append(r.points, ringPoint{hash: ringHash(c + "#" + strconv.Itoa(i)), cell: c})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return strings.Compare(a.cell, b.cell)
	})
	slices.Sort(r.cells)
	return r
}

func ringHash(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint64(sum[:8])
}

// Cells returns the ring's cells, sorted.
func (r *Ring) Cells() []string { return slices.Clone(r.cells) }

// Points returns the number of points on the ring.
func (r *Ring) Points() int { return len(r.points) }

// Lookup returns the cell that owns key; false when the ring is empty.
func (r *Ring) Lookup(key string) (string, bool) {
	if len(r.points) == 0 {
		return "", false
	}
	h := ringHash(key)
	i, _ := slices.BinarySearchFunc(r.points, h, func(p ringPoint, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].cell, true
}

// CellBreakerName returns the name of svc's breaker in cell:
// "<svc>--<cell>". It is refused (ErrInvalidCell) when svc is not a valid
// service name, cell not a valid cell id, or the name longer than 64 bytes.
func CellBreakerName(svc, cell string) (string, error) {
	if !validServiceName(svc) {
		return "", fmt.Errorf("%w: %q is not a valid service name", ErrInvalidCell, svc)
	}
	if err := ValidateCellID(cell); err != nil {
		return "", err
	}
	name := svc + CellSeparator + cell
	if len(name) > maxNameLen {
		return "", fmt.Errorf("%w: breaker name %q is %d bytes long, at most %d are allowed", ErrInvalidCell, name, len(name), maxNameLen)
	}
	return name, nil
}

// ParseCellBreakerName splits a cell-scoped breaker name into its service
// and cell: the cell is the part after the last "--" and must be a valid
// cell id, the service the part before it and a valid service name. ok is
// false for any other name (a breaker without a cell).
func ParseCellBreakerName(name string) (svc, cell string, ok bool) {
	i := strings.LastIndex(name, CellSeparator)
	if i <= 0 {
		return "", "", false
	}
	svc, cell = name[:i], name[i+len(CellSeparator):]
	if ValidateCellID(cell) != nil || !validServiceName(svc) {
		return "", "", false
	}
	return svc, cell, true
}

// CellMapping is reconciliation's verdict on one breaker name.
type CellMapping struct {
	// Service and Cell are the parts of a cell-scoped name.
	Service, Cell string
	// Scoped is false for a breaker without a configured cell: never touched.
	Scoped bool
	// Owner is the cell the ring maps Service to.
	Owner string
	// Orphaned is true when the breaker's cell no longer owns its service.
	Orphaned bool
}

// MapBreaker decides whether the breaker name is orphaned under c: a name
// counts as cell-scoped only when it parses (ParseCellBreakerName) and its
// cell is configured (in any state), so a plain service whose name happens to
// contain "--" is never touched. A scoped breaker is orphaned when ring maps
// its service to another cell. ring must not be empty.
func (c CellsConfig) MapBreaker(ring *Ring, name string) CellMapping {
	svc, cell, ok := ParseCellBreakerName(name)
	if !ok || !c.Has(cell) {
		return CellMapping{}
	}
	owner, _ := ring.Lookup(svc)
	return CellMapping{Service: svc, Cell: cell, Scoped: true, Owner: owner, Orphaned: owner != cell}
}

// validServiceName reports whether s matches ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$.
func validServiceName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-')) {
			continue
		}
		return false
	}
	return true
}
