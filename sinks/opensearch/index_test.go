package opensearch

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/record"
)

func utc(y int, m time.Month, d, h, min, s, ns int) time.Time {
	return time.Date(y, m, d, h, min, s, ns, time.UTC)
}

func TestIndexNameRotations(t *testing.T) {
	plus5 := time.FixedZone("+05:00", 5*3600)
	cases := []struct {
		rot  string
		at   time.Time
		want string
	}{
		// Firehose's documented example: myindex at 2016-02-25T13:00:00Z.
		{"NoRotation", utc(2016, 2, 25, 13, 0, 0, 0), "myindex"},
		{"OneHour", utc(2016, 2, 25, 13, 0, 0, 0), "myindex-2016-02-25-13"},
		{"OneDay", utc(2016, 2, 25, 13, 0, 0, 0), "myindex-2016-02-25"},
		{"OneMonth", utc(2016, 2, 25, 13, 0, 0, 0), "myindex-2016-02"},

		// Hour boundaries.
		{"OneHour", utc(2016, 2, 25, 13, 59, 59, 999_999_999), "myindex-2016-02-25-13"},
		{"OneHour", utc(2016, 2, 25, 14, 0, 0, 0), "myindex-2016-02-25-14"},
		{"OneHour", utc(2016, 12, 31, 23, 59, 59, 999_000_000), "myindex-2016-12-31-23"},
		{"OneHour", utc(2017, 1, 1, 0, 0, 0, 0), "myindex-2017-01-01-00"},
		// Day and month boundaries, leap day.
		{"OneDay", utc(2016, 2, 28, 23, 59, 59, 999_000_000), "myindex-2016-02-28"},
		{"OneDay", utc(2016, 2, 29, 0, 0, 0, 0), "myindex-2016-02-29"},
		{"OneMonth", utc(2016, 1, 31, 23, 59, 59, 999_000_000), "myindex-2016-01"},
		{"OneMonth", utc(2016, 2, 1, 0, 0, 0, 0), "myindex-2016-02"},
		{"OneMonth", utc(2016, 12, 31, 23, 59, 59, 0), "myindex-2016-12"},
		// Times in another zone are named by their UTC time.
		{"OneHour", time.Date(2016, 2, 25, 1, 30, 0, 0, plus5), "myindex-2016-02-24-20"},
		{"OneDay", time.Date(2016, 3, 1, 3, 0, 0, 0, plus5), "myindex-2016-02-29"},

		// Weeks: Sunday to Saturday, week 1 holds January 1st, named by the year of its Saturday.
		{"OneWeek", utc(2016, 2, 25, 13, 0, 0, 0), "myindex-2016-w09"},
		{"OneWeek", utc(2016, 2, 20, 23, 59, 59, 999_000_000), "myindex-2016-w08"}, // Saturday
		{"OneWeek", utc(2016, 2, 21, 0, 0, 0, 0), "myindex-2016-w09"},              // Sunday
		{"OneWeek", utc(2016, 1, 1, 0, 0, 0, 0), "myindex-2016-w01"},               // a Friday
		{"OneWeek", utc(2016, 1, 2, 23, 59, 59, 0), "myindex-2016-w01"},            // Saturday
		{"OneWeek", utc(2016, 1, 3, 0, 0, 0, 0), "myindex-2016-w02"},               // Sunday
		{"OneWeek", utc(2015, 12, 26, 23, 59, 59, 0), "myindex-2015-w52"},          // last Saturday of 2015
		{"OneWeek", utc(2015, 12, 27, 0, 0, 0, 0), "myindex-2016-w01"},             // its Sunday starts 2016's week 1
		{"OneWeek", utc(2015, 12, 31, 23, 59, 59, 0), "myindex-2016-w01"},
		{"OneWeek", utc(2016, 12, 31, 12, 0, 0, 0), "myindex-2016-w53"}, // a Saturday of a leap year
		{"OneWeek", utc(2017, 1, 1, 0, 0, 0, 0), "myindex-2017-w01"},    // a Sunday
		{"OneWeek", utc(2022, 12, 31, 0, 0, 0, 0), "myindex-2022-w53"},  // Saturday, Jan 1 was a Saturday too
		{"OneWeek", utc(2022, 1, 1, 0, 0, 0, 0), "myindex-2022-w01"},
		{"OneWeek", utc(2021, 12, 26, 0, 0, 0, 0), "myindex-2022-w01"},
		{"OneWeek", utc(2021, 12, 25, 0, 0, 0, 0), "myindex-2021-w52"},
		{"OneWeek", utc(2020, 8, 12, 0, 0, 0, 0), "myindex-2020-w33"},
		{"OneWeek", time.Date(2016, 2, 21, 3, 0, 0, 0, plus5), "myindex-2016-w08"}, // Saturday in UTC
	}
	for _, c := range cases {
		r, err := parseRotation(c.rot)
		if err != nil {
			t.Fatal(err)
		}
		if got := indexName("myindex", r, c.at); got != c.want {
			t.Errorf("%s at %s: got %s, want %s", c.rot, c.at.Format(time.RFC3339Nano), got, c.want)
		}
	}
	if _, err := parseRotation("Daily"); err == nil {
		t.Error("parseRotation(Daily) succeeded")
	}
}

// Over three decades, weeks change exactly on Sundays and are numbered 1, 2, ... within a
// year, checked against a direct count of Sundays.
func TestUSWeekEveryDay(t *testing.T) {
	prevYear, prevWeek := usWeek(utc(1999, 12, 31, 0, 0, 0, 0))
	for d := utc(2000, 1, 1, 12, 0, 0, 0); d.Year() < 2031; d = d.AddDate(0, 0, 1) {
		year, week := usWeek(d)
		switch {
		case d.Weekday() != time.Sunday:
			if year != prevYear || week != prevWeek {
				t.Fatalf("%s (%s): week changed mid-week: %d-w%02d after %d-w%02d", d.Format("2006-01-02"), d.Weekday(), year, week, prevYear, prevWeek)
			}
		case year == prevYear:
			if week != prevWeek+1 {
				t.Fatalf("%s: week %d follows %d", d.Format("2006-01-02"), week, prevWeek)
			}
		default:
			if year != prevYear+1 || week != 1 || prevWeek < 52 {
				t.Fatalf("%s: %d-w%02d follows %d-w%02d", d.Format("2006-01-02"), year, week, prevYear, prevWeek)
			}
		}
		// Direct count: week 1 holds January 1st of the week's year.
		jan1 := utc(year, 1, 1, 12, 0, 0, 0)
		firstSunday := jan1.AddDate(0, 0, -int(jan1.Weekday()))
		if want := int(d.Sub(firstSunday).Hours()/24)/7 + 1; week != want {
			t.Fatalf("%s: week %d, counted %d", d.Format("2006-01-02"), week, want)
		}
		prevYear, prevWeek = year, week
	}
}

func TestPositionID(t *testing.T) {
	base := record.Record{StreamName: "orders", ShardID: "shardId-000000000001", SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequenceNumber: 0}
	id := positionID(&base)
	if len(id) != docIDLen || strings.ContainsAny(id, "+/=") {
		t.Fatalf("id %q: want %d URL-safe characters", id, docIDLen)
	}
	again := base
	again.Data = []byte(`{"different":"data"}`)
	again.ApproximateArrivalTimestamp = time.Now()
	if positionID(&again) != id {
		t.Error("id depends on more than the record's position")
	}
	for name, mod := range map[string]func(*record.Record){
		"stream":       func(r *record.Record) { r.StreamName = "orders2" },
		"shard":        func(r *record.Record) { r.ShardID = "shardId-000000000002" },
		"sequence":     func(r *record.Record) { r.SequenceNumber = "49590338271490256608559692538361571095921575989136588899" },
		"sub-sequence": func(r *record.Record) { r.SubSequenceNumber = 1 },
		"boundary":     func(r *record.Record) { r.StreamName, r.ShardID = "ordersshardId-000000000001", "" },
	} {
		r := base
		mod(&r)
		if positionID(&r) == id {
			t.Errorf("changing the %s keeps the id", name)
		}
	}
	if got := positionID(&record.Record{Data: []byte(`{}`)}); got != "" {
		t.Errorf("record without a sequence number got id %q, want none", got)
	}
}

func TestCheckDocument(t *testing.T) {
	for doc, ok := range map[string]bool{
		`{"a":1}`:          true,
		" \n\t{\"a\":1}\n": true,
		`{}`:               true,
		`[1,2]`:            false,
		`"text"`:           false,
		`42`:               false,
		`null`:             false,
		`{"a":1`:           false,
		`{"a":1}{"b":2}`:   false,
		`not json`:         false,
		``:                 false,
	} {
		if err := checkDocument([]byte(doc)); (err == nil) != ok {
			t.Errorf("checkDocument(%q) = %v, want ok=%v", doc, err, ok)
		}
	}
}

func TestFieldID(t *testing.T) {
	cases := []struct {
		doc, want, err string
	}{
		{`{"id":"abc-1","n":2}`, "abc-1", ""},
		{`{"id":12345}`, "12345", ""},
		{`{"id":-1.5e3}`, "-1.5e3", ""},
		{`{"id":"quo\"te\u00e9"}`, `quo"teé`, ""},
		{`{"nested":{"id":"x"}}`, "", "no such top-level field"},
		{`{"id":null}`, "", "null"},
		{`{"id":{"a":1}}`, "", "an object"},
		{`{"id":[1]}`, "", "an array"},
		{`{"id":true}`, "", "a boolean"},
		{`{"id":""}`, "", "empty string"},
		{`{"id":"` + strings.Repeat("x", 513) + `"}`, "", "at most 512"},
	}
	for _, c := range cases {
		got, err := fieldID([]byte(c.doc), "id")
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("fieldID(%s) = %q, %v; want %q", c.doc, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("fieldID(%s) = %q, %v; want an error saying %q", c.doc, got, err, c.err)
		}
	}
	_, err := fieldID([]byte(`{"a":1}`), "id")
	if !errors.Is(err, errNoIDField) {
		t.Errorf("missing field: %v, want errNoIDField", err)
	}
}

// Each document goes on one line after its action line, whatever its layout; ids and names
// are JSON-escaped.
func TestEncode(t *testing.T) {
	s := &Sink{typeName: "event"}
	pretty := record.Record{Data: []byte("{\n  \"a\": 1,\r\n  \"b\": \"x y\"\n}")}
	plain := record.Record{Data: []byte(`{"c":2}`)}
	docs := []*doc{
		{rec: &pretty, action: s.actionLine("logs", `we"ird\id`)},
		{rec: &plain, action: (&Sink{}).actionLine("logs-2016", "")},
	}
	body := encode(docs)
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	if len(lines) != 4 || body[len(body)-1] != '\n' {
		t.Fatalf("body has %d lines:\n%s", len(lines), body)
	}
	var action map[string]map[string]string
	if err := json.Unmarshal(lines[0], &action); err != nil {
		t.Fatalf("action line %s: %v", lines[0], err)
	}
	if m := action["index"]; m["_index"] != "logs" || m["_id"] != `we"ird\id` || m["_type"] != "event" {
		t.Errorf("action line %s", lines[0])
	}
	if string(lines[1]) != `{"a":1,"b":"x y"}` {
		t.Errorf("document line %s", lines[1])
	}
	if string(lines[2]) != `{"index":{"_index":"logs-2016"}}` || string(lines[3]) != `{"c":2}` {
		t.Errorf("second document: %s / %s", lines[2], lines[3])
	}
}
