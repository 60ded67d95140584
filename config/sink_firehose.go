package config

// FirehoseSink configures a sink of type firehose.
type FirehoseSink struct{}

// FirehoseDefaults are applied to every firehose sink section for keys it leaves out.
func FirehoseDefaults() FirehoseSink { return FirehoseSink{} }

func (v *checker) sinkFirehose(p string, s FirehoseSink) {}
