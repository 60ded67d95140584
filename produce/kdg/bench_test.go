package kdg

import (
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// BenchmarkRenderRecipeEvent renders the Firehose recipe's event template, the one
// `make demo-load` sends: the cost of one record before it is sent.
func BenchmarkRenderRecipeEvent(b *testing.B) {
	tp, err := ParseFile("../../configs/templates/recipe-purchase.tmpl")
	if err != nil {
		b.Fatal(err)
	}
	f := NewFaker(1, clock.NewFake(time.Date(2026, 3, 6, 9, 5, 3, 0, time.UTC)), nil)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = tp.AppendRender(buf[:0], f)
	}
	b.SetBytes(int64(len(buf)))
}
