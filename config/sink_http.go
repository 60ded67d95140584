package config

// HTTPSink configures a sink of type http.
type HTTPSink struct{}

// HTTPDefaults are applied to every http sink section for keys it leaves out.
func HTTPDefaults() HTTPSink { return HTTPSink{} }

func (v *checker) sinkHTTP(p string, s HTTPSink) {}
