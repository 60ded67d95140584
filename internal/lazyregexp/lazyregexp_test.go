package lazyregexp

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestMatchesAsCompiled(t *testing.T) {
	r := New(`^([a-z]+)-([0-9]{1,3})$`)
	if r.String() != `^([a-z]+)-([0-9]{1,3})$` {
		t.Errorf("String() = %q", r.String())
	}
	if !r.MatchString("abc-123") || r.MatchString("abc-1234") {
		t.Error("MatchString disagrees with the pattern")
	}
	if got, want := r.FindStringSubmatch("abc-12"), []string{"abc-12", "abc", "12"}; !slices.Equal(got, want) {
		t.Errorf("FindStringSubmatch = %q, want %q", got, want)
	}
	if got := r.FindStringSubmatch("nope"); got != nil {
		t.Errorf("FindStringSubmatch of a non-match = %q, want nil", got)
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	r := New(`^x+$`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if !r.MatchString("xxx") {
				t.Error("no match")
			}
		})
	}
	wg.Wait()
}

func TestInvalidPatternPanicsAtFirstUse(t *testing.T) {
	r := New(`(`) // creating it must not panic
	defer func() {
		if recover() == nil {
			t.Error("matching an invalid pattern did not panic")
		}
	}()
	r.MatchString("(")
}

// TestBoundedMatchesTheCountedPattern: a bounded pattern accepts and rejects exactly what the
// counted repetition it stands for does, at and around its bounds, and for text outside its
// character class (including non-ASCII).
func TestBoundedMatchesTheCountedPattern(t *testing.T) {
	cases := []struct {
		counted  string
		bounded  *Regexp
		alphabet string
	}{
		{`^[a-zA-Z0-9_.-]{3,255}$`, NewBounded(`^[a-zA-Z0-9_.-]+$`, 3, 255), "aZ9_.-/ é"},
		{`^[A-Za-z0-9.\-_/#: ]{1,255}$`, NewBounded(`^[A-Za-z0-9.\-_/#: ]+$`, 1, 255), "a-/#: ?\x00ü"},
		{`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`, NewBounded(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`, 3, 63), "a9.-A_"},
		{`^[A-Za-z_][A-Za-z0-9_]{0,254}$`, NewBounded(`^[A-Za-z_][A-Za-z0-9_]*$`, 1, 255), "a_9-"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		want := regexp.MustCompile(c.counted)
		alphabet := []rune(c.alphabet)
		for n := 0; n < 300; n++ {
			for range 20 {
				var b strings.Builder
				for range n {
					b.WriteRune(alphabet[rng.IntN(len(alphabet))])
				}
				// Mostly the first letter of the alphabet, which every pattern accepts anywhere,
				// so that long accepted strings are common.
				s := b.String()
				if rng.IntN(2) == 0 {
					s = strings.Repeat(string(alphabet[0]), n)
				}
				if got, w := c.bounded.MatchString(s), want.MatchString(s); got != w {
					t.Fatalf("%s on %q (%d bytes): %v, the counted pattern says %v", c.counted, s, len(s), got, w)
				}
				if got, w := c.bounded.FindStringSubmatch(s) != nil, want.FindStringSubmatch(s) != nil; got != w {
					t.Fatalf("%s: FindStringSubmatch on %q: %v, the counted pattern says %v", c.counted, s, got, w)
				}
			}
		}
	}
}
