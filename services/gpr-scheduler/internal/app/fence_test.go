package app

import (
	"errors"
	"testing"

	"github.com/open-egs/egs/libs/rpc"
)

// A write refused by the fence reaches the client as UNAVAILABLE (503, retry),
// not as an internal error.
func TestNotActiveIsUnavailable(t *testing.T) {
	err := notActive(errors.New("scheduler lease not renewed for 11s: not writing"))
	if got := rpc.CodeOf(err); got != rpc.Unavailable {
		t.Fatalf("code %s, want %s", got, rpc.Unavailable)
	}
}
