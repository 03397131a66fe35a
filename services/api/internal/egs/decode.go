package egs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/open-egs/egs/libs/rpc"
)

// Decode unmarshals the JSON object body into v (a pointer to a struct).
// Keys match case-insensitively, unknown keys are ignored and null leaves a
// field unset. A body that is empty, not JSON, not an object or followed by
// more data is a BAD_REQUEST; a known key with a value of the wrong type is
// UNPROCESSABLE_ENTITY naming the key.
func Decode(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return rpc.Errorf(rpc.BadRequest, "request body is empty")
	}
	if trimmed[0] != '{' {
		return rpc.Errorf(rpc.BadRequest, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return rpc.Errorf(rpc.Invalid, "%q has the wrong type (got %s)", te.Field, te.Value)
		}
		return rpc.Errorf(rpc.BadRequest, "malformed JSON body")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return rpc.Errorf(rpc.BadRequest, "malformed JSON body: data after the object")
	}
	return nil
}

func invalid(format string, args ...any) error { return rpc.Errorf(rpc.Invalid, format, args...) }

// Limits of display names: a GPR's name (gprName) is free text for people,
// never part of a path or query; requestName of a wait-time request is at
// most 40 characters (§6.6).
const (
	MaxDisplayNameLen = 253
	MaxRequestNameLen = 40
)

// validDisplayName accepts 1..max characters of printable text, not only spaces.
func validDisplayName(s string, max int) bool {
	if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func displayNameError(key string, max int) error {
	return invalid("%q must be 1 to %d printable characters", key, max)
}

func nameError(key string) error {
	return invalid("%q must be a DNS-style name ([a-z0-9-], at most 63 characters)", key)
}

// str returns *p or "" when p is nil.
func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func boolean(p *bool) bool { return p != nil && *p }

// nonNil returns s, or an empty slice when s is nil, so it encodes as [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
