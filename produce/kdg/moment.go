package kdg

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// momentDefault is what moment.js's format() gives without a format string.
const momentDefault = "YYYY-MM-DDTHH:mm:ssZ"

// momentTokens are the moment.js format tokens FormatMoment knows, longest first so that MMMM
// wins over MM. Text in [brackets] is copied as it is; any other character is literal.
var momentTokens = []string{
	"YYYY", "YY", "Q",
	"MMMM", "MMM", "MM", "M",
	"Do", "DDDD", "DDD", "DD", "D",
	"dddd", "ddd", "dd", "d",
	"HH", "H", "hh", "h", "kk", "k",
	"mm", "m", "ss", "s",
	"SSSSSSSSS", "SSSSSSSS", "SSSSSSS", "SSSSSS", "SSSSS", "SSSS", "SSS", "SS", "S",
	"A", "a", "ZZ", "Z", "X", "x",
}

// FormatMoment formats t with a moment.js format string, as the Kinesis Data Generator's
// date.now(format) does: YYYY-MM-DD HH:mm:ss, x (Unix milliseconds), X (Unix seconds), and the
// other tokens in momentTokens.
func FormatMoment(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); {
		if format[i] == '[' {
			if end := strings.IndexByte(format[i:], ']'); end > 0 {
				b.WriteString(format[i+1 : i+end])
				i += end + 1
				continue
			}
		}
		tok := ""
		for _, cand := range momentTokens {
			if strings.HasPrefix(format[i:], cand) {
				tok = cand
				break
			}
		}
		if tok == "" {
			b.WriteByte(format[i])
			i++
			continue
		}
		b.WriteString(momentToken(t, tok))
		i += len(tok)
	}
	return b.String()
}

func momentToken(t time.Time, tok string) string {
	two := func(n int) string { return fmt.Sprintf("%02d", n) }
	h12 := t.Hour() % 12
	if h12 == 0 {
		h12 = 12
	}
	switch tok {
	case "YYYY":
		return fmt.Sprintf("%04d", t.Year())
	case "YY":
		return two(t.Year() % 100)
	case "Q":
		return strconv.Itoa((int(t.Month())-1)/3 + 1)
	case "MMMM":
		return t.Month().String()
	case "MMM":
		return t.Month().String()[:3]
	case "MM":
		return two(int(t.Month()))
	case "M":
		return strconv.Itoa(int(t.Month()))
	case "Do":
		return ordinal(t.Day())
	case "DDDD":
		return fmt.Sprintf("%03d", t.YearDay())
	case "DDD":
		return strconv.Itoa(t.YearDay())
	case "DD":
		return two(t.Day())
	case "D":
		return strconv.Itoa(t.Day())
	case "dddd":
		return t.Weekday().String()
	case "ddd":
		return t.Weekday().String()[:3]
	case "dd":
		return t.Weekday().String()[:2]
	case "d":
		return strconv.Itoa(int(t.Weekday()))
	case "HH":
		return two(t.Hour())
	case "H":
		return strconv.Itoa(t.Hour())
	case "hh":
		return two(h12)
	case "h":
		return strconv.Itoa(h12)
	case "kk":
		return two(1 + (t.Hour()+23)%24)
	case "k":
		return strconv.Itoa(1 + (t.Hour()+23)%24)
	case "mm":
		return two(t.Minute())
	case "m":
		return strconv.Itoa(t.Minute())
	case "ss":
		return two(t.Second())
	case "s":
		return strconv.Itoa(t.Second())
	case "A":
		if t.Hour() < 12 {
			return "AM"
		}
		return "PM"
	case "a":
		if t.Hour() < 12 {
			return "am"
		}
		return "pm"
	case "Z":
		return t.Format("-07:00")
	case "ZZ":
		return t.Format("-0700")
	case "X":
		return strconv.FormatInt(t.Unix(), 10)
	case "x":
		return strconv.FormatInt(t.UnixMilli(), 10)
	}
	// S…: fractions of a second, as many digits as letters.
	return fmt.Sprintf("%09d", t.Nanosecond())[:len(tok)]
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

// jsDateString formats t as JavaScript's Date.prototype.toString does, which is how faker.js
// dates (date.past, date.between, …) appear in a Kinesis Data Generator record:
// "Fri Dec 04 2026 22:41:43 GMT+0000 (UTC)".
func jsDateString(t time.Time) string {
	zone, _ := t.Zone()
	return t.Format("Mon Jan 02 2006 15:04:05 GMT-0700") + " (" + zone + ")"
}
