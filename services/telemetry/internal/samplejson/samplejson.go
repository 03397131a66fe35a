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
	strs map[string]string
	u32  []uint32
	u64  []uint64
}

// NewDecoder returns a decoder.
func NewDecoder() *Decoder { return &Decoder{strs: map[string]string{}} }

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
	for p.i < len(p.buf) {
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
			ok = p.array(func() bool {
				if len(b.GPUs) < cap(b.GPUs) {
					b.GPUs = b.GPUs[:len(b.GPUs)+1]
					b.GPUs[len(b.GPUs)-1] = events.GPUSample{}
				} else {
					b.GPUs = append(b.GPUs, events.GPUSample{})
				}
				return p.sample(&b.GPUs[len(b.GPUs)-1])
			})
		default:
			ok = p.unknown(key, batchFields)
		}
		return ok
	})
}

var sampleFields = []string{"uuid", "index", "name", "parentUuid", "lost", "gpuUtil", "memUtil", "memUsed", "memTotal",
	"powerMw", "powerLimitMw", "tempC", "smClockMhz", "memClockMhz", "eccCorrected", "eccUncorrected",
	"throttleReasons", "xids", "processes"}

func (p *parser) sample(s *events.GPUSample) bool {
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
	return p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "uuid":
			s.UUID, ok = p.str()
		case "index":
			s.Index, ok = p.int()
		case "name":
			s.Name, ok = p.str()
		case "parentUuid":
			s.ParentUUID, ok = p.str()
		case "lost":
			s.Lost, ok = p.bool()
		case "gpuUtil":
			ok = u32(&s.GPUUtil)
		case "memUtil":
			ok = u32(&s.MemUtil)
		case "memUsed":
			s.MemUsedBytes, ok = p.uint(64)
		case "memTotal":
			s.MemTotalBytes, ok = p.uint(64)
		case "powerMw":
			ok = u32(&s.PowerMilliW)
		case "powerLimitMw":
			ok = u32(&s.PowerLimitMW)
		case "tempC":
			ok = u32(&s.TempC)
		case "smClockMhz":
			ok = u32(&s.SMClockMHz)
		case "memClockMhz":
			ok = u32(&s.MemClockMHz)
		case "eccCorrected":
			ok = u64(&s.ECCCorrected)
		case "eccUncorrected":
			ok = u64(&s.ECCUncorrected)
		case "throttleReasons":
			s.ThrottleReasons, ok = p.uint(64)
		case "xids":
			s.XIDs = []uint64{} // kept by the caller: never reused
			ok = p.array(func() bool {
				v, ok := p.uint(64)
				s.XIDs = append(s.XIDs, v)
				return ok
			})
		case "processes":
			s.Processes = []events.GPUProcess{}
			ok = p.array(func() bool {
				var pr events.GPUProcess
				ok := p.process(&pr)
				s.Processes = append(s.Processes, pr)
				return ok
			})
		default:
			ok = p.unknown(key, sampleFields)
		}
		return ok
	})
}

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
		switch {
		case c == '"':
			s := p.buf[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

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
