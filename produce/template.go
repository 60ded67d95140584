package produce

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/shardhose/shardhose/produce/kdg"
)

// TemplateSource renders records from Kinesis Data Generator templates, as the Kinesis Data
// Generator's template tabs do: each record comes from one template, picked at random in
// proportion to the templates' weights. The partition key is rendered from a key template when
// one is given, else a random 10-digit key as the Kinesis Data Generator uses. All randomness
// comes from the Faker, so the same seed gives the same records and keys (dates follow the
// Faker's clock).
//
// It never returns io.EOF: bound it with Options.Count or Options.Duration. A TemplateSource is
// not safe for concurrent use.
type TemplateSource struct {
	// ExpectJSON makes Next log a warning the first time a template renders something that is
	// not one JSON value; such records are sent all the same, as the Kinesis Data Generator does.
	ExpectJSON bool
	// Logger receives the ExpectJSON warnings; nil discards them.
	Logger *slog.Logger

	templates []*kdg.Template
	cum       []int // cumulative weights
	key       *kdg.Template
	faker     *kdg.Faker
	nonJSON   map[string]int
}

// NewTemplateSource returns a source rendering templates with f. weights is empty (all
// templates equally likely) or has one weight of 0 or more per template, not all 0. key, if
// not nil, renders each record's partition key.
func NewTemplateSource(templates []*kdg.Template, weights []int, key *kdg.Template, f *kdg.Faker) (*TemplateSource, error) {
	if len(templates) == 0 {
		return nil, errors.New("templates: give at least one template")
	}
	if f == nil {
		return nil, errors.New("templates: a Faker is required")
	}
	if len(weights) == 0 {
		weights = make([]int, len(templates))
		for i := range weights {
			weights[i] = 1
		}
	}
	if len(weights) != len(templates) {
		return nil, fmt.Errorf("template weights: %d weights for %d templates; give one per template, in the same order", len(weights), len(templates))
	}
	s := &TemplateSource{templates: templates, key: key, faker: f, nonJSON: map[string]int{}}
	total := 0
	for i, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("template weights: weight %d of template %s is %d; use 0 or more", i+1, templates[i].Name(), w)
		}
		total += w
		s.cum = append(s.cum, total)
	}
	if total == 0 {
		return nil, errors.New("template weights: all are 0; give at least one template a positive weight")
	}
	return s, nil
}

// Next renders one record.
func (s *TemplateSource) Next() (Entry, error) {
	t := s.templates[s.pick()]
	data := t.Render(s.faker)
	if s.ExpectJSON && !kdg.IsJSON(data) {
		s.nonJSON[t.Name()]++
		if s.nonJSON[t.Name()] == 1 && s.Logger != nil {
			s.Logger.Warn("template rendered a record that is not JSON; sending it as it is (further ones from this template are counted, not logged)",
				"template", t.Name(), "record", truncate(data, 200))
		}
	}
	var key string
	if s.key != nil {
		key = string(s.key.Render(s.faker))
		if key == "" {
			return Entry{}, fmt.Errorf("partition key template %s rendered an empty key; Kinesis requires 1 to 256 characters", s.key.Name())
		}
	} else {
		key = fmt.Sprintf("%010d", s.faker.Uint64()%10_000_000_000)
	}
	return Entry{Data: data, PartitionKey: key}, nil
}

func (s *TemplateSource) pick() int {
	if len(s.cum) == 1 {
		return 0
	}
	x := s.faker.IntN(s.cum[len(s.cum)-1])
	for i, c := range s.cum {
		if x < c {
			return i
		}
	}
	return len(s.cum) - 1
}

// Templates returns the source's templates, in the order given.
func (s *TemplateSource) Templates() []*kdg.Template { return s.templates }

// NonJSON returns, per template name, how many of its records were not JSON; it counts only
// when ExpectJSON is set.
func (s *TemplateSource) NonJSON() map[string]int { return s.nonJSON }

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
