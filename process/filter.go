package process

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/shardhose/shardhose/process/eventfilter"
	"github.com/shardhose/shardhose/record"
)

// NewFilter returns the filter handler: Lambda event filtering (FilterCriteria) for Kinesis
// records. Each pattern is a JSON filter rule (see package eventfilter for the syntax) tested
// against the record as Lambda presents it: data (the record's data parsed as JSON),
// partitionKey, sequenceNumber, and approximateArrivalTimestamp (Unix seconds). A record that
// matches any pattern is delivered unchanged; one that matches none is Filtered (skipped and
// checkpointed). A record whose data is not JSON matches only patterns that do not look into data.
//
// 1 to eventfilter.MaxPatterns patterns are allowed, as in Lambda. The handler never fails a batch.
// It is safe for concurrent use.
func NewFilter(patterns []string) (Handler, error) {
	if len(patterns) == 0 || len(patterns) > eventfilter.MaxPatterns {
		return nil, fmt.Errorf("filter: %d patterns: allowed 1 to %d", len(patterns), eventfilter.MaxPatterns)
	}
	f := &filter{}
	for i, src := range patterns {
		p, err := eventfilter.CompileKinesis(src)
		if err != nil {
			return nil, fmt.Errorf("filter: pattern %d: %w", i, err)
		}
		f.patterns = append(f.patterns, p)
		f.usesData = f.usesData || slices.Contains(p.TopLevelKeys(), "data")
	}
	return f, nil
}

type filter struct {
	patterns []*eventfilter.Pattern
	// usesData is false when no pattern tests data, so records need not be parsed.
	usesData bool
}

func (f *filter) Name() string { return "filter" }

func (f *filter) Handle(ctx context.Context, batch []record.Record) ([]Output, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	outs := make([]Output, len(batch))
	for i, r := range batch {
		event := f.event(r)
		outcome := Filtered
		if slices.ContainsFunc(f.patterns, func(p *eventfilter.Pattern) bool { return p.Match(event) }) {
			outcome = Deliver
		}
		outs[i] = Output{Outcome: outcome, Record: r}
	}
	return outs, nil
}

// event is the record as the patterns see it.
func (f *filter) event(r record.Record) map[string]any {
	ev := map[string]any{
		"partitionKey":   r.PartitionKey,
		"sequenceNumber": r.SequenceNumber,
	}
	if !r.ApproximateArrivalTimestamp.IsZero() {
		ev["approximateArrivalTimestamp"] = json.Number(unixSeconds(r))
	}
	if f.usesData {
		data, err := eventfilter.Decode(r.Data)
		if err != nil {
			data = eventfilter.NotJSON
		}
		ev["data"] = data
	}
	return ev
}

// unixSeconds formats the record's arrival time as Lambda's Kinesis event does: Unix seconds with
// millisecond decimals, e.g. "1545084650.987".
func unixSeconds(r record.Record) string {
	ms := r.ApproximateArrivalTimestamp.UnixMilli()
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	frac := strconv.FormatInt(ms%1000+1000, 10)[1:]
	return sign + strconv.FormatInt(ms/1000, 10) + "." + frac
}
