package store_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/store"
)

// FuzzInsertEntry sends arbitrary request, metadata and error-message bytes
// through InsertEntry into a real PostgreSQL: each is either stored and read
// back as valid JSON, or refused with ErrInvalidEntry. Any other error is the
// kind the ingest would take for "database down" and retry for ever.
func FuzzInsertEntry(f *testing.F) {
	for _, seed := range []struct{ req, meta, msg string }{
		{`{"amount":42}`, `{"region":"eu"}`, "upstream timeout"},
		{`{"k":"a\u0000b"}`, ``, ""},
		{`"\ud800"`, `{"k":"\udc00"}`, "x"},
		{"\"\xff\"", `{}`, "boom\x00"},
		{`{"n":1e1000000}`, `{"n":-1e-1000000}`, ""},
		{`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, ``, "é"},
		{`"\uDBFF\uDFFF"`, `{"\u00e9":"\ud83d\ude00"}`, "😀"},
	} {
		f.Add([]byte(seed.req), []byte(seed.meta), seed.msg)
	}
	s, _, _ := newStore(f)
	f.Fuzz(func(t *testing.T, req, meta []byte, msg string) {
		e := entry("fuzz", 0)
		e.ID = uuid.NewString()
		e.Request, e.Metadata, e.ErrorMessage = req, meta, msg
		err := s.InsertEntry(t.Context(), e)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidEntry) {
				t.Fatalf("insert failed with an error that is not ErrInvalidEntry: %v", err)
			}
			return
		}
		got, err := s.Get(t.Context(), e.ID)
		if err != nil {
			t.Fatalf("get the stored entry: %v", err)
		}
		if len(got.Request) > 0 && !json.Valid(got.Request) {
			t.Fatalf("stored request is not valid JSON: %q", got.Request)
		}
		if len(got.Metadata) > 0 && !json.Valid(got.Metadata) {
			t.Fatalf("stored metadata is not valid JSON: %q", got.Metadata)
		}
		if got.ErrorMessage != msg {
			t.Fatalf("error message %q stored as %q", msg, got.ErrorMessage)
		}
	})
}
