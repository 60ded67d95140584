package record

import "testing"

func TestCompareSequenceNumbersNumerically(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"9", "10", -1},
		{"49601189658422359378836298521827638475320189012309704722", "49601189658422359378836298522902373528957594348623495186", -1},
		{"100", "100", 0},
		{"", "1", -1},
		{"2", "", 1},
		{"0010", "10", 0},
	}
	for _, c := range cases {
		if got := CompareSequenceNumbers(c.a, c.b); got != c.want {
			t.Errorf("CompareSequenceNumbers(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestPositionOrdersBySubSequenceWithinAggregate(t *testing.T) {
	a := Position{SequenceNumber: "5", SubSequenceNumber: 1}
	b := Position{SequenceNumber: "5", SubSequenceNumber: 2}
	c := Position{SequenceNumber: "6"}
	if a.Compare(b) != -1 || b.Compare(a) != 1 || b.Compare(c) != -1 || a.Compare(a) != 0 {
		t.Fatalf("unexpected order: a~b=%d b~a=%d b~c=%d", a.Compare(b), b.Compare(a), b.Compare(c))
	}
	if got := b.String(); got != "5.2" {
		t.Fatalf("String() = %q, want 5.2", got)
	}
	if got := c.String(); got != "6" {
		t.Fatalf("String() = %q, want 6", got)
	}
}
