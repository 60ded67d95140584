package config

import (
	"strconv"
	"strings"
)

// FileSink configures a sink of type file: records written one per line to a file or to
// standard output, for development and debugging. A file sink entry without a file section
// writes raw records to standard output.
type FileSink struct {
	// Path is the file to append to (created with mode 0644 when missing), or "-" for standard
	// output.
	Path string `koanf:"path"`
	// Format is raw (each record's data followed by "\n") or json (one JSON object per record
	// with its shard, partition key, sequence numbers, arrival time and data).
	Format string `koanf:"format"`
	// Fsync makes every Write wait for the file to reach the disk before its records are
	// acknowledged. Ignored for standard output.
	Fsync bool `koanf:"fsync"`
}

// FileSinkStdout is the path that selects standard output.
const FileSinkStdout = "-"

// fileSinkFormats are the allowed values of a file sink's format.
var fileSinkFormats = []string{"raw", "json"}

// FileDefaults are applied to every file sink section for keys it leaves out.
func FileDefaults() FileSink { return FileSink{Path: FileSinkStdout, Format: "raw", Fsync: true} }

func (v *checker) sinkFile(p string, s FileSink) {
	switch {
	case strings.TrimSpace(s.Path) == "":
		v.missing(p+".path", `name the file to append to, or "-" for standard output`)
	case strings.ContainsRune(s.Path, 0):
		v.add(p+".path", strconv.Quote(s.Path), "is not a file path: it contains a NUL character")
	}
	v.oneOf(p+".format", s.Format, fileSinkFormats)
}
