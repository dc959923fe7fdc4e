package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// The strict decoder runs in two passes: encoding/json checks the syntax
// (including trailing data) and fills the struct, then scanObject walks the
// object's members to refuse what encoding/json lets through: unknown fields
// written in another case ("Successes"), duplicate fields, and a body that is
// JSON but not an object (null, an array). The scanner relies on the input
// having passed encoding/json's validity check.

// objectFields describes the members one JSON object may have.
type objectFields struct {
	payload string
	names   []string
}

// scanObject calls fn for every member of the JSON object b, in order, with
// the member's index in of.names, its name and its raw value. A member not in
// of.names is an ErrUnknownField, a member given twice an ErrDuplicateField.
// b must be valid JSON.
func scanObject(b []byte, prefix string, of objectFields, fn func(idx int, name string, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: %s%s must be a JSON object, got %s", ErrBadJSON, of.payload, fieldSuffix(prefix), jsonKind(b[i:]))
	}
	var seen uint64
	i = skipSpace(b, i+1)
	if b[i] == '}' {
		return nil
	}
	for {
		name, next, err := readKey(b, i)
		if err != nil {
			return err
		}
		idx := -1
		for k, n := range of.names {
			if n == name {
				idx = k
				break
			}
		}
		if idx < 0 {
			return fieldErr(ErrUnknownField, of.payload, prefix+name, "is not part of the contract (names are case-sensitive; known: %s)", list(of.names))
		}
		if seen&(1<<idx) != 0 {
			return fieldErr(ErrDuplicateField, of.payload, prefix+name, "is given more than once")
		}
		seen |= 1 << idx
		i = skipSpace(b, next)
		i = skipSpace(b, i+1) // ':'
		end := skipValue(b, i)
		if fn != nil {
			if err := fn(idx, name, b[i:end]); err != nil {
				return err
			}
		}
		i = skipSpace(b, end)
		if b[i] == '}' {
			return nil
		}
		i = skipSpace(b, i+1) // ','
	}
}

// scanMapKeys refuses duplicate keys in the JSON object b (a map field) and
// calls fn for each key. b must be valid JSON.
func scanMapKeys(b []byte, payload, field string, fn func(key string, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil // null, or a type error encoding/json already reported
	}
	var keys []string
	i = skipSpace(b, i+1)
	if b[i] == '}' {
		return nil
	}
	for {
		name, next, err := readKey(b, i)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k == name {
				return fieldErr(ErrDuplicateField, payload, field+"."+name, "is given more than once")
			}
		}
		keys = append(keys, name)
		i = skipSpace(b, next)
		i = skipSpace(b, i+1)
		end := skipValue(b, i)
		if fn != nil {
			if err := fn(name, b[i:end]); err != nil {
				return err
			}
		}
		i = skipSpace(b, end)
		if b[i] == '}' {
			return nil
		}
		i = skipSpace(b, i+1)
	}
}

func fieldSuffix(prefix string) string {
	if prefix == "" {
		return " body"
	}
	return " field " + prefix[:len(prefix)-1]
}

// readKey reads the string at b[i] and returns it unescaped and the index
// after its closing quote.
func readKey(b []byte, i int) (string, int, error) {
	end := skipString(b, i)
	raw := b[i:end]
	escaped := false
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			escaped = true
			break
		}
	}
	if !escaped {
		return string(raw[1 : len(raw)-1]), end, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", 0, fmt.Errorf("%w: member name %s: %v", ErrBadJSON, clip(string(raw), 64), err)
	}
	return s, end, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

func jsonKind(b []byte) string {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return "nothing"
	}
	switch b[i] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// unmarshalStrict decodes the JSON object b into v. Syntax errors and trailing
// data are ErrBadJSON; then the members are checked by scanObject (unknown,
// differently cased or duplicate fields); then a value of the wrong JSON type
// is an ErrInvalidValue naming the field.
func unmarshalStrict(b []byte, v any, of objectFields, fn func(idx int, name string, val []byte) error) error {
	err := json.Unmarshal(b, v)
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("%w: %s body at byte %d: %v", ErrBadJSON, of.payload, syn.Offset, syn)
	}
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		// A field's own UnmarshalJSON failed (a duration, for instance).
		// The input is valid JSON, so scan first for a better-placed error.
		if serr := scanObject(b, "", of, fn); serr != nil {
			return serr
		}
		return blame(b, v, of, err)
	}
	if serr := scanObject(b, "", of, fn); serr != nil {
		return serr
	}
	if typeErr != nil {
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return fieldErr(ErrInvalidValue, of.payload, field, "must be a JSON %s, got %s", jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	}
	return nil
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer in range"
	case "float32", "float64":
		return "number"
	case "bool":
		return "boolean"
	case "string":
		return "string"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	}
	return kind
}

// blame finds the member of b whose value made decoding into v fail with err
// (a field's own UnmarshalJSON, such as time.Time's, does not say which field
// it was) by decoding each member alone into a fresh value of v's type.
func blame(b []byte, v any, of objectFields, err error) error {
	typ := reflect.TypeOf(v).Elem()
	var found error
	_ = scanObject(b, "", of, func(_ int, name string, val []byte) error {
		one := make([]byte, 0, len(name)+len(val)+8)
		one = append(one, '{')
		one = strconv.AppendQuote(one, name)
		one = append(one, ':')
		one = append(one, val...)
		one = append(one, '}')
		if merr := json.Unmarshal(one, reflect.New(typ).Interface()); merr != nil {
			found = fieldErr(ErrInvalidValue, of.payload, name, "is %s: %v", clip(string(val), 40), merr)
			return found
		}
		return nil
	})
	if found != nil {
		return found
	}
	return fmt.Errorf("%w: %s: %v", ErrInvalidValue, of.payload, err)
}
