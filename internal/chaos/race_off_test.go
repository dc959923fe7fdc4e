//go:build chaos && !race

package chaos

// raceFactor is 1 when the race detector is on.
const raceFactor = 0
