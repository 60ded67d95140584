package config

// OpenSearchSink configures a sink of type opensearch.
type OpenSearchSink struct{}

// OpenSearchDefaults are applied to every opensearch sink section for keys it leaves out.
func OpenSearchDefaults() OpenSearchSink { return OpenSearchSink{} }

func (v *checker) sinkOpenSearch(p string, s OpenSearchSink) {}
