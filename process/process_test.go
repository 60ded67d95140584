package process

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/record"
)

// recs makes a batch of records with sequence numbers 100, 101, ... and the given data.
func recs(data ...string) []record.Record {
	out := make([]record.Record, len(data))
	for i, d := range data {
		out[i] = record.Record{
			StreamName:                  "orders",
			ShardID:                     "shardId-000000000001",
			PartitionKey:                fmt.Sprintf("pk-%d", i),
			SequenceNumber:              fmt.Sprint(100 + i),
			Data:                        []byte(d),
			ApproximateArrivalTimestamp: time.UnixMilli(1545084650987 + int64(i)),
		}
	}
	return out
}

// outcomes lists the outcome of each output, with the data of delivered records: "deliver:x",
// "filtered", ...
func outcomes(outs []Output) []string {
	s := make([]string, len(outs))
	for i, o := range outs {
		s[i] = o.Outcome.String()
		if o.Outcome == Deliver {
			s[i] += ":" + string(o.Record.Data)
		}
	}
	return s
}

// scripted is a test handler: for each record it looks up what to do by the record's data.
//
//	"f..."  Filtered      "d..."  Dropped      "p..."  ProcessingFailed
//	"x..."  fails: a PartialFailure at the first such record
//	"!..."  fails the whole batch
//	else    Deliver with the handler's tag appended to the data
type scripted struct {
	tag   string
	calls *[][]string // the data of each batch it was given
}

func (s scripted) Name() string { return "scripted-" + s.tag }

func (s scripted) Handle(ctx context.Context, batch []record.Record) ([]Output, error) {
	if s.calls != nil {
		var seen []string
		for _, r := range batch {
			seen = append(seen, string(r.Data))
		}
		*s.calls = append(*s.calls, seen)
	}
	var outs []Output
	for i, r := range batch {
		d := string(r.Data)
		switch {
		case strings.HasPrefix(d, "!"+s.tag):
			return nil, errors.New("boom")
		case strings.HasPrefix(d, "x"+s.tag):
			return nil, &PartialFailure{FirstFailed: i, Outputs: outs, Err: fmt.Errorf("bad record %s", r.SequenceNumber)}
		case strings.HasPrefix(d, "f"+s.tag):
			outs = append(outs, Output{Outcome: Filtered, Record: r})
		case strings.HasPrefix(d, "d"+s.tag):
			outs = append(outs, Output{Outcome: Dropped, Record: r})
		case strings.HasPrefix(d, "p"+s.tag):
			outs = append(outs, Output{Outcome: ProcessingFailed, Record: r, Err: "failed"})
		default:
			out := r
			out.Data = []byte(d + "+" + s.tag)
			outs = append(outs, Output{Outcome: Deliver, Record: out})
		}
	}
	return outs, nil
}

func TestChain(t *testing.T) {
	cases := []struct {
		name      string
		data      []string
		want      []string // outcomes, when the chain succeeds
		wantFirst int      // PartialFailure.FirstFailed, or -1
		wantErr   string   // a whole-batch error containing this
		wantCalls [][]string
	}{
		{
			name:      "all delivered through both",
			data:      []string{"a", "b"},
			want:      []string{"deliver:a+A+B", "deliver:b+A+B"},
			wantFirst: -1,
			wantCalls: [][]string{{"a", "b"}, {"a+A", "b+A"}},
		},
		{
			name:      "final outcomes of the first handler skip the second",
			data:      []string{"fA", "b", "dA", "pA", "c"},
			want:      []string{"filtered", "deliver:b+A+B", "dropped", "processing_failed", "deliver:c+A+B"},
			wantFirst: -1,
			wantCalls: [][]string{{"fA", "b", "dA", "pA", "c"}, {"b+A", "c+A"}},
		},
		{
			name:      "the second handler filters",
			data:      []string{"a", "fB"},
			want:      []string{"deliver:a+A+B", "filtered"},
			wantFirst: -1,
		},
		{
			name:      "partial failure of the first handler: the handled records still go through the second",
			data:      []string{"a", "fA", "xA", "b"},
			wantFirst: 2,
			want:      []string{"deliver:a+A+B", "filtered"},
			wantCalls: [][]string{{"a", "fA", "xA", "b"}, {"a+A"}},
		},
		{
			name:      "partial failure of the second handler maps back past filtered records",
			data:      []string{"fA", "a", "fA", "xB", "b"},
			wantFirst: 3,
			want:      []string{"filtered", "deliver:a+A+B", "filtered"},
			wantCalls: [][]string{{"fA", "a", "fA", "xB", "b"}, {"a+A", "xB+A", "b+A"}},
		},
		{
			name:      "a later partial failure earlier in the batch wins",
			data:      []string{"a", "xB", "b", "xA"},
			wantFirst: 1,
			want:      []string{"deliver:a+A+B"},
			wantCalls: [][]string{{"a", "xB", "b", "xA"}, {"a+A", "xB+A", "b+A"}},
		},
		{
			name:      "partial failure at the first record",
			data:      []string{"xA", "a"},
			wantFirst: 0,
			want:      []string{},
			wantCalls: [][]string{{"xA", "a"}},
		},
		{
			name:      "partial failure of the second handler at its first input",
			data:      []string{"fA", "xB"},
			wantFirst: 1,
			want:      []string{"filtered"},
		},
		{
			name:      "whole-batch error of the second handler",
			data:      []string{"a", "!B"},
			wantErr:   "scripted-B: boom",
			wantFirst: -1,
		},
		{
			name:      "whole-batch error after a partial failure fails the whole batch",
			data:      []string{"!B", "xA"},
			wantErr:   "scripted-B: boom",
			wantFirst: -1,
		},
		{
			name:      "nothing left for the second handler",
			data:      []string{"fA", "dA"},
			want:      []string{"filtered", "dropped"},
			wantFirst: -1,
			wantCalls: [][]string{{"fA", "dA"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var calls [][]string
			h := Chain(scripted{tag: "A", calls: &calls}, scripted{tag: "B", calls: &calls})
			if h.Name() != "scripted-A>scripted-B" {
				t.Errorf("Name = %q", h.Name())
			}
			batch := recs(c.data...)
			before := slices.Clone(batch)
			outs, err := h.Handle(t.Context(), batch)
			if !reflect.DeepEqual(batch, before) {
				t.Error("Chain modified its input")
			}
			var pf *PartialFailure
			switch {
			case c.wantErr != "":
				if err == nil || errors.As(err, &pf) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want a whole-batch error containing %q", err, c.wantErr)
				}
				return
			case c.wantFirst >= 0:
				if !errors.As(err, &pf) {
					t.Fatalf("err = %v, want a PartialFailure", err)
				}
				if pf.FirstFailed != c.wantFirst {
					t.Errorf("FirstFailed = %d, want %d", pf.FirstFailed, c.wantFirst)
				}
				if !strings.Contains(pf.Error(), "bad record") || !strings.Contains(pf.Error(), "scripted-") {
					t.Errorf("error %q does not say which handler and record failed", pf.Error())
				}
				outs = pf.Outputs
			case err != nil:
				t.Fatalf("Handle: %v", err)
			}
			if got := outcomes(outs); !slices.Equal(got, c.want) {
				t.Errorf("outcomes = %q, want %q", got, c.want)
			}
			if c.wantCalls != nil && !reflect.DeepEqual(calls, c.wantCalls) {
				t.Errorf("handler inputs = %q, want %q", calls, c.wantCalls)
			}
			for i, o := range outs {
				if o.Outcome != Deliver && string(o.Record.Data) != c.data[i] && !strings.HasPrefix(string(o.Record.Data), c.data[i]) {
					t.Errorf("output %d: record %q is not the input", i, o.Record.Data)
				}
			}
		})
	}
}

func TestChainOfOneAndNone(t *testing.T) {
	one := scripted{tag: "A"}
	outs, err := Chain(one).Handle(t.Context(), recs("a", "b"))
	if err != nil || !slices.Equal(outcomes(outs), []string{"deliver:a+A", "deliver:b+A"}) || Chain(one).Name() != one.Name() {
		t.Errorf("Chain(A) = %q, %v; want A's results under A's name", outcomes(outs), err)
	}
	h := Chain()
	outs, err = h.Handle(t.Context(), recs("a", "b"))
	if err != nil || !slices.Equal(outcomes(outs), []string{"deliver:a", "deliver:b"}) {
		t.Errorf("Chain() = %q, %v; want both delivered", outcomes(outs), err)
	}
}

func TestChainRejectsBrokenHandlers(t *testing.T) {
	short := Func("short", func(context.Context, []record.Record) ([]Output, error) { return nil, nil })
	badPF := Func("bad-pf", func(context.Context, []record.Record) ([]Output, error) {
		return nil, &PartialFailure{FirstFailed: 5, Err: errors.New("x")}
	})
	for _, h := range []Handler{short, badPF} {
		_, err := Chain(scripted{tag: "A"}, h).Handle(t.Context(), recs("a", "b"))
		var pf *PartialFailure
		if err == nil || errors.As(err, &pf) {
			t.Errorf("%s: err = %v, want a whole-batch error", h.Name(), err)
		}
	}
}

// A lone handler's result is checked like a chained one's: a result of the wrong shape is a
// whole-batch error naming the handler, never usable as a partial failure.
func TestChainOfOneRejectsABrokenHandler(t *testing.T) {
	short := Func("short", func(context.Context, []record.Record) ([]Output, error) { return nil, nil })
	long := Func("long", func(_ context.Context, b []record.Record) ([]Output, error) {
		return make([]Output, len(b)+1), nil
	})
	shortPF := Func("short-pf", func(context.Context, []record.Record) ([]Output, error) {
		return nil, &PartialFailure{FirstFailed: 1, Err: errors.New("x")}
	})
	longPF := Func("long-pf", func(_ context.Context, b []record.Record) ([]Output, error) {
		return nil, &PartialFailure{FirstFailed: 1, Outputs: make([]Output, 2), Err: errors.New("x")}
	})
	pastPF := Func("past-pf", func(_ context.Context, b []record.Record) ([]Output, error) {
		return nil, &PartialFailure{FirstFailed: 2, Outputs: make([]Output, 2), Err: errors.New("x")}
	})
	for _, h := range []Handler{short, long, shortPF, longPF, pastPF} {
		_, err := Chain(h).Handle(t.Context(), recs("a", "b"))
		var pf *PartialFailure
		if err == nil || errors.As(err, &pf) || !strings.Contains(err.Error(), h.Name()) {
			t.Errorf("%s: err = %v, want a whole-batch error naming the handler", h.Name(), err)
		}
	}
	// A well-formed partial failure passes through.
	good := Func("good-pf", func(_ context.Context, b []record.Record) ([]Output, error) {
		return nil, &PartialFailure{FirstFailed: 1, Outputs: []Output{{Outcome: Deliver, Record: b[0]}}, Err: errors.New("x")}
	})
	var pf *PartialFailure
	if _, err := Chain(good).Handle(t.Context(), recs("a", "b")); !errors.As(err, &pf) || pf.FirstFailed != 1 {
		t.Errorf("good-pf: err = %v, want its partial failure", err)
	}
}

func TestChainHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Chain(scripted{tag: "A"}, scripted{tag: "B"}).Handle(ctx, recs("a"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestPartialFailureWraps(t *testing.T) {
	cause := errors.New("cause")
	var err error = fmt.Errorf("outer: %w", &PartialFailure{FirstFailed: 2, Err: cause})
	var pf *PartialFailure
	if !errors.As(err, &pf) || pf.FirstFailed != 2 || !errors.Is(err, cause) {
		t.Errorf("errors.As/Is through a wrapped PartialFailure failed: %v", err)
	}
	if !strings.Contains(pf.Error(), "index 2") {
		t.Errorf("Error() = %q", pf.Error())
	}
}

func TestPerRecord(t *testing.T) {
	h := PerRecord("upper", func(_ context.Context, r record.Record) (Output, error) {
		if string(r.Data) == "bad" {
			return Output{}, errors.New("no")
		}
		out := r
		out.Data = []byte(strings.ToUpper(string(r.Data)))
		return Output{Outcome: Deliver, Record: out}, nil
	})
	outs, err := h.Handle(t.Context(), recs("a", "b"))
	if err != nil || !slices.Equal(outcomes(outs), []string{"deliver:A", "deliver:B"}) {
		t.Errorf("Handle = %q, %v", outcomes(outs), err)
	}
	_, err = h.Handle(t.Context(), recs("a", "bad", "c"))
	var pf *PartialFailure
	if !errors.As(err, &pf) || pf.FirstFailed != 1 || len(pf.Outputs) != 1 {
		t.Fatalf("err = %v, want a PartialFailure at 1 with one output", err)
	}
	if want := "upper: record 101 of shardId-000000000001: no"; pf.Err.Error() != want {
		t.Errorf("Err = %q, want %q", pf.Err, want)
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Deliver: "deliver", Filtered: "filtered", Dropped: "dropped", ProcessingFailed: "processing_failed", Outcome(9): "outcome(9)"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), want)
		}
	}
}

func TestMayFailRecordsUnderTheFirehoseContractOnly(t *testing.T) {
	firehose, err := NewHTTP(HTTPOptions{URL: "http://127.0.0.1:1/", Contract: FirehoseContract})
	if err != nil {
		t.Fatal(err)
	}
	lambda, err := NewHTTP(HTTPOptions{URL: "http://127.0.0.1:1/", Contract: LambdaContract})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    Handler
		want bool
	}{
		{"firehose alone", Chain(firehose), true},
		{"firehose unchecked", firehose, true},
		{"firehose in a chain", Chain(NewJSON(), firehose), true},
		{"lambda contract", Chain(lambda), false},
		{"json", Chain(NewJSON()), false},
		{"none", Chain(), false},
		{"checked twice", Checked(Checked(firehose)), true},
	} {
		if got := MayFailRecords(c.h); got != c.want {
			t.Errorf("%s: MayFailRecords = %v, want %v", c.name, got, c.want)
		}
	}
}
