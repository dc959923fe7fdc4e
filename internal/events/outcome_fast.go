package events

// decodeOutcomeFast decodes the common shape of an outcome report without
// encoding/json: a flat object whose members are among successes, failures,
// slow_calls and trailing_failures, each given once as a plain JSON integer of
// at most 18 digits, keys without escapes. It reports false for anything else
// (failure_types, other value types, escapes, duplicates, trailing bytes), and
// the caller then takes the strict general path, which decides every such
// body. For the bodies it accepts, it yields exactly what the general path
// yields before validation.
func decodeOutcomeFast(b []byte) (OutcomeReport, bool) {
	var (
		r    OutcomeReport
		seen uint8
	)
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return r, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return r, skipSpace(b, i+1) == len(b)
	}
	for {
		// The key: a plain string naming one of the four counts.
		if i >= len(b) || b[i] != '"' {
			return r, false
		}
		start := i + 1
		end := start
		for end < len(b) && b[end] != '"' {
			if b[end] == '\\' || b[end] < 0x20 {
				return r, false
			}
			end++
		}
		if end >= len(b) {
			return r, false
		}
		var (
			dst *int64
			bit uint8
		)
		switch string(b[start:end]) { // no allocation: compared in place
		case "successes":
			dst, bit = &r.Successes, 1
		case "failures":
			dst, bit = &r.Failures, 2
		case "slow_calls":
			dst, bit = &r.SlowCalls, 4
		case "trailing_failures":
			dst, bit = &r.TrailingFailures, 8
		default:
			return r, false
		}
		if seen&bit != 0 {
			return r, false
		}
		seen |= bit
		i = skipSpace(b, end+1)
		if i >= len(b) || b[i] != ':' {
			return r, false
		}
		i = skipSpace(b, i+1)
		v, next, ok := plainInt(b, i)
		if !ok {
			return r, false
		}
		*dst = v
		i = skipSpace(b, next)
		if i >= len(b) {
			return r, false
		}
		switch b[i] {
		case '}':
			return r, skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return r, false
		}
	}
}

// plainInt reads a JSON integer at b[i:]: an optional minus, then 0 or a
// non-zero digit followed by digits, at most 18 digits (no overflow), and not
// followed by a fraction or an exponent. It returns the value and the index
// after it.
func plainInt(b []byte, i int) (int64, int, bool) {
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	var v int64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	n := i - start
	switch {
	case n == 0 || n > 18:
		return 0, 0, false
	case n > 1 && b[start] == '0':
		return 0, 0, false
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, i, true
}
