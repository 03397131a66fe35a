package natsapi

import (
	"testing"
	"time"

	"github.com/open-egs/egs/libs/events"
)

// A node's record decides which batches are applied already and how many
// are missing, across agent restarts (boots) and the agent's own drops.
func TestNodeSequences(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	batch := func(boot string, seq, dropped uint64) *events.GPUSampleBatch {
		return &events.GPUSampleBatch{Boot: boot, Seq: seq, Dropped: dropped, At: t0.Add(time.Duration(seq) * time.Second)}
	}
	var st nodeSeq
	st.take(batch("A", 100, 0), t0)
	for _, c := range []struct {
		b           *events.GPUSampleBatch
		stale       bool
		gap         uint64
		description string
	}{
		{batch("A", 100, 0), true, 0, "the same batch again"},
		{batch("A", 99, 0), true, 0, "an earlier batch of the boot"},
		{batch("A", 101, 0), false, 0, "the next batch"},
		{batch("A", 104, 0), false, 3, "three missing"},
		{batch("A", 104, 2), false, 0, "a jump while the agent counted drops"},
	} {
		if got := stale(&st, c.b); got != c.stale {
			t.Errorf("%s: stale = %v, want %v", c.description, got, c.stale)
		}
		if got := gap(&st, c.b); got != c.gap {
			t.Errorf("%s: gap = %d, want %d", c.description, got, c.gap)
		}
	}
	// The agent restarts: boot B is taken, boot A becomes stale even when
	// it is read again from the stream, and stays so through later boots.
	st.take(batch("B", 1, 0), t0)
	st.take(batch("B", 2, 0), t0)
	if !stale(&st, batch("A", 100, 0)) || !stale(&st, batch("A", 101, 0)) {
		t.Error("batches of the boot before are not stale")
	}
	if !stale(&st, batch("B", 1, 0)) || stale(&st, batch("B", 3, 0)) {
		t.Error("boot B: sequence 1 must be stale and 3 not")
	}
	for _, boot := range []string{"C", "D", "E", "F"} {
		st.take(batch(boot, 1, 0), t0)
	}
	if len(st.old) != maxOldBoots || stale(&st, batch("A", 100, 0)) || !stale(&st, batch("B", 2, 0)) {
		t.Errorf("old boots = %v, want the last %d (B..E)", st.old, maxOldBoots)
	}
}

// A node's missing batches are read from a minute before the earlier of its
// last batch's sample time and arrival: an agent clock running ahead (or
// behind) skips nothing.
func TestReadFrom(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ahead := nodeSeq{at: t0.Add(5 * time.Minute), seen: t0}
	if got := ahead.readFrom(); !got.Equal(t0.Add(-time.Minute)) {
		t.Errorf("agent ahead: read from %s, want a minute before arrival", got)
	}
	behind := nodeSeq{at: t0.Add(-5 * time.Minute), seen: t0}
	if got := behind.readFrom(); !got.Equal(t0.Add(-6 * time.Minute)) {
		t.Errorf("agent behind: read from %s, want a minute before its sample time", got)
	}
}
