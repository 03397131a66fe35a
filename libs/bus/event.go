package bus

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// SpecVersion is the CloudEvents version of the envelope.
const SpecVersion = "1.0"

// Event is the envelope of every event on the bus (CloudEvents 1.0, structured
// JSON mode). ID is also sent as Nats-Msg-Id, so a stream drops a duplicate
// published within its de-duplication window; Type is mirrored in the ce-type
// header so a consumer can route without decoding.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`  // "egs/gpr-scheduler"
	Type            string          `json:"type"`    // "io.egs.gpr.provisioned.v1"
	Subject         string          `json:"subject"` // the entity, e.g. the gprId
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	CorrelationID   string          `json:"correlationid,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// NewEvent builds an event with data encoded as JSON. An empty id gets a random
// one; pass a deterministic id (derived from the state change) wherever a
// retry must be recognised as the same event.
func NewEvent(id, source, typ, subject string, at time.Time, data any) (Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s data: %w", typ, err)
	}
	if id == "" {
		id = NewID()
	}
	return Event{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          source,
		Type:            typ,
		Subject:         subject,
		Time:            at.UTC(),
		DataContentType: "application/json",
		Data:            b,
	}, nil
}

// Decode unmarshals the event's data into v.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// NewID returns 128 random bits as 32 hex characters.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
