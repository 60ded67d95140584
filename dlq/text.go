package dlq

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/shardhose/shardhose/record"
)

// TextOptions controls WriteText.
type TextOptions struct {
	// MaxRecords is how many records are shown per dead letter; 0 means all.
	MaxRecords int
	// MaxData is how many characters of a record's data are shown; 0 means 200.
	MaxData int
}

// kplMagic starts every KPL aggregate record.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// WriteText writes one dead letter for people: where it was read, why and when the batch was
// given up on, its shard and sequence range, batch size, attempts and error, then its records
// (recs, if the caller fetched them; recErr if that failed): sequence and sub-sequence numbers,
// partition key, arrival and the data, decoded and made printable (see Printable).
func WriteText(w io.Writer, l Letter, recs []record.Record, recErr error, o TextOptions) error {
	var b strings.Builder
	fmt.Fprintf(&b, "== %s\n", l.Origin)
	if l.Err != nil {
		fmt.Fprintf(&b, "  %v\n  raw: %s\n\n", l.Err, Printable(l.Raw, 300))
		_, err := io.WriteString(w, b.String())
		return err
	}
	m := l.Message
	bi := m.KinesisBatchInfo
	row := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-11s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	cond := string(m.RequestContext.Condition)
	if fe := m.ResponseContext.FunctionError; fe != "" {
		cond += " (" + fe + ")"
	}
	attempts := m.AttemptsMade
	if attempts == 0 {
		attempts = m.RequestContext.ApproximateInvokeCount
	}
	row("condition", "%s after %d attempt%s", cond, attempts, plural(attempts))
	row("when", "%s", orDash(m.Timestamp))
	row("function", "%s", orDash(m.RequestContext.FunctionARN))
	row("stream", "%s", orDash(bi.StreamARN))
	row("shard", "%s", bi.ShardID)
	if bi.StartSequenceNumber == bi.EndSequenceNumber {
		row("sequence", "%s", bi.StartSequenceNumber)
	} else {
		row("sequences", "%s .. %s", bi.StartSequenceNumber, orDash(bi.EndSequenceNumber))
	}
	row("arrived", "%s .. %s", orDash(bi.ApproximateArrivalOfFirstRecord), orDash(bi.ApproximateArrivalOfLastRecord))
	row("batch size", "%d", bi.BatchSize)
	row("error", "%s", orDash(oneLine(m.ErrorMessage, 2000)))
	row("id", "%s", m.RequestContext.RequestID)
	switch {
	case len(m.Inline) > 0:
		row("records", "%d in the message", len(m.Inline))
	case m.RecordsLocation != nil:
		row("records", "in %s", m.RecordsLocation)
	default:
		row("records", "not carried (metadata only, as Lambda writes it); replay reads them from the stream while it holds them")
	}
	if recErr != nil {
		fmt.Fprintf(&b, "  cannot show the records: %v\n", recErr)
	}
	maxData := o.MaxData
	if maxData <= 0 {
		maxData = 200
	}
	shown := len(recs)
	if o.MaxRecords > 0 && shown > o.MaxRecords {
		shown = o.MaxRecords
	}
	for i, r := range recs[:shown] {
		fmt.Fprintf(&b, "  [%d] seq %s", i+1, r.SequenceNumber)
		if r.SubSequenceNumber != 0 {
			fmt.Fprintf(&b, " sub %d", r.SubSequenceNumber)
		}
		fmt.Fprintf(&b, "  key %s  arrived %s  %d bytes\n", strconv.Quote(r.PartitionKey), orDash(formatTime(r.ApproximateArrivalTimestamp)), len(r.Data))
		fmt.Fprintf(&b, "      %s\n", Printable(r.Data, maxData))
	}
	if shown < len(recs) {
		fmt.Fprintf(&b, "  ... %d more record%s (--records 0 shows all)\n", len(recs)-shown, plural(len(recs)-shown))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Printable returns data for a terminal: text as text, with control characters escaped (\n, \t,
// \x1b) and cut after max characters, noting the full size; a KPL aggregate or other binary
// data as its size and its first bytes in hex.
func Printable(data []byte, max int) string {
	switch {
	case len(data) == 0:
		return "(empty)"
	case bytes.HasPrefix(data, kplMagic):
		return fmt.Sprintf("(KPL aggregate, %d bytes: %s)", len(data), hexPrefix(data, 16))
	case !utf8.Valid(data) || !mostlyText(data):
		return fmt.Sprintf("(binary, %d bytes: %s)", len(data), hexPrefix(data, 24))
	}
	var b strings.Builder
	n := 0
	for _, r := range string(data) {
		if n == max {
			fmt.Fprintf(&b, "... (%d bytes in all)", len(data))
			return b.String()
		}
		n++
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (!unicode.IsPrint(r) && !unicode.IsSpace(r)):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mostlyText reports whether at most a tenth of data's characters are control characters.
func mostlyText(data []byte) bool {
	ctl, all := 0, 0
	for _, r := range string(data) {
		all++
		if r < 0x20 && r != '\n' && r != '\t' && r != '\r' {
			ctl++
		}
	}
	return ctl*10 <= all
}

func hexPrefix(data []byte, n int) string {
	var b strings.Builder
	for i, c := range data {
		if i == n {
			b.WriteString(" ...")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	return b.String()
}

// oneLine makes s fit one line of at most max characters.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max]) + "..."
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
