package config

import "strconv"

// DeadLetter is where records given up on go. Empty Type means none is configured.
type DeadLetter struct {
	Type string `koanf:"type"`
}

func (v *checker) deadLetter(d DeadLetter) {
	if d.Type != "" {
		v.add("dead_letter.type", strconv.Quote(d.Type), `is not allowed: only "" (no dead-letter destination) is accepted`)
	}
}
