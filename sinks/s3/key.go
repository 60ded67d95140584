package s3

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// maxPrefixLen is Firehose's limit on an evaluated prefix.
const maxPrefixLen = 512

// timePrefixLayout is Firehose's default prefix, !{timestamp:yyyy/MM/dd/HH/}, as a Go layout.
const timePrefixLayout = "2006/01/02/15/"

// sinkNamePattern is Firehose's rule for delivery stream names, which become part of object names.
var sinkNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// keyBuilder makes object keys in Firehose's layout:
//
//	<prefix>YYYY/MM/dd/HH/<name>-1-YYYY-MM-dd-HH-MM-SS-<uuid><ext>
//
// where both times are the arrival of the object's oldest record, in UTC. The "1" is Firehose's
// delivery stream version. A literal prefix gets the time folders appended, as Firehose appends
// !{timestamp:yyyy/MM/dd/HH/} to a prefix with no timestamp expression (so "logs" gives
// "logs2024/...": the slash is the user's to write).
type keyBuilder struct {
	prefix string
	name   string
	ext    string
	random func() string
}

func newKeyBuilder(prefix, name, ext string) (keyBuilder, error) {
	if strings.Contains(prefix, "!{") {
		return keyBuilder{}, fmt.Errorf("prefix %q: prefix expressions (!{...}) are not supported yet; use a literal prefix", prefix)
	}
	if n := len(prefix) + len(timePrefixLayout); n > maxPrefixLen {
		return keyBuilder{}, fmt.Errorf("prefix is %d characters long with the time folders appended; the limit is %d", n, maxPrefixLen)
	}
	return keyBuilder{prefix: prefix, name: name, ext: ext, random: randomUUID}, nil
}

func (k keyBuilder) key(oldest time.Time) string {
	t := oldest.UTC()
	var b strings.Builder
	b.Grow(len(k.prefix) + len(k.name) + 80)
	b.WriteString(k.prefix)
	b.WriteString(t.Format(timePrefixLayout))
	b.WriteString(k.name)
	b.WriteString("-1-")
	b.WriteString(t.Format("2006-01-02-15-04-05"))
	b.WriteByte('-')
	b.WriteString(k.random())
	b.WriteString(k.ext)
	return b.String()
}

// randomUUID returns a random (version 4) UUID, Firehose's random part of object names.
func randomUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never returns an error
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
