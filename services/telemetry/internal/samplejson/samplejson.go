// Package samplejson decodes the node agents' sample batch events (a
// CloudEvents JSON envelope whose data is an events.GPUSampleBatch) in one
// pass, without reflection and with few allocations. It reads the wire format
// as documented, unchanged: it is only a faster reader of it.
//
// The fast path handles what encoding/json.Marshal produces (and any valid
// JSON in the envelope's other attributes or in unknown fields, which it
// skips). Anything else, such as escaped strings, null values, keys that
// differ from the field names only in case, or invalid JSON, is handed to
// encoding/json, so the result and the errors are always encoding/json's.
package samplejson

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/open-egs/egs/libs/events"
)

// maxInterned bounds the table of interned strings (UUIDs, names, nodes); it
// is emptied when full.
const maxInterned = 1 << 18

// chunk is how many readings one slab allocation holds.
const chunk = 4096

// Decoder decodes sample batch events. The pointer fields and strings of the
// samples it returns share slabs and an intern table, so a caller may keep
// samples (copy the GPUSample values) after the next Decode; the GPUs slice
// of the batch it decodes into is reused. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	strs  map[string]string
	hints map[string]*hint // by node name
	u32   []uint32
	u64   []uint64
}

// hint holds the strings of a node's last batch, by position: a node sends
// the same GPUs in the same order each time, so comparing the bytes with
// them spares the intern table's lookups.
type hint struct {
	uuids, names []string
}

// NewDecoder returns a decoder.
func NewDecoder() *Decoder { return &Decoder{strs: map[string]string{}, hints: map[string]*hint{}} }

// hint returns the hint of node, made empty when new.
func (d *Decoder) hint(node string) *hint {
	h := d.hints[node]
	if h == nil {
		if len(d.hints) >= maxInterned/8 {
			clear(d.hints)
		}
		h = &hint{}
		d.hints[node] = h
	}
	return h
}

// hinted returns s as a string: slot's when equal, else interned and kept
// in slot. A nil slot only interns.
func (d *Decoder) hinted(s []byte, slots *[]string, i int) string {
	if slots == nil {
		return d.intern(s)
	}
	if i < len(*slots) && (*slots)[i] == string(s) {
		return (*slots)[i]
	}
	v := d.intern(s)
	for len(*slots) <= i {
		*slots = append(*slots, "")
	}
	(*slots)[i] = v
	return v
}

// envelope is what encoding/json decodes on the slow path.
type envelope struct {
	Data events.GPUSampleBatch `json:"data"`
}

// Decode replaces *b with the data of the event in data. It returns an error
// exactly when encoding/json would.
func (d *Decoder) Decode(data []byte, b *events.GPUSampleBatch) error {
	gpus := b.GPUs[:0]
	*b = events.GPUSampleBatch{GPUs: gpus}
	p := parser{d: d, buf: data}
	if p.envelope(b) {
		return nil
	}
	// Not into gpus: encoding/json decodes into reused elements without
	// zeroing them first.
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		*b = events.GPUSampleBatch{GPUs: gpus[:0]}
		return err
	}
	*b = env.Data
	return nil
}

func (d *Decoder) intern(s []byte) string {
	if v, ok := d.strs[string(s)]; ok {
		return v
	}
	if len(d.strs) >= maxInterned {
		clear(d.strs)
	}
	v := string(s)
	d.strs[v] = v
	return v
}

func (d *Decoder) newU32(v uint32) *uint32 {
	if len(d.u32) == 0 {
		d.u32 = make([]uint32, chunk)
	}
	p := &d.u32[0]
	d.u32 = d.u32[1:]
	*p = v
	return p
}

func (d *Decoder) newU64(v uint64) *uint64 {
	if len(d.u64) == 0 {
		d.u64 = make([]uint64, chunk/4)
	}
	p := &d.u64[0]
	d.u64 = d.u64[1:]
	*p = v
	return p
}

// parser reads one event. Each method returns false when the input is not
// one it handles; the caller then falls back to encoding/json.
type parser struct {
	d     *Decoder
	buf   []byte
	i     int
	depth int
}

func (p *parser) ws() {
	// what encoding/json writes has no white space: one test
	for p.i < len(p.buf) && p.buf[p.i] <= ' ' {
		switch p.buf[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// consume skips white space and then c.
func (p *parser) consume(c byte) bool {
	p.ws()
	if p.i < len(p.buf) && p.buf[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads '{', then each key and calls field with the parser on the
// value; field returns false to abandon the fast path.
func (p *parser) object(field func(key []byte) bool) bool {
	if !p.consume('{') {
		return false
	}
	if p.consume('}') {
		return true
	}
	for {
		p.ws()
		key, ok := p.rawString()
		if !ok || !p.consume(':') {
			return false
		}
		p.ws()
		if !field(key) {
			return false
		}
		if p.consume(',') {
			continue
		}
		return p.consume('}')
	}
}

// array reads '[' and calls elem for each element.
func (p *parser) array(elem func() bool) bool {
	if !p.consume('[') {
		return false
	}
	if p.consume(']') {
		return true
	}
	for {
		p.ws()
		if !elem() {
			return false
		}
		if p.consume(',') {
			continue
		}
		return p.consume(']')
	}
}

// unknown skips the value of a key no field has, unless it names one in
// another case (encoding/json matches keys case-insensitively).
func (p *parser) unknown(key []byte, fields []string) bool {
	for _, f := range fields {
		if strings.EqualFold(f, string(key)) {
			return false
		}
	}
	return p.skip()
}

func (p *parser) envelope(b *events.GPUSampleBatch) bool {
	ok := p.object(func(key []byte) bool {
		if string(key) == "data" {
			return p.batch(b)
		}
		return p.unknown(key, []string{"data"})
	})
	if !ok {
		return false
	}
	p.ws()
	return p.i == len(p.buf)
}

var batchFields = []string{"cluster", "node", "boot", "seq", "at", "gpus", "dropped"}

func (p *parser) batch(b *events.GPUSampleBatch) bool {
	b.GPUs = b.GPUs[:0]
	return p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "cluster":
			b.Cluster, ok = p.str()
		case "node":
			b.Node, ok = p.str()
		case "boot":
			b.Boot, ok = p.str()
		case "seq":
			b.Seq, ok = p.uint(64)
		case "dropped":
			b.Dropped, ok = p.uint(64)
		case "at":
			ok = p.time(&b.At)
		case "gpus":
			b.GPUs = b.GPUs[:0]
			var h *hint
			if b.Node != "" { // "node" comes first in what encoding/json writes
				h = p.d.hint(b.Node)
			}
			ok = p.array(func() bool {
				if len(b.GPUs) < cap(b.GPUs) {
					b.GPUs = b.GPUs[:len(b.GPUs)+1]
					b.GPUs[len(b.GPUs)-1] = events.GPUSample{}
				} else {
					b.GPUs = append(b.GPUs, events.GPUSample{})
				}
				return p.sample(&b.GPUs[len(b.GPUs)-1], h, len(b.GPUs)-1)
			})
		default:
			ok = p.unknown(key, batchFields)
		}
		return ok
	})
}

var sampleFields = []string{"uuid", "index", "name", "parentUuid", "lost", "gpuUtil", "memUtil", "memUsed", "memTotal",
	"memReserved", "powerMw", "powerLimitMw", "tempC", "smClockMhz", "memClockMhz", "eccCorrected", "eccUncorrected",
	"throttleReasons", "xids", "processes"}

// sample reads the i-th sample of a batch; h, when not nil, is the hint of
// the batch's node.
func (p *parser) sample(s *events.GPUSample, h *hint, i int) bool {
	var uuids, names *[]string
	if h != nil {
		uuids, names = &h.uuids, &h.names
	}
	hinted := func(slots *[]string) (string, bool) {
		raw, ok := p.rawString()
		if !ok {
			return "", false
		}
		return p.d.hinted(raw, slots, i), true
	}
	u32 := func(dst **uint32) bool {
		v, ok := p.uint(32)
		*dst = p.d.newU32(uint32(v))
		return ok
	}
	u64 := func(dst **uint64) bool {
		v, ok := p.uint(64)
		*dst = p.d.newU64(v)
		return ok
	}
	field := func(k int) bool {
		var ok bool
		switch k {
		case fUuid:
			s.UUID, ok = hinted(uuids)
		case fIndex:
			s.Index, ok = p.int()
		case fName:
			s.Name, ok = hinted(names)
		case fParentUuid:
			s.ParentUUID, ok = p.str()
		case fLost:
			s.Lost, ok = p.bool()
		case fGpuUtil:
			ok = u32(&s.GPUUtil)
		case fMemUtil:
			ok = u32(&s.MemUtil)
		case fMemUsed:
			s.MemUsedBytes, ok = p.uint(64)
		case fMemTotal:
			s.MemTotalBytes, ok = p.uint(64)
		case fMemReserved:
			s.MemReservedBytes, ok = p.uint(64)
		case fPowerMw:
			ok = u32(&s.PowerMilliW)
		case fPowerLimitMw:
			ok = u32(&s.PowerLimitMW)
		case fTempC:
			ok = u32(&s.TempC)
		case fSmClockMhz:
			ok = u32(&s.SMClockMHz)
		case fMemClockMhz:
			ok = u32(&s.MemClockMHz)
		case fEccCorrected:
			ok = u64(&s.ECCCorrected)
		case fEccUncorrected:
			ok = u64(&s.ECCUncorrected)
		case fThrottleReasons:
			s.ThrottleReasons, ok = p.uint(64)
		case fXids:
			s.XIDs = []uint64{} // kept by the caller: never reused
			ok = p.array(func() bool {
				v, ok := p.uint(64)
				s.XIDs = append(s.XIDs, v)
				return ok
			})
		case fProcesses:
			s.Processes = []events.GPUProcess{}
			ok = p.array(func() bool {
				var pr events.GPUProcess
				ok := p.process(&pr)
				s.Processes = append(s.Processes, pr)
				return ok
			})
		}
		return ok
	}
	return p.fields(sampleKeys, field, sampleFields)
}

// fields reads an object whose keys are expected in the order of keys (the
// order encoding/json writes a struct's fields in, some omitted): each key
// is first matched against the keys that may come next, a comparison of
// bytes, and only otherwise read and looked up. field reads the value of
// key k; the keys of unknown fields are checked against names as unknown
// does.
func (p *parser) fields(keys *orderedKeys, field func(k int) bool, names []string) bool {
	if !p.consume('{') {
		return false
	}
	if p.consume('}') {
		return true
	}
	next := 0
	for {
		p.ws()
		k := keys.match(p.buf[p.i:], next)
		if k >= 0 {
			p.i += len(keys.lits[k])
		} else {
			key, ok := p.rawString()
			if !ok || !p.consume(':') {
				return false
			}
			p.ws()
			if k = keys.index(key); k < 0 && !p.unknown(key, names) {
				return false
			}
		}
		if k >= 0 {
			p.ws()
			if !field(k) {
				return false
			}
			next = k + 1
		}
		if p.consume(',') {
			continue
		}
		return p.consume('}')
	}
}

// orderedKeys are the keys of a struct in the order encoding/json writes
// them, with their literals: the quoted key and the colon.
type orderedKeys struct {
	names []string
	lits  []string
}

func newOrderedKeys(names []string) *orderedKeys {
	k := &orderedKeys{names: names}
	for _, n := range names {
		k.lits = append(k.lits, `"`+n+`":`)
	}
	return k
}

// match returns the first key from next on whose literal b starts with, or
// -1.
func (k *orderedKeys) match(b []byte, next int) int {
	for j := next; j < len(k.lits); j++ {
		if len(b) >= len(k.lits[j]) && string(b[:len(k.lits[j])]) == k.lits[j] {
			return j
		}
	}
	return -1
}

// index returns the position of key (exactly), or -1.
func (k *orderedKeys) index(key []byte) int {
	for j, n := range k.names {
		if n == string(key) {
			return j
		}
	}
	return -1
}

// The fields of a sample, in sampleFields' order.
const (
	fUuid = iota
	fIndex
	fName
	fParentUuid
	fLost
	fGpuUtil
	fMemUtil
	fMemUsed
	fMemTotal
	fMemReserved
	fPowerMw
	fPowerLimitMw
	fTempC
	fSmClockMhz
	fMemClockMhz
	fEccCorrected
	fEccUncorrected
	fThrottleReasons
	fXids
	fProcesses
)

var sampleKeys = newOrderedKeys(sampleFields)

var processFields = []string{"pid", "usedMem", "podUid", "podNamespace", "podName"}

func (p *parser) process(pr *events.GPUProcess) bool {
	return p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "pid":
			var v uint64
			v, ok = p.uint(32)
			pr.PID = uint32(v)
		case "usedMem":
			pr.UsedMemBytes, ok = p.uint(64)
		case "podUid":
			pr.PodUID, ok = p.str()
		case "podNamespace":
			pr.PodNamespace, ok = p.str()
		case "podName":
			pr.PodName, ok = p.str()
		default:
			ok = p.unknown(key, processFields)
		}
		return ok
	})
}

// rawString reads a string without escapes, control characters or invalid
// UTF-8 (which encoding/json would rewrite) and returns its bytes.
func (p *parser) rawString() ([]byte, bool) {
	if p.i >= len(p.buf) || p.buf[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.buf); j++ {
		c := p.buf[j]
		if !strSpecial[c] {
			continue
		}
		switch {
		case c == '"':
			s := p.buf[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			p.i = j + 1
			return s, true
		case c >= utf8.RuneSelf:
			ascii = false
		default: // '\\' or a control character
			return nil, false
		}
	}
	return nil, false
}

// strSpecial marks the bytes rawString looks at: '"', '\\', control
// characters and the bytes of non-ASCII runes.
var strSpecial = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf
	}
	return t
}()

func (p *parser) str() (string, bool) {
	s, ok := p.rawString()
	if !ok {
		return "", false
	}
	return p.d.intern(s), true
}

// digits reads a JSON integer (no fraction or exponent) of at most bits
// bits; a minus sign only when neg is allowed.
func (p *parser) digits(bits int) (uint64, bool) {
	start := p.i
	var v uint64
	// Up to 19 digits cannot overflow; only a longer number is checked
	// digit by digit (the division is what costs).
	for p.i < len(p.buf) && p.i-start < 19 {
		c := p.buf[p.i] - '0'
		if c > 9 {
			break
		}
		v = v*10 + uint64(c)
		p.i++
	}
	for p.i < len(p.buf) && p.buf[p.i] >= '0' && p.buf[p.i] <= '9' {
		d := uint64(p.buf[p.i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
		p.i++
	}
	n := p.i - start
	if n == 0 || (n > 1 && p.buf[start] == '0') {
		return 0, false
	}
	if p.i < len(p.buf) {
		switch p.buf[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if bits < 64 && v >= 1<<bits {
		return 0, false
	}
	return v, true
}

func (p *parser) uint(bits int) (uint64, bool) { return p.digits(bits) }

func (p *parser) int() (int, bool) {
	neg := p.i < len(p.buf) && p.buf[p.i] == '-'
	if neg {
		p.i++
	}
	v, ok := p.digits(63)
	if !ok {
		return 0, false
	}
	if neg {
		return -int(v), true
	}
	return int(v), true
}

func (p *parser) bool() (bool, bool) {
	switch {
	case p.literal("true"):
		return true, true
	case p.literal("false"):
		return false, true
	}
	return false, false
}

func (p *parser) literal(lit string) bool {
	if len(p.buf)-p.i >= len(lit) && string(p.buf[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

// time reads an RFC 3339 string the way time.Time's UnmarshalJSON does.
func (p *parser) time(t *time.Time) bool {
	start := p.i
	if _, ok := p.rawString(); !ok {
		return false
	}
	return t.UnmarshalJSON(p.buf[start:p.i]) == nil
}

// skip reads and validates any JSON value.
func (p *parser) skip() bool {
	if p.i >= len(p.buf) {
		return false
	}
	switch c := p.buf[p.i]; {
	case c == '{':
		return p.nested(func() bool {
			return p.object(func([]byte) bool { return p.skip() })
		})
	case c == '[':
		return p.nested(func() bool { return p.array(p.skip) })
	case c == '"':
		return p.skipString()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.skipNumber()
	}
	return false
}

// maxDepth bounds the nesting of skipped values (encoding/json allows more;
// deeper input takes the slow path).
const maxDepth = 100

func (p *parser) nested(f func() bool) bool {
	if p.depth >= maxDepth {
		return false
	}
	p.depth++
	ok := f()
	p.depth--
	return ok
}

func (p *parser) skipString() bool {
	for j := p.i + 1; j < len(p.buf); j++ {
		switch c := p.buf[j]; {
		case c == '"':
			p.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(p.buf) {
				return false
			}
			switch p.buf[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(p.buf) {
					return false
				}
				for _, h := range p.buf[j+1 : j+5] {
					if !isHex(h) {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// skipNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (p *parser) skipNumber() bool {
	b := p.buf
	if p.i < len(b) && b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(b) && b[p.i] >= '0' && b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	start := p.i
	n := digits()
	if n == 0 || (n > 1 && b[start] == '0') {
		return false
	}
	if p.i < len(b) && b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(b) && (b[p.i] == 'e' || b[p.i] == 'E') {
		p.i++
		if p.i < len(b) && (b[p.i] == '+' || b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
