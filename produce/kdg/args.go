package kdg

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// argList is an expression's arguments, decoded from JSON (numbers as json.Number), with the
// checks every function uses. Its errors name the function and the argument.
type argList struct {
	fn   string
	vals []any
}

func (a *argList) has(i int) bool { return i < len(a.vals) && a.vals[i] != nil }

func (a *argList) errf(i int, format string, args ...any) error {
	return fmt.Errorf("%s: argument %d: "+format, append([]any{a.fn, i + 1}, args...)...)
}

// atMost fails when more than n arguments were given; forms describes the allowed ones.
func (a *argList) atMost(n int, forms string) error {
	if len(a.vals) <= n {
		return nil
	}
	if n == 0 {
		return fmt.Errorf("%s takes no arguments, got %d", a.fn, len(a.vals))
	}
	return fmt.Errorf("%s takes at most %d argument(s), %s; got %d", a.fn, n, forms, len(a.vals))
}

// optInt returns argument i as an integer in [lo, hi], or def when it is absent or null.
func (a *argList) optInt(i int, def, lo, hi int) (int, error) {
	if !a.has(i) {
		return def, nil
	}
	return a.intAt(i, a.vals[i], lo, hi)
}

func (a *argList) intAt(i int, v any, lo, hi int) (int, error) {
	f, ok := number(v)
	if !ok || f != math.Trunc(f) {
		return 0, a.errf(i, "%s is not a whole number; want one from %d to %d", show(v), lo, hi)
	}
	if f < float64(lo) || f > float64(hi) {
		return 0, a.errf(i, "%s is out of range; want a whole number from %d to %d", show(v), lo, hi)
	}
	return int(f), nil
}

// optNum returns argument i as a number, or def when it is absent or null.
func (a *argList) optNum(i int, def float64) (float64, error) {
	if !a.has(i) {
		return def, nil
	}
	f, ok := number(a.vals[i])
	if !ok {
		return 0, a.errf(i, "%s is not a number", show(a.vals[i]))
	}
	return f, nil
}

// optStr returns argument i as a string, or def when it is absent or null.
func (a *argList) optStr(i int, def string) (string, error) {
	if !a.has(i) {
		return def, nil
	}
	s, ok := a.vals[i].(string)
	if !ok {
		return "", a.errf(i, "%s is not a string", show(a.vals[i]))
	}
	return s, nil
}

// optDate returns argument i as a time: a string in RFC 3339 or YYYY-MM-DD[ HH:mm:ss] form (UTC
// when it has no zone), or a number of milliseconds since 1970 as JavaScript dates take. ok is
// false when the argument is absent or null.
func (a *argList) optDate(i int) (t time.Time, ok bool, err error) {
	if !a.has(i) {
		return time.Time{}, false, nil
	}
	switch v := a.vals[i].(type) {
	case json.Number:
		ms, err := v.Int64()
		if err != nil {
			return time.Time{}, false, a.errf(i, "%s is not a whole number of milliseconds since 1970", v)
		}
		return time.UnixMilli(ms).UTC(), true, nil
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t, true, nil
			}
		}
	}
	return time.Time{}, false, a.errf(i, "%s is not a date; want \"YYYY-MM-DD\", \"YYYY-MM-DDTHH:mm:ssZ\" or milliseconds since 1970", show(a.vals[i]))
}

// array returns argument i as a non-empty JSON array.
func (a *argList) array(i int, what string) ([]any, error) {
	if !a.has(i) {
		return nil, fmt.Errorf("%s needs %s", a.fn, what)
	}
	arr, ok := a.vals[i].([]any)
	if !ok {
		return nil, a.errf(i, "%s is not an array; want %s", show(a.vals[i]), what)
	}
	if len(arr) == 0 {
		return nil, a.errf(i, "the array is empty; want %s", what)
	}
	return arr, nil
}

// object returns argument i as a JSON object whose keys are all in allowed.
func (a *argList) object(i int, allowed ...string) (map[string]any, error) {
	obj, ok := a.vals[i].(map[string]any)
	if !ok {
		return nil, a.errf(i, "%s is not an object", show(a.vals[i]))
	}
	for k := range obj {
		if !contains(allowed, k) {
			return nil, a.errf(i, "unknown key %q; allowed: %s", k, strings.Join(allowed, ", "))
		}
	}
	return obj, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
}

// show prints an argument as it was written, for messages.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsString turns a JSON value into text the way JavaScript's String() does for strings, numbers,
// booleans, null and arrays (elements joined by commas); an object is written as JSON.
func jsString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			if e != nil {
				parts[i] = jsString(e)
			}
		}
		return strings.Join(parts, ",")
	}
	return show(v)
}

// jsNumber writes a number as JavaScript does for the magnitudes templates use.
func jsNumber(f float64) string {
	if f == 0 {
		return "0" // not "-0"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// decimals is how many digits after the point p has when written out (0.01 has 2).
func decimals(p float64) int {
	s := strconv.FormatFloat(p, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// roundTo rounds f to d digits after the point.
func roundTo(f float64, d int) float64 {
	m := math.Pow(10, float64(d))
	return math.Round(f*m) / m
}
