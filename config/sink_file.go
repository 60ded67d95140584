package config

// FileSink configures a sink of type file.
type FileSink struct{}

// FileDefaults are applied to every file sink section for keys it leaves out.
func FileDefaults() FileSink { return FileSink{} }

func (v *checker) sinkFile(p string, s FileSink) {}
