// Package app is the GPR scheduler's use cases: the RPC methods, the reaction
// to the provisioner's reports and the scheduling loop. It keeps every GPR in
// memory, mirrored write-through to its KV bucket (it is the only writer), and
// serialises all changes under one mutex, so a decision never races another.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/gpr-scheduler/internal/gpr"
	"github.com/open-egs/egs/services/gpr-scheduler/internal/queue"
)

// Source is the CloudEvents source of the scheduler's events.
const Source = "egs/gpr-scheduler"

// Crash points, for tests that kill the scheduler at the worst moment.
const (
	CrashAfterAdmit = "after-admit" // admission stored, apply command not yet sent
)

type entry struct {
	rec *gpr.Record
	rev uint64
}

type ledgerEntry struct {
	alloc rpc.Allocation
	rev   uint64
}

// Scheduler is the GPR scheduler. Create it with New, then Start it.
type Scheduler struct {
	nc     *nats.Conn
	pub    *bus.Publisher
	gprs   jetstream.KeyValue
	ledger jetstream.KeyValue
	log    *slog.Logger
	now    func() time.Time
	crash  func(string)

	wake chan struct{}

	mu        sync.Mutex
	recs      map[string]*entry
	allocs    map[string]*ledgerEntry // node key (cluster/node) → entry
	nodes     map[string]queue.Node   // node key → node
	waiting   map[string]string       // gprId → why it waits
	estimates map[string]time.Time
	estDirty  bool
	bootID    string
}

// Options configure New.
type Options struct {
	NATS       *nats.Conn
	JS         jetstream.JetStream
	GPRs       jetstream.KeyValue
	Ledger     jetstream.KeyValue
	Log        *slog.Logger
	Now        func() time.Time
	CrashPoint func(string)
}

// New builds a scheduler and loads its state from the buckets.
func New(ctx context.Context, o Options) (*Scheduler, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CrashPoint == nil {
		o.CrashPoint = func(string) {}
	}
	s := &Scheduler{
		nc: o.NATS, pub: bus.NewPublisher(o.JS), gprs: o.GPRs, ledger: o.Ledger, log: o.Log,
		now: o.Now, crash: o.CrashPoint, wake: make(chan struct{}, 1),
		recs: map[string]*entry{}, allocs: map[string]*ledgerEntry{}, nodes: map[string]queue.Node{},
		waiting: map[string]string{}, estDirty: true, bootID: strconv.FormatInt(o.Now().UnixNano(), 36),
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Scheduler) load(ctx context.Context) error {
	keys, err := listKeys(ctx, s.gprs)
	if err != nil {
		return err
	}
	for _, k := range keys {
		e, err := s.gprs.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("load gpr %s: %w", k, err)
		}
		var r gpr.Record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return fmt.Errorf("decode gpr %s: %w", k, err)
		}
		s.recs[r.ID] = &entry{rec: &r, rev: e.Revision()}
	}
	keys, err = listKeys(ctx, s.ledger)
	if err != nil {
		return err
	}
	for _, k := range keys {
		e, err := s.ledger.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("load ledger %s: %w", k, err)
		}
		var a rpc.Allocation
		if err := json.Unmarshal(e.Value(), &a); err != nil {
			return fmt.Errorf("decode ledger %s: %w", k, err)
		}
		s.allocs[a.Cluster+"/"+a.Node] = &ledgerEntry{alloc: a, rev: e.Revision()}
	}
	return nil
}

func listKeys(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys of %s: %w", kv.Bucket(), err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// Wake asks the loop for a scheduling pass soon; calls coalesce.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Recover repairs what a crash may have left half done: ledger entries of
// GPRs that do not hold those nodes are freed, unpublished events are
// published, and every GPR that holds or is acquiring nodes has its command
// sent again (the provisioner applies idempotently, which also heals a
// cluster that lost the hand-over, e.g. a restarted simulated one).
func (s *Scheduler) Recover(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, le := range s.allocs {
		e, ok := s.recs[le.alloc.GPRID]
		if ok && e.rec.Active() && e.rec.Cluster == le.alloc.Cluster && slices.Contains(e.rec.Nodes, le.alloc.Node) {
			continue
		}
		s.log.Warn("freeing orphaned allocation", logkey.Node, key, logkey.GPRID, le.alloc.GPRID)
		if err := s.freeNode(ctx, key); err != nil {
			return err
		}
	}
	for _, e := range s.recs {
		if err := s.flush(ctx, e); err != nil {
			return err
		}
		switch e.rec.State {
		case gpr.Provisioning, gpr.Provisioned:
			if err := s.command(ctx, events.CommandApply, e.rec, e.rec.AdmitSeq, "r"+s.bootID); err != nil {
				return err
			}
		case gpr.Releasing:
			if err := s.command(ctx, events.CommandRemove, e.rec, e.rec.ReleaseSeq, "r"+s.bootID); err != nil {
				return err
			}
		}
	}
	s.Wake()
	return nil
}

// save writes e's record (create when new, else compare-and-set on its revision).
func (s *Scheduler) save(ctx context.Context, e *entry) error {
	b, err := json.Marshal(e.rec)
	if err != nil {
		return fmt.Errorf("encode gpr %s: %w", e.rec.ID, err)
	}
	var rev uint64
	if e.rev == 0 {
		rev, err = s.gprs.Create(ctx, e.rec.ID, b)
	} else {
		rev, err = s.gprs.Update(ctx, e.rec.ID, b, e.rev)
	}
	if err != nil {
		return fmt.Errorf("store gpr %s: %w", e.rec.ID, err)
	}
	e.rev = rev
	s.estDirty = true
	return nil
}

// flush publishes the record's outbox in order, then clears it. A crash in
// between republishes with the same ids, which the stream de-duplicates.
func (s *Scheduler) flush(ctx context.Context, e *entry) error {
	if len(e.rec.Outbox) == 0 {
		return s.purgeIfCancelled(ctx, e)
	}
	for _, p := range e.rec.Outbox {
		subj, err := events.GPRSubject(p.Workspace, p.GPRID, p.Event)
		if err != nil {
			return err
		}
		ev, err := bus.NewEvent(p.GPRID+"."+strconv.Itoa(p.Seq), Source, events.EventType("gpr", string(p.Event)), p.GPRID, p.At, p)
		if err != nil {
			return err
		}
		if err := s.pub.Publish(ctx, subj, ev); err != nil {
			return err
		}
	}
	e.rec.Outbox = nil
	if err := s.save(ctx, e); err != nil {
		return err
	}
	return s.purgeIfCancelled(ctx, e)
}

// purgeIfCancelled deletes a cancelled GPR once its events are out: a
// cancelled GPR is gone (GET answers 404, D14).
func (s *Scheduler) purgeIfCancelled(ctx context.Context, e *entry) error {
	if e.rec.State != gpr.Cancelled {
		return nil
	}
	if err := s.gprs.Delete(ctx, e.rec.ID, jetstream.LastRevision(e.rev)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete cancelled gpr %s: %w", e.rec.ID, err)
	}
	delete(s.recs, e.rec.ID)
	delete(s.waiting, e.rec.ID)
	return nil
}

// command sends an apply or remove command for rec. The message id is derived
// from the event that ordered it, so a repeat is dropped by the stream; suffix
// distinguishes deliberate re-sends after a restart.
func (s *Scheduler) command(ctx context.Context, verb string, r *gpr.Record, seq int, suffix string) error {
	subj, err := events.ProvisionerCommandSubject(verb)
	if err != nil {
		return err
	}
	id := r.ID + "." + verb + "." + strconv.Itoa(seq)
	if suffix != "" {
		id += "." + suffix
	}
	cmd := events.ProvisionCommand{GPRID: r.ID, Workspace: r.Workspace, Cluster: r.Cluster, Nodes: slices.Clone(r.Nodes), Seq: seq}
	ev, err := bus.NewEvent(id, Source, events.EventType("provisioner", verb), r.ID, s.now(), cmd)
	if err != nil {
		return err
	}
	return s.pub.Publish(ctx, subj, ev)
}

func (s *Scheduler) freeNode(ctx context.Context, key string) error {
	le, ok := s.allocs[key]
	if !ok {
		return nil
	}
	err := s.ledger.Delete(ctx, events.NodeKey(le.alloc.Cluster, le.alloc.Node), jetstream.LastRevision(le.rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("free %s: %w", key, err)
	}
	delete(s.allocs, key)
	s.estDirty = true
	return nil
}

func (s *Scheduler) freeNodesOf(ctx context.Context, r *gpr.Record) error {
	for key, le := range s.allocs {
		if le.alloc.GPRID == r.ID {
			if err := s.freeNode(ctx, key); err != nil {
				return err
			}
		}
	}
	return nil
}

// reserve records in the ledger that nodes belong to r. Each entry is created
// with compare-and-set, so a node can never be given to two GPRs; on conflict
// the entries made so far are undone.
func (s *Scheduler) reserve(ctx context.Context, r *gpr.Record, cluster string, nodes []string) error {
	var made []string
	for _, n := range nodes {
		a := rpc.Allocation{Cluster: cluster, Node: n, GPRID: r.ID, GPRName: r.Name, Workspace: r.Workspace,
			GPUs: r.Spec.GPUsPerNode, At: s.now()}
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		rev, err := s.ledger.Create(ctx, events.NodeKey(cluster, n), b)
		if err != nil {
			for _, m := range made {
				_ = s.freeNode(ctx, m)
			}
			return fmt.Errorf("reserve %s/%s for %s: %w", cluster, n, r.ID, err)
		}
		key := cluster + "/" + n
		s.allocs[key] = &ledgerEntry{alloc: a, rev: rev}
		made = append(made, key)
	}
	return nil
}

func newGPRID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return "gpr-" + h[:8] + "-" + h[8:]
}
