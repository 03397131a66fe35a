package queue

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func benchSnapshot(queued, nodes, free int) Snapshot {
	var s Snapshot
	s.Now = t0
	for i := range nodes {
		s.Nodes = append(s.Nodes, node(fmt.Sprintf("worker-%d", i%2+1), fmt.Sprintf("n-%d", i), 8, 80, "H100"))
	}
	for i := free; i < nodes; i++ {
		n := s.Nodes[i]
		s.Holdings = append(s.Holdings, Holding{GPRID: fmt.Sprintf("h%d", i), Workspace: fmt.Sprintf("hw-%d", i),
			Cluster: n.Cluster, Nodes: []string{n.Name}, Priority: 300, FreeAt: t0.Add(time.Hour)})
	}
	for i := range queued {
		s.Queue = append(s.Queue, req(fmt.Sprintf("g%06d", i), fmt.Sprintf("ws-%06d", i), 1+i%300, time.Duration(i)*time.Second).
			clusters("worker-1", "worker-2").build())
	}
	return s
}

// BenchmarkSchedule is the baseline of the admission benchmark: one pure
// scheduling pass (no bus, no storage) over 1,000 queued GPRs and 500 free
// nodes, which admits 500.
func BenchmarkSchedule(b *testing.B) {
	s := benchSnapshot(1000, 500, 500)
	var admitted int
	for b.Loop() {
		admitted = len(Schedule(s).Admit)
	}
	if admitted != 500 {
		b.Fatalf("admitted %d, want 500", admitted)
	}
	b.ReportMetric(float64(admitted)*float64(b.N)/b.Elapsed().Seconds(), "admissions/s")
}

// BenchmarkDecision measures one admission decision with a deep queue: every
// node is held but one, which has just come free, and Q GPRs wait. Each
// iteration is one pass of Decide over an indexed snapshot (what the
// scheduling loop runs); p50 and p99 of the passes are reported.
func BenchmarkDecision(b *testing.B) {
	for _, size := range []struct{ queued, nodes int }{{1000, 500}, {10000, 2000}, {100000, 2000}} {
		b.Run(fmt.Sprintf("queued=%d/nodes=%d", size.queued, size.nodes), func(b *testing.B) {
			// As the scheduler passes it: the queue in an Order, free nodes
			// and holders kept up to date by every write.
			s := indexed(benchSnapshot(size.queued, size.nodes, 1))
			var took []time.Duration
			for b.Loop() {
				t := time.Now()
				plan := Decide(s)
				took = append(took, time.Since(t))
				if len(plan.Admit) != 1 {
					b.Fatalf("admitted %d, want 1", len(plan.Admit))
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkStatusHead measures what the scheduler computes for queue-status
// events: the reasons and the estimated starts of the first 1,000 GPRs of a
// queue of 100,000 on 2,000 nodes, all held.
func BenchmarkStatusHead(b *testing.B) {
	s := indexed(benchSnapshot(100000, 2000, 0))
	for b.Loop() {
		if plan := ScheduleHead(s, 1000); len(plan.Position) != 1000 {
			b.Fatalf("explained %d, want 1000", len(plan.Position))
		}
		if est := EstimateHead(s, 1000); len(est) != 1000 {
			b.Fatalf("estimated %d, want 1000", len(est))
		}
	}
}
