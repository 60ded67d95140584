package produce

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/shardhose/shardhose/internal/clock"
)

// GeneratedSource makes e-commerce events shaped like the sample events of the AWS Firehose
// recipe (configs/samples/recipe-events.jsonl), with the same fields in the same order:
//
//	{"event_id":"…","user_id":"user042","event_type":"purchase","amount":150.50,"product_id":"prod456","timestamp":"2025-01-15T10:30:00Z"}
//
// event_id is a random UUID; user_id and product_id are drawn from 999 users and 999 products;
// event_type is view (60%), add_to_cart (20%), purchase (12%) or remove_from_cart (8%); only
// purchases carry an amount, 1.00 to 500.00 with two decimals; timestamp is the clock's time in
// UTC, to the second.
//
// Given the same seed and the same clock readings, the events and partition keys are the same.
// It never returns io.EOF: bound it with Options.Count. A GeneratedSource is not safe for
// concurrent use.
type GeneratedSource struct {
	// PartitionKeyField, if set, names the event field whose value becomes the partition key:
	// event_id, user_id, event_type, product_id or timestamp. When empty, each event gets a
	// random 10-digit key drawn from the seeded generator.
	PartitionKeyField string
	// Clock gives the timestamps; nil means the system clock.
	Clock clock.Clock

	rng *rand.Rand
}

// NewGeneratedSource returns a GeneratedSource whose random choices all come from seed.
func NewGeneratedSource(seed int64) *GeneratedSource {
	return &GeneratedSource{rng: rand.New(rand.NewPCG(uint64(seed), 0x5ba4d05e))}
}

// Event types and their weights, out of 100.
var eventTypes = []struct {
	name   string
	weight int
}{
	{"view", 60},
	{"add_to_cart", 20},
	{"purchase", 12},
	{"remove_from_cart", 8},
}

// event is one generated record; the field order is the recipe's.
type event struct {
	EventID   string      `json:"event_id"`
	UserID    string      `json:"user_id"`
	EventType string      `json:"event_type"`
	Amount    json.Number `json:"amount,omitempty"`
	ProductID string      `json:"product_id"`
	Timestamp string      `json:"timestamp"`
}

// Next returns a new event.
func (s *GeneratedSource) Next() (Entry, error) {
	c := s.Clock
	if c == nil {
		c = clock.Real()
	}
	r := s.rng
	if r == nil {
		return Entry{}, errors.New("generated events: the source has no seed; make it with NewGeneratedSource")
	}
	e := event{
		EventID:   uuid4(r),
		UserID:    fmt.Sprintf("user%03d", 1+r.IntN(999)),
		EventType: pickEventType(r),
		ProductID: fmt.Sprintf("prod%03d", 1+r.IntN(999)),
		Timestamp: c.Now().UTC().Format("2006-01-02T15:04:05Z"),
	}
	if e.EventType == "purchase" {
		cents := 100 + r.IntN(50000-100+1)
		e.Amount = json.Number(fmt.Sprintf("%d.%02d", cents/100, cents%100))
	}
	data, err := json.Marshal(e)
	if err != nil {
		return Entry{}, fmt.Errorf("encode generated event: %w", err)
	}
	var key string
	switch s.PartitionKeyField {
	case "":
		key = randomPartitionKey(r)
	case "event_id":
		key = e.EventID
	case "user_id":
		key = e.UserID
	case "event_type":
		key = e.EventType
	case "product_id":
		key = e.ProductID
	case "timestamp":
		key = e.Timestamp
	default:
		return Entry{}, fmt.Errorf("generated events: partition key field %q: use event_id, user_id, event_type, product_id or timestamp", s.PartitionKeyField)
	}
	return Entry{Data: data, PartitionKey: key}, nil
}

func pickEventType(r *rand.Rand) string {
	n := r.IntN(100)
	for _, t := range eventTypes {
		if n < t.weight {
			return t.name
		}
		n -= t.weight
	}
	return eventTypes[0].name
}

// uuid4 returns a random (version 4) UUID drawn from r.
func uuid4(r *rand.Rand) string {
	hi, lo := r.Uint64(), r.Uint64()
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x",
		hi>>32, (hi>>16)&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}
