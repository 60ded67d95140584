package kdg

import (
	"math/rand/v2"
	"time"

	"github.com/brianvoe/gofakeit/v7"

	"github.com/shardhose/shardhose/internal/clock"
)

// Faker is the state templates are rendered with: a random generator and a clock. Two Fakers
// made with the same seed and clocks that read the same render the same records. Dates that
// depend on the clock (date.now, date.utc, date.recent, …) follow the clock; everything else
// depends on the seed alone. A Faker is not safe for concurrent use.
type Faker struct {
	g   *gofakeit.Faker
	r   *rand.Rand // draws from the same source as g
	clk clock.Clock
	loc *time.Location
}

// NewFaker returns a Faker whose random choices all come from seed, reading the time from clk
// (nil means the system clock). date.now formats in loc (nil means UTC); date.utc always uses UTC.
func NewFaker(seed uint64, clk clock.Clock, loc *time.Location) *Faker {
	if clk == nil {
		clk = clock.Real()
	}
	if loc == nil {
		loc = time.UTC
	}
	src := rand.NewPCG(seed, 0x6b6467)
	return &Faker{g: gofakeit.NewFaker(src, false), r: rand.New(src), clk: clk, loc: loc}
}

// Uint64 returns a random number from the Faker's generator, for callers that need more
// randomness of the same seed (a random partition key, picking a template by weight).
func (f *Faker) Uint64() uint64 { return f.g.Uint64() }

// IntN returns a random int in [0, n) from the Faker's generator; n must be positive.
func (f *Faker) IntN(n int) int { return f.g.IntN(n) }

func (f *Faker) now() time.Time { return f.clk.Now() }
