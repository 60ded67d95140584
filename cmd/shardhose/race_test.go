//go:build race

package main

// Under the race detector the end-to-end tests build the daemon with -race too, so that the
// worker processes they start are checked as well (see TestMain and startDaemon).
func init() { raceBuild = true }
