package checkpoint

import (
	"sync"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

// ExpiryTracker decides, for one worker, which leases have expired, the Java KCL's way: it
// compares no wall clocks across hosts. Each time the worker lists the table it calls Observe; the
// tracker remembers, per shard, the local clock time at which it first saw the lease in its
// current version. A lease has expired when it has an owner and its version has not changed for
// a full lease duration of local time.
//
// The version is the counter, plus the owner and LeaseTimeout: a vmware-go-kcl worker renews by
// rewriting LeaseTimeout without touching the counter, and that must count as a sign of life too.
//
// A lease first observed now is not expired until a full duration has passed, whatever its
// LeaseTimeout says: a worker that has just started waits one duration before taking anything.
// So the duration must exceed the owners' renewal interval plus the listing interval, or live
// leases will look expired.
//
// An ExpiryTracker is safe for concurrent use.
type ExpiryTracker struct {
	duration time.Duration
	clock    clock.Clock

	mu   sync.Mutex
	seen map[string]observation
}

type observation struct {
	version version
	since   time.Time // local clock: when this version was first seen
	// claim is the ClaimRequest last seen, and claimSince when it was first seen on this version.
	// A claim does not bump the counter, so it is tracked apart from the version: a new claim
	// must not look like a sign of life of the owner.
	claim      string
	claimSince time.Time
}

// version is what changes whenever the lease's owner shows it is alive.
type version struct {
	counter      int64
	owner        string
	leaseTimeout int64 // UnixNano of LeaseTimeout, 0 when unset
}

func versionOf(l Lease) version {
	v := version{counter: l.Counter, owner: l.Owner}
	if !l.LeaseTimeout.IsZero() {
		v.leaseTimeout = l.LeaseTimeout.UnixNano()
	}
	return v
}

// NewExpiryTracker returns a tracker for leases of the given duration, timed on c (nil means the
// system clock). Zero or negative durations mean DefaultLeaseDuration.
func NewExpiryTracker(leaseDuration time.Duration, c clock.Clock) *ExpiryTracker {
	if leaseDuration <= 0 {
		leaseDuration = DefaultLeaseDuration
	}
	if c == nil {
		c = clock.Real()
	}
	return &ExpiryTracker{duration: leaseDuration, clock: c, seen: map[string]observation{}}
}

// Observe records a full listing of the table: a lease whose version differs from the one last
// seen starts its wait now, and shards missing from leases are forgotten.
func (e *ExpiryTracker) Observe(leases []Lease) {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	next := make(map[string]observation, len(leases))
	for _, l := range leases {
		v := versionOf(l)
		if prev, ok := e.seen[l.ShardID]; ok && prev.version == v {
			if prev.claim != l.ClaimRequest {
				prev.claim, prev.claimSince = l.ClaimRequest, now
			}
			next[l.ShardID] = prev
			continue
		}
		next[l.ShardID] = observation{version: v, since: now, claim: l.ClaimRequest, claimSince: now}
	}
	e.seen = next
}

// Expired reports whether l has an owner that has shown no sign of life for a full lease duration.
// It is false for a free lease, for a lease never passed to Observe, and for a version of l other
// than the one last observed (the caller read something newer: the owner is alive).
func (e *ExpiryTracker) Expired(l Lease) bool {
	if l.Free() {
		return false
	}
	now := e.clock.Now()
	e.mu.Lock()
	o, ok := e.seen[l.ShardID]
	e.mu.Unlock()
	if !ok || o.version != versionOf(l) {
		return false
	}
	return now.Sub(o.since) >= e.duration
}

// ClaimAbandoned reports whether l is a free lease held back for a claimant that has not come
// for it: it carries a ClaimRequest, and neither the row nor the claim has changed for a full
// lease duration. An owner hands a claimed lease over by releasing it with the claim in place,
// so that only the claimant takes it; if the claimant died after claiming, the lease would
// otherwise stay free, and its shard unread, for ever. Other workers may take it once this is
// true. Like Expired, it is false for a lease never passed to Observe and for a version of l
// other than the one last observed.
func (e *ExpiryTracker) ClaimAbandoned(l Lease) bool {
	if !l.Free() || l.ClaimRequest == "" {
		return false
	}
	now := e.clock.Now()
	e.mu.Lock()
	o, ok := e.seen[l.ShardID]
	e.mu.Unlock()
	if !ok || o.version != versionOf(l) || o.claim != l.ClaimRequest {
		return false
	}
	return now.Sub(o.claimSince) >= e.duration
}
