package queue

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSchedule is the baseline of the admission benchmark: one pure
// scheduling pass (no bus, no storage) over 1,000 queued GPRs and 500 free
// nodes, which admits 500.
func BenchmarkSchedule(b *testing.B) {
	var nodes []Node
	for c := range 2 {
		for i := range 250 {
			nodes = append(nodes, node(fmt.Sprintf("worker-%d", c+1), fmt.Sprintf("n-%d", i), 8, 80, "H100"))
		}
	}
	var q []Request
	for i := range 1000 {
		q = append(q, req(fmt.Sprintf("g%04d", i), fmt.Sprintf("ws-%04d", i), 1+i%300, time.Duration(i)*time.Second).
			clusters("worker-1", "worker-2").build())
	}
	s := Snapshot{Now: t0, Queue: q, Nodes: nodes}
	var admitted int
	for b.Loop() {
		admitted = len(Schedule(s).Admit)
	}
	if admitted != 500 {
		b.Fatalf("admitted %d, want 500", admitted)
	}
	b.ReportMetric(float64(admitted)*float64(b.N)/b.Elapsed().Seconds(), "admissions/s")
}
