package domain_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestRingProperties(t *testing.T) {
	t.Parallel()
	r := domain.NewRing([]string{"c1", "c2", "c3", "c2"})
	require.Equal(t, 3*domain.VirtualNodesPerCell, r.Points(), "150 virtual nodes per cell, duplicates once")
	require.Equal(t, []string{"c1", "c2", "c3"}, r.Cells())

	keys := make([]string, 3000)
	owner := map[string]string{}
	count := map[string]int{}
	for i := range keys {
		keys[i] = fmt.Sprintf("svc-%d", i)
		c, ok := r.Lookup(keys[i])
		require.True(t, ok)
		owner[keys[i]] = c
		count[c]++
	}
	// Stable: a ring built again, in another order, maps every key the same.
	again := domain.NewRing([]string{"c3", "c1", "c2"})
	for _, k := range keys {
		c, _ := again.Lookup(k)
		require.Equal(t, owner[k], c, k)
	}
	// Balanced enough: every cell owns a fair share (1/3 ± 40 %).
	for c, n := range count {
		require.InDelta(t, len(keys)/3, n, float64(len(keys))/3*0.4, c)
	}
	// Minimal movement: adding c4 moves keys only to c4, about a quarter.
	grown := domain.NewRing([]string{"c1", "c2", "c3", "c4"})
	moved := 0
	for _, k := range keys {
		c, _ := grown.Lookup(k)
		if c != owner[k] {
			require.Equal(t, "c4", c, "a key moves only to the new cell")
			moved++
		}
	}
	require.InDelta(t, len(keys)/4, moved, float64(len(keys))/4*0.4)
	// Removing c3 moves only c3's keys.
	shrunk := domain.NewRing([]string{"c1", "c2"})
	for _, k := range keys {
		c, _ := shrunk.Lookup(k)
		if owner[k] != "c3" {
			require.Equal(t, owner[k], c, k)
		}
	}
	_, ok := domain.NewRing(nil).Lookup("x")
	require.False(t, ok)
}

func TestCellBreakerNames(t *testing.T) {
	t.Parallel()
	name, err := domain.CellBreakerName("payments", "eu1")
	require.NoError(t, err)
	require.Equal(t, "payments--eu1", name)
	tests := []struct {
		name, svc, cell string
		ok              bool
	}{
		{"payments--eu1", "payments", "eu1", true},
		{"pay-ments--eu_1", "pay-ments", "eu_1", true},
		{"a--b--c", "a--b", "c", true},
		{"a---b", "a-", "b", true},
		{"payments", "", "", false},
		{"payments--", "", "", false},
		{"--eu1", "", "", false},
		{"payments--EU1", "", "", false},
		{"payments--eu-1", "", "", false},
		{"payments-eu1", "", "", false},
	}
	for _, tt := range tests {
		svc, cell, ok := domain.ParseCellBreakerName(tt.name)
		require.Equal(t, tt.ok, ok, tt.name)
		require.Equal(t, tt.svc, svc, tt.name)
		require.Equal(t, tt.cell, cell, tt.name)
		if ok {
			back, err := domain.CellBreakerName(svc, cell)
			require.NoError(t, err)
			require.Equal(t, tt.name, back, "parse and build round-trip")
		}
	}
	for _, bad := range [][2]string{{"", "eu1"}, {"-x", "eu1"}, {"pay.ments", "eu1"}, {"payments", "EU"}, {"payments", "eu-1"},
		{"payments", "_eu"}, {"payments", "abcdefghijklmnopq"}, {string(make([]byte, 60)), "eu1"}} {
		_, err := domain.CellBreakerName(bad[0], bad[1])
		require.ErrorIs(t, err, domain.ErrInvalidCell, bad)
	}
	long := "s123456789s123456789s123456789s123456789s123456789s123456789"
	_, err = domain.CellBreakerName(long, "eu1")
	require.ErrorIs(t, err, domain.ErrInvalidCell, "longer than 64 bytes in all")
}

func TestCellsConfig(t *testing.T) {
	t.Parallel()
	c, err := domain.ParseCellsConfig([]byte(`{"cells":[{"id":"eu1","state":"active"},{"id":"eu2","state":"warmup"},{"id":"eu3","state":"draining"},{"id":"us1","state":"isolated"}]}`))
	require.NoError(t, err)
	require.Equal(t, []string{"eu1", "eu2"}, c.Ring().Cells(), "active and warmup cells own keys")
	require.True(t, c.Has("us1"))
	require.False(t, c.Has("ap1"))
	for _, bad := range []string{
		`{"cells":[{"id":"eu1","state":"on"}]}`,
		`{"cells":[{"id":"eu1","state":"active"},{"id":"eu1","state":"warmup"}]}`,
		`{"cells":[{"id":"EU1","state":"active"}]}`,
		`{"cells":[],"extra":1}`,
		`{"cells":[]} {}`,
		`not json`,
	} {
		_, err := domain.ParseCellsConfig([]byte(bad))
		require.ErrorIs(t, err, domain.ErrInvalidCell, bad)
	}
	ring := c.Ring()
	owner, _ := ring.Lookup("payments")
	other := "eu1"
	if owner == "eu1" {
		other = "eu2"
	}
	require.Equal(t, domain.CellMapping{Service: "payments", Cell: owner, Scoped: true, Owner: owner},
		c.MapBreaker(ring, "payments--"+owner))
	require.True(t, c.MapBreaker(ring, "payments--"+other).Orphaned)
	require.True(t, c.MapBreaker(ring, "payments--eu3").Orphaned, "a draining cell owns nothing")
	require.False(t, c.MapBreaker(ring, "payments").Scoped, "no cell")
	require.False(t, c.MapBreaker(ring, "payments--ap1").Scoped, "an unconfigured cell is not a cell")
}
