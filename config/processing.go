package config

// Processing configures the stage between reading and delivery: the handlers a batch goes
// through and Lambda's failure policy around them.
type Processing struct{}

func (v *checker) processing(p Processing) {}
