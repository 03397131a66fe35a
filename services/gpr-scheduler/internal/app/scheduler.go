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
	"strings"
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
	rec    *gpr.Record
	rev    uint64
	staged int       // outbox events in the batch being sent
	dirty  bool      // the stored record still lists events already published
	sentAt time.Time // when its pending apply/remove command was last sent
}

type ledgerEntry struct {
	alloc rpc.Allocation
	rev   uint64
}

// Scheduler is the GPR scheduler. Create it with New, then Start it.
type Scheduler struct {
	nc     *nats.Conn
	pub    *bus.Publisher
	stream jetstream.Stream
	gprs   jetstream.KeyValue
	ledger jetstream.KeyValue
	log    *slog.Logger
	now    func() time.Time
	crash  func(string)
	fence  func() error
	resend time.Duration

	wake chan struct{}

	mu             sync.Mutex
	out            []bus.Outgoing // the batch the current operation publishes
	outRecs        []*entry       // records whose outbox events are in out
	retryCmds      []bus.Outgoing // commands whose publish failed
	recs           map[string]*entry
	allocs         map[string]*ledgerEntry // node key (cluster/node) → entry
	nodes          map[string]queue.Node   // node key → node
	nodeCache      []queue.Node            // the nodes as a list (read-only); nil when nodes changed
	estimates      map[string]time.Time    // of the first estimatesDepth queued GPRs, at version estimatesAt
	estimatesAt    int64
	estimatesDepth int
	bootID         string
	deleted        map[string]bool // workspaces deleted since start: no new GPRs

	// The queue in order, the free nodes, the GPRs holding nodes and each
	// workspace's holder, kept up to date by every write (track, nodeChanged)
	// so a pass costs what changed, not the length of the queue.
	order     *queue.Order
	heads     *queue.Order          // each workspace's first queued GPR, for workspaces that hold none
	headOf    map[string]string     // workspace → its GPR in heads
	free      map[string]queue.Node // node key → schedulable node no ledger entry holds
	holders   map[string]string     // workspace → its active GPR
	coverBy   map[string]string     // node key → the active GPR whose record names it
	coverOf   map[string][]string   // active GPR → the node keys it names
	holdings  []queue.Holding       // of the active GPRs and the ledger; rebuilt when holdDirty
	holdDirty bool
	active    map[string]*entry

	live          map[string]map[string]*entry // workspace → its GPRs that are not over
	unsent        map[string]*entry            // GPRs whose events failed to publish
	analysis      *queue.Plan                  // why the first analysisDepth queued GPRs wait, at version analysisAt
	analysisAt    int64
	analysisDepth int
	// Queue statuses pushed (PublishQueueStatus): version counts the
	// writes that may change them, statusAt is the version last pushed.
	version    int64
	statusAt   int64
	statusSeq  int64
	lastStatus map[string]pushedStatus
	// delays counts, per queued GPR, the times its estimated start moved
	// later since its record last took them in (at its admission).
	delays map[string]int
}

// Options configure New.
type Options struct {
	NATS       *nats.Conn
	JS         jetstream.JetStream
	GPRStream  jetstream.Stream // to tell, after a crash, which outbox events were published
	GPRs       jetstream.KeyValue
	Ledger     jetstream.KeyValue
	Log        *slog.Logger
	Now        func() time.Time
	CrashPoint func(string)
	// Fence, when set, is asked before every write; an error (this replica
	// may no longer be the active one) refuses the write.
	Fence func() error
	// Resend is how long a GPR waits for the provisioner's report before its
	// command is sent again (default 30s).
	Resend time.Duration
}

// New builds a scheduler and loads its state from the buckets.
func New(ctx context.Context, o Options) (*Scheduler, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CrashPoint == nil {
		o.CrashPoint = func(string) {}
	}
	if o.Fence == nil {
		o.Fence = func() error { return nil }
	}
	if o.Resend <= 0 {
		o.Resend = 30 * time.Second
	}
	s := &Scheduler{
		nc: o.NATS, pub: bus.NewPublisher(o.JS), stream: o.GPRStream, gprs: o.GPRs, ledger: o.Ledger, log: o.Log,
		now: o.Now, crash: o.CrashPoint, fence: o.Fence, resend: o.Resend, deleted: map[string]bool{},
		order: queue.NewOrder(), heads: queue.NewOrder(), headOf: map[string]string{}, free: map[string]queue.Node{}, holders: map[string]string{}, coverBy: map[string]string{}, coverOf: map[string][]string{}, holdDirty: true, lastStatus: map[string]pushedStatus{}, delays: map[string]int{}, statusAt: -1, active: map[string]*entry{}, live: map[string]map[string]*entry{}, unsent: map[string]*entry{}, wake: make(chan struct{}, 1),
		recs: map[string]*entry{}, allocs: map[string]*ledgerEntry{}, nodes: map[string]queue.Node{},
		bootID: strconv.FormatInt(o.Now().UnixNano(), 36),
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Scheduler) load(ctx context.Context) error {
	entries, err := bus.ReadAll(ctx, s.gprs, "")
	if err != nil {
		return err
	}
	for _, e := range entries {
		var r gpr.Record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return fmt.Errorf("decode gpr %s: %w", e.Key(), err)
		}
		s.recs[r.ID] = &entry{rec: &r, rev: e.Revision()}
		s.track(s.recs[r.ID])
	}
	entries, err = bus.ReadAll(ctx, s.ledger, "")
	if err != nil {
		return err
	}
	for _, e := range entries {
		var a rpc.Allocation
		if err := json.Unmarshal(e.Value(), &a); err != nil {
			return fmt.Errorf("decode ledger %s: %w", e.Key(), err)
		}
		s.setAlloc(a.Cluster+"/"+a.Node, &ledgerEntry{alloc: a, rev: e.Revision()})
	}
	return nil
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
	if err := s.sweep(ctx); err != nil {
		return err
	}
	for _, e := range s.recs {
		if err := s.dropPublished(ctx, e); err != nil {
			return err
		}
		s.stage(e)
		switch e.rec.State {
		case gpr.Provisioning, gpr.Provisioned:
			s.stageCommand(events.CommandApply, e.rec, e.rec.AdmitSeq, "r"+s.bootID)
		case gpr.Releasing:
			s.stageCommand(events.CommandRemove, e.rec, e.rec.ReleaseSeq, "r"+s.bootID)
		}
		e.sentAt = s.now()
	}
	if err := s.send(ctx); err != nil {
		return err
	}
	s.Wake()
	return nil
}

// save writes e's record (create when new, else compare-and-set on its revision).
func (s *Scheduler) save(ctx context.Context, e *entry) error {
	if err := s.fence(); err != nil {
		return notActive(err)
	}
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
	e.dirty = false
	s.track(e)
	return nil
}

// track notes a GPR's new state for the queue order and the holdings.
func (s *Scheduler) track(e *entry) {
	id, ws := e.rec.ID, e.rec.Workspace
	if e.rec.Active() {
		s.active[id] = e
		s.holders[ws] = id
		s.cover(id, e.rec)
	} else {
		delete(s.active, id)
		if s.holders[ws] == id {
			delete(s.holders, ws)
		}
		s.uncover(id)
	}
	if e.rec.Final() {
		delete(s.live[ws], id)
	} else {
		if s.live[ws] == nil {
			s.live[ws] = map[string]*entry{}
		}
		s.live[ws][id] = e
	}
	if e.rec.State == gpr.Queued {
		s.order.Set(request(e.rec))
	} else {
		s.order.Remove(id)
	}
	s.refreshHead(ws)
	s.holdDirty = true
	s.analysis = nil
	s.version++
}

// untrack forgets a purged GPR.
func (s *Scheduler) untrack(e *entry) {
	id, ws := e.rec.ID, e.rec.Workspace
	delete(s.recs, id)
	delete(s.active, id)
	delete(s.live[ws], id)
	if s.holders[ws] == id {
		delete(s.holders, ws)
	}
	s.uncover(id)
	s.order.Remove(id)
	s.refreshHead(ws)
	s.holdDirty = true
	s.analysis = nil
	s.version++
}

// refreshHead recomputes the workspace's entry in heads: its first queued
// GPR, or none while it holds a GPR. A workspace has at most a hundred
// queued GPRs (the contract's limit), so this costs little per write.
func (s *Scheduler) refreshHead(ws string) {
	var head queue.Request
	found := false
	if _, holds := s.holders[ws]; !holds {
		for _, e := range s.live[ws] {
			if e.rec.State != gpr.Queued {
				continue
			}
			if r := request(e.rec); !found || queue.Less(r, head) < 0 {
				head, found = r, true
			}
		}
	}
	if old, ok := s.headOf[ws]; ok && (!found || old != head.ID) {
		s.heads.Remove(old)
		delete(s.headOf, ws)
	}
	if found {
		s.heads.Set(head)
		s.headOf[ws] = head.ID
	}
}

// cover records that the active GPR id names its nodes: they are not free,
// whatever the ledger says (as in the plain snapshot, where every holding
// covers its nodes).
func (s *Scheduler) cover(id string, r *gpr.Record) {
	keys := make([]string, len(r.Nodes))
	for i, n := range r.Nodes {
		keys[i] = r.Cluster + "/" + n
	}
	if slices.Equal(keys, s.coverOf[id]) {
		return
	}
	s.uncover(id)
	s.coverOf[id] = keys
	for _, k := range keys {
		s.coverBy[k] = id
		s.nodeChanged(k)
	}
}

func (s *Scheduler) uncover(id string) {
	keys, ok := s.coverOf[id]
	if !ok {
		return
	}
	delete(s.coverOf, id)
	for _, k := range keys {
		if s.coverBy[k] == id {
			delete(s.coverBy, k)
		}
		s.nodeChanged(k)
	}
}

// setAlloc and dropAlloc change the ledger mirror; nodeChanged keeps the
// free set in step with it and with the inventory.
func (s *Scheduler) setAlloc(key string, le *ledgerEntry) {
	s.allocs[key] = le
	s.nodeChanged(key)
}

func (s *Scheduler) dropAlloc(key string) {
	delete(s.allocs, key)
	s.nodeChanged(key)
}

func (s *Scheduler) nodeChanged(key string) {
	if n, ok := s.nodes[key]; ok && n.Schedulable && s.allocs[key] == nil && s.coverBy[key] == "" {
		s.free[key] = n
	} else {
		delete(s.free, key)
	}
	s.holdDirty = true
	s.version++
}

// commit stores e after a transition from before. When the write fails, the
// stored record is read back: if it holds the transition (the write went
// through but its answer was lost) that is success; otherwise memory takes
// what is stored (or before, if it cannot be read) and the error is returned.
func (s *Scheduler) commit(ctx context.Context, e *entry, before gpr.Record) error {
	err := s.save(ctx, e)
	if err == nil {
		return nil
	}
	if s.fence() != nil {
		*e.rec = before
		return err
	}
	got, gerr := s.gprs.Get(ctx, e.rec.ID)
	if gerr != nil {
		*e.rec = before
		return errors.Join(err, gerr)
	}
	var stored gpr.Record
	if derr := json.Unmarshal(got.Value(), &stored); derr != nil {
		*e.rec = before
		return errors.Join(err, derr)
	}
	if stored.Seq == e.rec.Seq && stored.State == e.rec.State {
		e.rev = got.Revision()
		s.track(e)
		return nil
	}
	*e.rec, e.rev = stored, got.Revision()
	s.track(e)
	return err
}

// The outbox: a transition stores the record with its new events (one KV
// write), then the operation stages those events and any command, and send
// publishes the whole batch at once. Published events are dropped from the
// record in memory; the stored copy is trimmed by a later write (the next
// transition or an idle-time cleanup). A crash in between leaves published
// events in the stored outbox: Recover asks the stream which were published
// (dropPublished), so nothing is published twice even after the stream's
// de-duplication window.

// stage adds e's unsent outbox events to the batch.
func (s *Scheduler) stage(e *entry) {
	for _, p := range e.rec.Outbox[e.staged:] {
		subj, err := events.GPRSubject(p.Workspace, p.GPRID, p.Event)
		if err != nil {
			s.log.Error("gpr event subject", logkey.GPRID, p.GPRID, logkey.Err, err)
			continue
		}
		ev, err := bus.NewEvent(eventID(p.GPRID, p.Seq), Source, events.EventType("gpr", string(p.Event)), p.GPRID, p.At, p)
		if err != nil {
			s.log.Error("gpr event", logkey.GPRID, p.GPRID, logkey.Err, err)
			continue
		}
		s.out = append(s.out, bus.Outgoing{Subject: subj, Event: ev})
	}
	if len(e.rec.Outbox) > e.staged {
		e.staged = len(e.rec.Outbox)
		s.outRecs = append(s.outRecs, e)
	}
}

func eventID(gprID string, seq int) string { return gprID + "." + strconv.Itoa(seq) }

// stageCommand adds an apply or remove command for r to the batch. Its id is
// derived from the event that ordered it, so a repeat is dropped by the
// stream; suffix marks deliberate re-sends after a restart.
func (s *Scheduler) stageCommand(verb string, r *gpr.Record, seq int, suffix string) {
	subj, err := events.ProvisionerCommandSubject(verb)
	if err != nil {
		s.log.Error("command subject", logkey.GPRID, r.ID, logkey.Err, err)
		return
	}
	id := r.ID + "." + verb + "." + strconv.Itoa(seq)
	if suffix != "" {
		id += "." + suffix
	}
	cmd := events.ProvisionCommand{GPRID: r.ID, Workspace: r.Workspace, Cluster: r.Cluster, Nodes: slices.Clone(r.Nodes), Seq: seq}
	ev, err := bus.NewEvent(id, Source, events.EventType("provisioner", verb), r.ID, s.now(), cmd)
	if err != nil {
		s.log.Error("command", logkey.GPRID, r.ID, logkey.Err, err)
		return
	}
	s.out = append(s.out, bus.Outgoing{Subject: subj, Event: ev})
}

// send publishes the batch. On failure the events stay in their outboxes and
// the commands are kept; the loop retries both.
func (s *Scheduler) send(ctx context.Context) error {
	out, recs := s.out, s.outRecs
	s.out, s.outRecs = nil, nil
	if len(out) == 0 {
		return nil
	}
	err := s.pub.PublishBatch(ctx, out)
	if err != nil {
		for _, e := range recs {
			e.staged = 0
			s.unsent[e.rec.ID] = e
		}
		for _, o := range out {
			if o.Event.Type == events.EventType("provisioner", events.CommandApply) || o.Event.Type == events.EventType("provisioner", events.CommandRemove) {
				s.retryCmds = append(s.retryCmds, o)
			}
		}
		return err
	}
	for _, e := range recs {
		e.rec.Outbox = slices.Clone(e.rec.Outbox[e.staged:])
		e.staged = 0
		e.dirty = true
		if len(e.rec.Outbox) == 0 {
			delete(s.unsent, e.rec.ID)
		}
		if e.rec.State == gpr.Cancelled && len(e.rec.Outbox) == 0 {
			s.purge(ctx, e)
		}
	}
	return nil
}

// dropPublished removes from e's stored outbox the events the stream already
// holds (the last message of each event's subject tells).
func (s *Scheduler) dropPublished(ctx context.Context, e *entry) error {
	if len(e.rec.Outbox) == 0 || s.stream == nil {
		return nil
	}
	keep := e.rec.Outbox[:0]
	for _, p := range e.rec.Outbox {
		subj, err := events.GPRSubject(p.Workspace, p.GPRID, p.Event)
		if err != nil {
			return err
		}
		m, err := s.stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			keep = append(keep, p)
			continue
		}
		if err != nil {
			return fmt.Errorf("check published %s: %w", subj, err)
		}
		id := m.Header.Get(bus.HeaderID)
		seq, _ := strconv.Atoi(id[strings.LastIndexByte(id, '.')+1:])
		if seq < p.Seq {
			keep = append(keep, p)
		}
	}
	if len(keep) != len(e.rec.Outbox) {
		e.rec.Outbox = keep
		e.dirty = true
	}
	return nil
}

// purge deletes a cancelled GPR once its events are out: a cancelled GPR is
// gone (GET answers 404, D14).
func (s *Scheduler) purge(ctx context.Context, e *entry) {
	if err := s.gprs.Delete(ctx, e.rec.ID, jetstream.LastRevision(e.rev)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.log.Warn("delete cancelled gpr; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
		return
	}
	s.untrack(e)
}

// tidy persists trimmed outboxes and purges leftover cancelled GPRs, a few at
// a time; the loop calls it when it has nothing else to do.
func (s *Scheduler) tidy(ctx context.Context, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sweep(ctx); err != nil {
		s.log.Warn("ledger sweep", logkey.Err, err)
	}
	for _, e := range s.recs {
		if limit == 0 {
			return
		}
		if e.rec.State == gpr.Cancelled && len(e.rec.Outbox) == 0 {
			s.purge(ctx, e)
			limit--
			continue
		}
		if !e.dirty || len(e.rec.Outbox) > 0 {
			continue
		}
		if err := s.save(ctx, e); err != nil {
			s.log.Warn("trim outbox", logkey.GPRID, e.rec.ID, logkey.Err, err)
			return
		}
		limit--
	}
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
	s.dropAlloc(key)
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
	if err := s.fence(); err != nil {
		return notActive(err)
	}
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
				if ferr := s.freeNode(ctx, m); ferr != nil {
					s.log.Warn("undo reservation; the sweep will", logkey.Node, m, logkey.Err, ferr)
				}
			}
			if errors.Is(err, jetstream.ErrKeyExists) {
				s.adopt(ctx, cluster, n)
			}
			return fmt.Errorf("reserve %s/%s for %s: %w", cluster, n, r.ID, err)
		}
		key := cluster + "/" + n
		s.setAlloc(key, &ledgerEntry{alloc: a, rev: rev})
		made = append(made, key)
	}
	return nil
}

// adopt reads a ledger entry memory did not know (written by an earlier
// leader, or by a write whose answer was lost), so the node counts as taken;
// the sweep frees it if no GPR accounts for it.
func (s *Scheduler) adopt(ctx context.Context, cluster, node string) {
	got, err := s.ledger.Get(ctx, events.NodeKey(cluster, node))
	if err != nil {
		return
	}
	var a rpc.Allocation
	if json.Unmarshal(got.Value(), &a) == nil {
		s.setAlloc(a.Cluster+"/"+a.Node, &ledgerEntry{alloc: a, rev: got.Revision()})
	}
}

// sweep frees ledger entries that no active GPR accounts for.
func (s *Scheduler) sweep(ctx context.Context) error {
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
	return nil
}

// notActive tells the caller (503) that this replica may have lost the lease:
// the request may be retried and will reach the active replica.
func notActive(err error) error {
	return fmt.Errorf("%w (%v)", rpc.Errorf(rpc.Unavailable, "the scheduler is changing its active replica; retry"), err)
}

func newGPRID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return "gpr-" + h[:8] + "-" + h[8:]
}

// Count is the number of GPRs held in memory.
func (s *Scheduler) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}
