package kdg

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// at is the fake clock's time in every test: Friday 2026-03-06 09:05:03.042 UTC.
var at = time.Date(2026, 3, 6, 9, 5, 3, 42_000_000, time.UTC)

func newTestFaker(seed uint64) *Faker { return NewFaker(seed, clock.NewFake(at), time.UTC) }

func render(t *testing.T, f *Faker, text string) string {
	t.Helper()
	tp, err := Parse("test.tmpl", text)
	if err != nil {
		t.Fatalf("Parse(%q): %v", text, err)
	}
	return string(tp.Render(f))
}

const (
	jsDate = `^[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{4} \d{2}:\d{2}:\d{2} GMT[+-]\d{4} \(UTC\)$`
	word   = `^[A-Za-z'-]+$`
)

// funcCases are every function with each of its argument forms and what every rendering must
// match. TestEveryFunctionIsCovered checks that none is missing.
var funcCases = []struct {
	expr string
	want string // regular expression the whole output must match
}{
	{`random.number`, `^\d{1,5}$`},
	{`random.number(10)`, `^(\d|10)$`},
	{`random.number({"min":10,"max":150})`, `^\d{2,3}$`},
	{`random.number({"min":1,"max":2,"precision":0.01})`, `^(1(\.\d{1,2})?|2)$`},
	{`random.number({"min":-5,"max":-1})`, `^-[1-5]$`},
	{`random.number()`, `^\d{1,5}$`},
	{`random.float`, `^\d{1,5}(\.\d{1,2})?$`},
	{`random.float({"min":0,"max":1,"precision":0.001})`, `^(0(\.\d{1,3})?|1)$`},
	{`random.arrayElement(["a","b","c"])`, `^[abc]$`},
	{`random.arrayElement([1,2.5,true,null])`, `^(1|2\.5|true|null)$`},
	{`random.arrayElements(["a","b","c"])`, `^[abc](,[abc]){0,2}$`},
	{`random.arrayElements(["a","b","c"], 2)`, `^[abc],[abc]$`},
	{`random.weightedArrayElement({"weights":[0.9,0.1],"data":["x","y"]})`, `^[xy]$`},
	{`random.uuid`, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
	{`random.boolean`, `^(true|false)$`},
	{`random.word`, `^\S+$`},
	{`random.words`, `^\S+( \S+){0,2}$`},
	{`random.words(4)`, `^\S+( \S+){3}$`},
	{`random.alphaNumeric`, `^[0-9a-z]$`},
	{`random.alphaNumeric(12)`, `^[0-9a-z]{12}$`},
	{`random.hexaDecimal`, `^0x[0-9a-f]$`},
	{`random.hexaDecimal(6)`, `^0x[0-9a-f]{6}$`},

	{`date.now`, `^2026-03-06T09:05:03\+00:00$`},
	{`date.now("YYYY-MM-DD HH:mm:ss")`, `^2026-03-06 09:05:03$`},
	{`date.now("x")`, `^1772787903042$`},
	{`date.now("X")`, `^1772787903$`},
	{`date.utc`, `^2026-03-06T09:05:03Z$`},
	{`date.utc("YYYY-MM-DDTHH:mm:ss.SSS[Z]")`, `^2026-03-06T09:05:03\.042Z$`},
	{`date.past`, jsDate},
	{`date.past(10)`, jsDate},
	{`date.past(2, "2020-01-01")`, `^[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} (2018|2019) `},
	{`date.future`, jsDate},
	{`date.future(5, "2020-01-01T00:00:00Z")`, `^[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} 202[0-5] `},
	{`date.recent`, `^(Thu Mar 05|Fri Mar 06) 2026 `},
	{`date.recent(3)`, `^(Tue Mar 03|Wed Mar 04|Thu Mar 05|Fri Mar 06) 2026 `},
	{`date.soon`, `^(Fri Mar 06|Sat Mar 07) 2026 `},
	{`date.soon(2)`, `^(Fri Mar 06|Sat Mar 07|Sun Mar 08) 2026 `},
	{`date.between("2024-01-01","2024-01-31")`, `^[A-Z][a-z]{2} Jan \d{2} 2024 `},
	{`date.between(1704067200000, 1704153600000)`, `^(Mon Jan 01|Tue Jan 02) 2024 `},
	{`date.month`, `^(January|February|March|April|May|June|July|August|September|October|November|December)$`},
	{`date.weekday`, `^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)$`},

	{`name.firstName`, word},
	{`name.lastName`, word},
	{`name.findName`, `^\S+ \S+$`},
	{`name.prefix`, `^\S+$`},
	{`name.suffix`, `^\S+$`},
	{`name.title`, `^\S+ \S+ .+$`},
	{`name.jobTitle`, `^\S+ .+$`},
	{`name.jobDescriptor`, `^\S+$`},
	{`name.jobArea`, `^\S+$`},
	{`name.jobType`, `^.+$`},
	{`name.gender`, `^\S+$`},

	{`internet.email`, `^[^@\s]+@[^@\s]+\.[a-z]+$`},
	{`internet.exampleEmail`, `^[^@\s]+@example\.com$`},
	{`internet.userName`, `^\S+$`},
	{`internet.url`, `^https?://\S+$`},
	{`internet.domainName`, `^[a-z0-9-]+\.[a-z]+$`},
	{`internet.domainSuffix`, `^[a-z]+$`},
	{`internet.domainWord`, `^[a-z'-]+$`},
	{`internet.ip`, `^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$`},
	{`internet.ipv6`, `^[0-9a-f]{1,4}(:[0-9a-f]{1,4}){7}$`},
	{`internet.mac`, `^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`},
	{`internet.userAgent`, `^[A-Za-z]+/\d.+$`},
	{`internet.protocol`, `^https?$`},
	{`internet.color`, `^#[0-9a-f]{6}$`},
	{`internet.avatar`, `^https://loremflickr\.com/128/128/people\?lock=\d+$`},
	{`internet.password`, `^[A-Za-z0-9]{15}$`},
	{`internet.password(8)`, `^[A-Za-z0-9]{8}$`},

	{`address.zipCode`, `^\d{5}$`},
	{`address.city`, `^.+$`},
	{`address.streetName`, `^\S+ \S+$`},
	{`address.streetAddress`, `^\d+ .+$`},
	{`address.streetSuffix`, `^\S+$`},
	{`address.streetPrefix`, `^\S+$`},
	{`address.buildingNumber`, `^\d+$`},
	{`address.secondaryAddress`, `^\S+ \d+$`},
	{`address.country`, `^.+$`},
	{`address.countryCode`, `^[A-Z]{2}$`},
	{`address.state`, `^[A-Z][A-Za-z ]+$`},
	{`address.stateAbbr`, `^[A-Z]{2}$`},
	{`address.latitude`, `^-?\d{1,2}\.\d{4}$`},
	{`address.longitude`, `^-?\d{1,3}\.\d{4}$`},
	{`address.timeZone`, `^[A-Za-z_]+/[A-Za-z0-9_/+-]+$`},

	{`commerce.color`, `^[a-z]+$`},
	{`commerce.department`, `^[A-Z].*$`},
	{`commerce.productName`, `^.+$`},
	{`commerce.productAdjective`, `^[A-Z]\S*$`},
	{`commerce.productMaterial`, `^[A-Z].*$`},
	{`commerce.price`, `^\d{1,4}\.\d{2}$`},
	{`commerce.price(10, 20)`, `^(1\d|20)\.\d{2}$`},
	{`commerce.price(10, 20, 0, "$")`, `^\$(1\d|20)$`},

	{`company.companyName`, `^.+$`},
	{`company.companySuffix`, `^.+$`},
	{`company.catchPhrase`, `^.+$`},
	{`company.bs`, `^.+$`},
	{`company.bsBuzz`, `^.+$`},

	{`finance.amount`, `^\d{1,4}\.\d{2}$`},
	{`finance.amount(5, 6)`, `^[56]\.\d{2}$`},
	{`finance.amount(5, 6, 3)`, `^[56]\.\d{3}$`},
	{`finance.amount(5, 6, 1, "€")`, `^€[56]\.\d$`},
	{`finance.account`, `^\d{8}$`},
	{`finance.account(12)`, `^\d{12}$`},
	{`finance.accountName`, `^.+ Account$`},
	{`finance.currencyCode`, `^[A-Z]{3}$`},
	{`finance.currencyName`, `^.+$`},
	{`finance.transactionType`, `^(deposit|withdrawal|payment|invoice)$`},
	{`finance.creditCardNumber`, `^\d{12,19}$`},
	{`finance.bitcoinAddress`, `^[13][A-Za-z0-9]{25,34}$`},

	{`lorem.word`, `^[a-z]+$`},
	{`lorem.words`, `^[a-z]+( [a-z]+){2}$`},
	{`lorem.words(5)`, `^[a-z]+( [a-z]+){4}$`},
	{`lorem.sentence`, `^[A-Z][a-z]*( [a-z]+){2,9}\.$`},
	{`lorem.sentence(4)`, `^[A-Z][a-z]*( [a-z]+){3}\.$`},
	{`lorem.sentences`, `^[A-Z][a-z ]+\.( [A-Z][a-z ]+\.){1,5}$`},
	{`lorem.sentences(2)`, `^[A-Z][a-z ]+\. [A-Z][a-z ]+\.$`},
	{`lorem.paragraph`, `^[A-Z][a-z ]+\.( [A-Z][a-z ]+\.){2}$`},
	{`lorem.paragraph(1)`, `^[A-Z][a-z ]+\.$`},
	{`lorem.paragraphs`, `^[^\n]+(\n \r[^\n]+){2}$`},
	{`lorem.paragraphs(2)`, `^[^\n]+\n \r[^\n]+$`},
	{`lorem.text`, `^[A-Z][a-z ]+\.$`},
	{`lorem.lines`, `^[^\n]+(\n[^\n]+){0,4}$`},
	{`lorem.lines(2)`, `^[^\n]+\n[^\n]+$`},
	{`lorem.slug`, `^[a-z]+-[a-z]+-[a-z]+$`},
	{`lorem.slug(2)`, `^[a-z]+-[a-z]+$`},

	{`phone.phoneNumber`, `^[\d().\- x]+$`},
	{`phone.phoneNumber("+1-###-###-####")`, `^\+1-\d{3}-\d{3}-\d{4}$`},

	{`hacker.abbreviation`, `^[A-Z0-9]+$`},
	{`hacker.adjective`, `^.+$`},
	{`hacker.noun`, `^.+$`},
	{`hacker.verb`, `^\S+( \S+)?$`},
	{`hacker.ingverb`, `^\S+ing( \S+)?$`},
	{`hacker.phrase`, `^.+$`},

	{`image.image`, `^https://loremflickr\.com/640/480/[a-z]+\?lock=\d+$`},
	{`image.image(100, 50)`, `^https://loremflickr\.com/100/50/[a-z]+\?lock=\d+$`},
	{`image.imageUrl`, `^https://loremflickr\.com/640/480\?lock=\d+$`},
	{`image.imageUrl(300, 200, "cats")`, `^https://loremflickr\.com/300/200/cats\?lock=\d+$`},
	{`image.avatar`, `^https://loremflickr\.com/128/128/people\?lock=\d+$`},
	{`image.abstract`, `^https://loremflickr\.com/640/480/abstract\?lock=\d+$`},
	{`image.animals(20, 10)`, `^https://loremflickr\.com/20/10/animals\?lock=\d+$`},
	{`image.business`, `/business\?`},
	{`image.cats`, `/cats\?`},
	{`image.city`, `/city\?`},
	{`image.food`, `/food\?`},
	{`image.nightlife`, `/nightlife\?`},
	{`image.fashion`, `/fashion\?`},
	{`image.people`, `/people\?`},
	{`image.nature`, `/nature\?`},
	{`image.sports`, `/sports\?`},
	{`image.technics`, `/technics\?`},
	{`image.transport`, `/transport\?`},
}

func TestFunctions(t *testing.T) {
	f := newTestFaker(42)
	for _, c := range funcCases {
		re := regexp.MustCompile(c.want)
		for _, text := range []string{"{{" + c.expr + "}}", "{{ " + c.expr + " }}"} {
			for range 50 {
				if got := render(t, f, text); !re.MatchString(got) {
					t.Errorf("%s rendered %q, want a match of %s", text, got, c.want)
					break
				}
			}
		}
	}
}

func TestEveryFunctionIsCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range funcCases {
		name, _, _ := strings.Cut(c.expr, "(")
		covered[name] = true
	}
	for _, n := range Functions() {
		if !covered[n] {
			t.Errorf("function %s has no case in funcCases", n)
		}
	}
	// The functions the Kinesis Data Generator's documentation and common templates use.
	for _, n := range []string{"random.number", "random.arrayElement", "random.weightedArrayElement",
		"random.uuid", "random.boolean", "random.word", "random.words", "random.alphaNumeric",
		"date.now", "date.utc", "date.past", "date.future", "date.recent", "date.between",
		"internet.ip", "internet.email", "internet.userName", "internet.url", "internet.userAgent",
		"finance.amount", "finance.account", "finance.currencyCode", "phone.phoneNumber"} {
		if _, ok := functions[n]; !ok {
			t.Errorf("function %s is missing", n)
		}
	}
}

// drawNumbers renders expr n times as numbers.
func drawNumbers(t *testing.T, f *Faker, expr string, n int) []float64 {
	t.Helper()
	tp, err := Parse("t", "{{"+expr+"}}")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, n)
	for i := range out {
		s := string(tp.Render(f))
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%s rendered %q, not a number", expr, s)
		}
		out[i] = v
	}
	return out
}

func TestRandomNumberRangeIsInclusiveAndRespectsPrecision(t *testing.T) {
	f := newTestFaker(1)
	seen := map[float64]bool{}
	for _, v := range drawNumbers(t, f, `random.number({"min":3,"max":6})`, 2000) {
		if v < 3 || v > 6 || v != math.Trunc(v) {
			t.Fatalf("random.number min 3 max 6 gave %v", v)
		}
		seen[v] = true
	}
	if len(seen) != 4 {
		t.Errorf("random.number min 3 max 6 gave %d distinct values, want all of 3, 4, 5, 6: %v", len(seen), seen)
	}
	for _, v := range drawNumbers(t, f, `random.number({"min":0,"max":1,"precision":0.25})`, 500) {
		if v != 0 && v != 0.25 && v != 0.5 && v != 0.75 && v != 1 {
			t.Fatalf("precision 0.25 gave %v", v)
		}
	}
	for _, v := range drawNumbers(t, f, `random.number(3)`, 500) {
		if v < 0 || v > 3 {
			t.Fatalf("random.number(3) gave %v", v)
		}
	}
}

func TestWeightedArrayElementFollowsTheWeights(t *testing.T) {
	f := newTestFaker(2)
	tp, err := Parse("t", `{{random.weightedArrayElement({"weights":[0.8,0.2,0],"data":["a","b","never"]})}}`)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	const n = 10000
	for range n {
		counts[string(tp.Render(f))]++
	}
	if counts["never"] != 0 {
		t.Errorf("an element of weight 0 was drawn %d times", counts["never"])
	}
	if a := float64(counts["a"]) / n; a < 0.77 || a > 0.83 {
		t.Errorf("weight 0.8 drew %.3f of %d", a, n)
	}
}

func TestSameSeedRendersTheSameRecords(t *testing.T) {
	var all strings.Builder
	for _, c := range funcCases {
		all.WriteString("{{" + c.expr + "}}|")
	}
	tp, err := Parse("all", all.String())
	if err != nil {
		t.Fatal(err)
	}
	a, b, other := newTestFaker(99), newTestFaker(99), newTestFaker(100)
	differs := false
	for i := range 20 {
		ra, rb, ro := tp.Render(a), tp.Render(b), tp.Render(other)
		if string(ra) != string(rb) {
			t.Fatalf("record %d differs between two Fakers of seed 99:\n%s\n%s", i, ra, rb)
		}
		differs = differs || string(ra) != string(ro)
	}
	if !differs {
		t.Error("seeds 99 and 100 rendered the same records")
	}
}

func TestLiteralTextAndMultiLineArguments(t *testing.T) {
	f := newTestFaker(3)
	got := render(t, f, "{\n  \"a\": \"{{random.arrayElement([\"x\"])}}\",\n  \"n\": {{random.number(\n{\n\"min\":7,\n\"max\":7\n}\n)}},\n  \"lit\": \"} ) }\"\n}")
	want := "{\n  \"a\": \"x\",\n  \"n\": 7,\n  \"lit\": \"} ) }\"\n}"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Braces and parentheses inside JSON string arguments do not end the expression.
	if got := render(t, f, `{{random.arrayElement(["a)}}b"])}}`); got != "a)}}b" {
		t.Errorf("got %q, want a)}}b", got)
	}
	if got := render(t, f, "no expressions"); got != "no expressions" {
		t.Errorf("got %q", got)
	}
}

func TestFormatMoment(t *testing.T) {
	pm := time.Date(2024, 1, 2, 15, 4, 5, 123456789, time.FixedZone("X", -7*3600))
	for format, want := range map[string]string{
		"YYYY-MM-DD HH:mm:ss":      "2024-01-02 15:04:05",
		"YYYY-MM-DDTHH:mm:ss.SSSZ": "2024-01-02T15:04:05.123-07:00",
		"YY M D H m s":             "24 1 2 15 4 5",
		"MMMM MMM Do DDD DDDD":     "January Jan 2nd 2 002",
		"dddd ddd dd d":            "Tuesday Tue Tu 2",
		"hh:mm A h a k kk":         "03:04 PM 3 pm 15 15",
		"ZZ Q":                     "-0700 1",
		"x":                        "1704233045123",
		"X":                        "1704233045",
		"[today is] dddd [YYYY]":   "today is Tuesday YYYY",
		"S SS SSSSSS":              "1 12 123456",
		"[literal]: /,_":           "literal: /,_",
	} {
		if got := FormatMoment(pm, format); got != want {
			t.Errorf("FormatMoment(%q) = %q, want %q", format, got, want)
		}
	}
	for day, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 23: "23rd"} {
		if got := FormatMoment(time.Date(2024, 1, day, 0, 0, 0, 0, time.UTC), "Do"); got != want {
			t.Errorf("Do of day %d = %q, want %q", day, got, want)
		}
	}
	if got := FormatMoment(time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC), "hh A k"); got != "12 AM 24" {
		t.Errorf("midnight: %q", got)
	}
}

func TestDateNowUsesTheLocation(t *testing.T) {
	f := NewFaker(1, clock.NewFake(at), time.FixedZone("Plus2", 2*3600))
	if got := render(t, f, `{{date.now("HH:mm Z")}} {{date.utc("HH:mm")}}`); got != "11:05 +02:00 09:05" {
		t.Errorf("got %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		text      string
		line, col int
		msg       string
	}{
		{`{"a": "{{random.uuid}}", "b": "{{name.nickname}}"}`, 1, 34, `unknown function "name.nickname"; name has: name.findName`},
		{"{\n  \"x\": {{nope.thing}}\n}", 2, 10, `unknown function "nope.thing"; namespaces: address, commerce`},
		{"line one\n  {{random.uuid", 2, 3, `{{ is not closed with }}`},
		{"{{random.number(5}}", 1, 16, `random.number: ( is not closed with )`},
		{"{{random.number(5", 1, 1, `{{ is not closed with }}`},
		{"{{random.number(5 }} and }}", 1, 16, `random.number: ( is not closed with )`},
		{"{{}}", 1, 1, `empty expression`},
		{"{{ !x }}", 1, 4, `expected a function name`},
		{"{{random.uuid x}}", 1, 15, `random.uuid: expected }} or (arguments), found "x"`},
		{`{{random.number(abc)}}`, 1, 17, `random.number: arguments are not JSON values`},
		{`{{random.number("ten")}}`, 1, 3, `random.number: argument 1: "ten" is neither a number nor an object`},
		{`{{random.number({"min":5,"max":1})}}`, 1, 3, `min 5 is greater than max 1`},
		{`{{random.number({"min":1,"max":5,"precision":0})}}`, 1, 3, `precision 0 must be greater than 0`},
		{`{{random.number({"minimum":1})}}`, 1, 3, `unknown key "minimum"; allowed: min, max, precision`},
		{`{{random.number({"max":"x"})}}`, 1, 3, `"max" is "x", not a number`},
		{`{{random.number(1, 2)}}`, 1, 3, `random.number takes at most 1 argument(s)`},
		{`{{random.uuid(1)}}`, 1, 3, `random.uuid takes no arguments, got 1`},
		{`{{random.arrayElement}}`, 1, 3, `random.arrayElement needs an array`},
		{`{{random.arrayElement([])}}`, 1, 3, `the array is empty`},
		{`{{random.arrayElement("ab")}}`, 1, 3, `"ab" is not an array`},
		{`{{random.arrayElements(["a"], 2)}}`, 1, 3, `2 is out of range; want a whole number from 1 to 1`},
		{`{{random.weightedArrayElement({"weights":[1],"data":["a","b"]})}}`, 1, 3, `"weights" has 1 entries and "data" 2`},
		{`{{random.weightedArrayElement({"weights":[0,0],"data":["a","b"]})}}`, 1, 3, `the weights add up to 0`},
		{`{{random.weightedArrayElement({"weights":[-1,2],"data":["a","b"]})}}`, 1, 3, `weight 1 is -1`},
		{`{{random.weightedArrayElement({"weights":1,"data":["a"]})}}`, 1, 3, `must both be arrays`},
		{`{{random.weightedArrayElement}}`, 1, 3, `needs ({"weights"`},
		{`{{random.words(0)}}`, 1, 3, `random.words: argument 1: 0 is out of range`},
		{`{{random.alphaNumeric(2.5)}}`, 1, 3, `2.5 is not a whole number`},
		{`{{date.now(5)}}`, 1, 3, `date.now: argument 1: 5 is not a string`},
		{`{{date.between("2024-01-01")}}`, 1, 3, `date.between needs two dates`},
		{`{{date.between("2024-02-01","2024-01-01")}}`, 1, 3, `argument 2: 2024-01-01T00:00:00Z is before 2024-02-01T00:00:00Z`},
		{`{{date.between("yesterday","2024-01-01")}}`, 1, 3, `"yesterday" is not a date`},
		{`{{date.past(0)}}`, 1, 3, `years 0 must be greater than 0`},
		{`{{date.past(1, "soon")}}`, 1, 3, `argument 2: "soon" is not a date`},
		{`{{date.recent(1, "2024-01-01")}}`, 1, 3, `date.recent takes at most 1 argument(s)`},
		{`{{finance.amount(10, 1)}}`, 1, 3, `min 10 is greater than max 1`},
		{`{{finance.amount(1, 2, 11)}}`, 1, 3, `argument 3: 11 is out of range`},
		{`{{finance.account(0)}}`, 1, 3, `out of range`},
		{`{{phone.phoneNumber(1)}}`, 1, 3, `is not a string`},
		{`{{image.imageUrl(0)}}`, 1, 3, `out of range`},
		{`{{image.imageUrl(1, 1, 3)}}`, 1, 3, `argument 3: 3 is not a string`},
		{"é{{random.uuid}}\n  é{{bad}}", 2, 6, `unknown function "bad"`},
	} {
		_, err := Parse("my.tmpl", c.text)
		var te *Error
		if !errors.As(err, &te) {
			t.Errorf("Parse(%q) = %v, want an *Error", c.text, err)
			continue
		}
		if te.Template != "my.tmpl" || te.Line != c.line || te.Column != c.col || !strings.Contains(te.Msg, c.msg) {
			t.Errorf("Parse(%q) = %q (line %d col %d), want line %d col %d and %q", c.text, err, te.Line, te.Column, c.line, c.col, c.msg)
		}
		if !strings.HasPrefix(err.Error(), "template my.tmpl: line ") {
			t.Errorf("error %q does not start with the template and line", err)
		}
	}
}

func TestIsJSON(t *testing.T) {
	if !IsJSON([]byte(" {\"a\":1}\n")) || IsJSON([]byte("a,b,c")) || IsJSON([]byte(`{"a":1} {"b":2}`)) {
		t.Error("IsJSON is wrong")
	}
}
