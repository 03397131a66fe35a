package natsapi

import (
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
)

// rollupMsg is the message of one rollup event: exactly the bytes and
// headers that bus.NewEvent and bus.Publisher would send, written in one
// pass without reflection. ok is false when the event holds something the
// fast path does not write (a string that encoding/json escapes, a NaN, a
// year beyond 9999); the caller then takes the bus path, whose result (or
// error) is encoding/json's.
func rollupMsg(subject, id string, r *events.RollupBatch, buf []byte) (*nats.Msg, []byte, bool) {
	typ := events.EventType("telemetry", "rollup")
	b := buf[:0]
	var ok bool
	b = append(b, `{"specversion":`...)
	b, ok = appendStr(b, bus.SpecVersion)
	b = append(b, `,"id":`...)
	b, ok = appendStrOK(b, id, ok)
	b = append(b, `,"source":`...)
	b, ok = appendStrOK(b, Source, ok)
	b = append(b, `,"type":`...)
	b, ok = appendStrOK(b, typ, ok)
	b = append(b, `,"subject":`...)
	b, ok = appendStrOK(b, r.Node, ok)
	b = append(b, `,"time":`...)
	b, ok = appendTime(b, r.Start.UTC(), ok)
	b = append(b, `,"datacontenttype":"application/json","data":`...)
	b, ok = appendRollup(b, r, ok)
	b = append(b, '}')
	if !ok {
		return nil, b, false
	}
	m := nats.NewMsg(subject)
	m.Data = append([]byte(nil), b...)
	m.Header.Set(bus.HeaderType, typ)
	m.Header.Set(bus.HeaderID, id)
	m.Header.Set(bus.HeaderSubject, r.Node)
	return m, b, true
}

// appendRollup writes r as encoding/json.Marshal does.
func appendRollup(b []byte, r *events.RollupBatch, ok bool) ([]byte, bool) {
	b = append(b, `{"cluster":`...)
	b, ok = appendStrOK(b, r.Cluster, ok)
	b = append(b, `,"node":`...)
	b, ok = appendStrOK(b, r.Node, ok)
	b = append(b, `,"res":`...)
	b, ok = appendStrOK(b, r.Res, ok)
	b = append(b, `,"start":`...)
	b, ok = appendTime(b, r.Start, ok)
	b = append(b, `,"gpus":`...)
	if r.GPUs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.GPUs {
			if i > 0 {
				b = append(b, ',')
			}
			g := &r.GPUs[i]
			b = append(b, `{"uuid":`...)
			b, ok = appendStrOK(b, g.UUID, ok)
			b = append(b, `,"n":`...)
			b = strconv.AppendInt(b, int64(g.Samples), 10)
			b = append(b, `,"util":`...)
			b, ok = appendStat(b, g.Util, ok)
			b = append(b, `,"memUsed":`...)
			b, ok = appendStat(b, g.MemUsed, ok)
			b = append(b, `,"powerW":`...)
			b, ok = appendStat(b, g.PowerW, ok)
			b = append(b, `,"tempC":`...)
			b, ok = appendStat(b, g.TempC, ok)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.Owner != nil {
		b = append(b, `,"owner":{"workspace":`...)
		b, ok = appendStrOK(b, r.Owner.Workspace, ok)
		b = append(b, `,"gprId":`...)
		b, ok = appendStrOK(b, r.Owner.GPRID, ok)
		b = append(b, '}')
	}
	return append(b, '}'), ok
}

func appendStat(b []byte, s events.Stat, ok bool) ([]byte, bool) {
	b = append(b, `{"avg":`...)
	b, ok = appendFloat(b, s.Avg, ok)
	b = append(b, `,"max":`...)
	b, ok = appendFloat(b, s.Max, ok)
	b = append(b, `,"min":`...)
	b, ok = appendFloat(b, s.Min, ok)
	return append(b, '}'), ok
}

// appendFloat writes f as encoding/json writes a float64; NaN and the
// infinities, which it refuses, are not ok.
func appendFloat(b []byte, f float64, ok bool) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	if abs < 1e15 {
		// Most readings are whole (°C, W, bytes) or averages rounded to
		// hundredths: written without the general (and slow) shortest
		// formatting. A decimal of at most 15 significant digits is the
		// shortest that reads back as the float nearest to it, which is
		// what strconv writes.
		if f == 0 && math.Signbit(f) {
			return append(b, "-0"...), ok
		}
		if f == math.Trunc(f) {
			return strconv.AppendInt(b, int64(f), 10), ok
		}
		if x := math.Round(f * 100); math.Abs(x) < 1e15 && x/100 == f {
			return appendHundredths(b, int64(x)), ok
		}
	}
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, ok
}

// appendHundredths writes n/100 (n not a multiple of 100) in decimal,
// without trailing zeros.
func appendHundredths(b []byte, n int64) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/100, 10)
	frac := n % 100
	b = append(b, '.', byte('0'+frac/10))
	if frac%10 != 0 {
		b = append(b, byte('0'+frac%10))
	}
	return b
}

// appendTime writes t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds); only times in UTC, of years 0 to 9999, are ok.
func appendTime(b []byte, t time.Time, ok bool) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off != 0 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}

func appendStrOK(b []byte, s string, ok bool) ([]byte, bool) {
	b, ok2 := appendStr(b, s)
	return b, ok && ok2
}

// appendStr writes s quoted when encoding/json would write it unchanged:
// printable ASCII without '"', '\\' and the HTML characters it escapes.
func appendStr(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}
