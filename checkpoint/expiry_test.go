package checkpoint_test

import (
	"testing"
	"time"

	"github.com/shardhose/shardhose/checkpoint"
	"github.com/shardhose/shardhose/internal/clock"
)

const testLeaseDuration = 10 * time.Second

func newTracker() (*checkpoint.ExpiryTracker, *clock.Fake) {
	c := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	return checkpoint.NewExpiryTracker(testLeaseDuration, c), c
}

func TestExpiryNewObservationIsNotExpired(t *testing.T) {
	tr, c := newTracker()
	// Its LeaseTimeout lies long in the past; a new reader still waits a full duration.
	l := checkpoint.Lease{ShardID: "s1", Owner: "a", Counter: 5, LeaseTimeout: c.Now().Add(-time.Hour)}
	tr.Observe([]checkpoint.Lease{l})
	if tr.Expired(l) {
		t.Fatal("a lease first observed now is expired")
	}
	c.Advance(testLeaseDuration - time.Nanosecond)
	tr.Observe([]checkpoint.Lease{l})
	if tr.Expired(l) {
		t.Fatal("expired before a full duration passed")
	}
}

func TestExpiryAfterDurationWithUnchangedCounter(t *testing.T) {
	tr, c := newTracker()
	l := checkpoint.Lease{ShardID: "s1", Owner: "a", Counter: 5}
	tr.Observe([]checkpoint.Lease{l})
	c.Advance(testLeaseDuration / 2)
	tr.Observe([]checkpoint.Lease{l}) // same version again: the wait continues
	c.Advance(testLeaseDuration / 2)
	if !tr.Expired(l) {
		t.Fatal("not expired after a full duration with an unchanged counter")
	}
}

func TestExpiryBumpResets(t *testing.T) {
	tr, c := newTracker()
	l := checkpoint.Lease{ShardID: "s1", Owner: "a", Counter: 5}
	tr.Observe([]checkpoint.Lease{l})
	c.Advance(testLeaseDuration - time.Second)
	l.Counter++
	tr.Observe([]checkpoint.Lease{l})
	c.Advance(time.Second)
	if tr.Expired(l) {
		t.Fatal("expired one second after a counter bump")
	}
	c.Advance(testLeaseDuration - time.Second)
	if !tr.Expired(l) {
		t.Fatal("not expired a full duration after the bump")
	}
}

func TestExpiryVmwareRenewalWithoutCounterResets(t *testing.T) {
	tr, c := newTracker()
	l := checkpoint.Lease{ShardID: "s1", Owner: "kcl", LeaseTimeout: c.Now().Add(testLeaseDuration)}
	tr.Observe([]checkpoint.Lease{l})
	c.Advance(testLeaseDuration - time.Second)
	l.LeaseTimeout = c.Now().Add(testLeaseDuration) // renewed by vmware-go-kcl: counter stays 0
	tr.Observe([]checkpoint.Lease{l})
	c.Advance(time.Second)
	if tr.Expired(l) {
		t.Fatal("a LeaseTimeout renewal did not count as a sign of life")
	}
}

func TestExpiryFreeUnknownStaleAndForgotten(t *testing.T) {
	tr, c := newTracker()
	free := checkpoint.Lease{ShardID: "free", Counter: 3}
	held := checkpoint.Lease{ShardID: "held", Owner: "a", Counter: 3}
	tr.Observe([]checkpoint.Lease{free, held})
	c.Advance(2 * testLeaseDuration)
	if tr.Expired(free) {
		t.Error("a free lease is expired")
	}
	if tr.Expired(checkpoint.Lease{ShardID: "never-seen", Owner: "a"}) {
		t.Error("a lease never observed is expired")
	}
	newer := held
	newer.Counter++
	if tr.Expired(newer) {
		t.Error("a newer version than the one observed is expired")
	}
	if !tr.Expired(held) {
		t.Fatal("held lease not expired")
	}
	// held disappears from the listing and comes back: the wait starts again.
	tr.Observe([]checkpoint.Lease{free})
	tr.Observe([]checkpoint.Lease{free, held})
	if tr.Expired(held) {
		t.Error("a forgotten lease kept its old observation time")
	}
}

func TestClaimAbandonedOnlyAfterAFullDurationUnchanged(t *testing.T) {
	tr, c := newTracker()
	// Released by its owner for worker "b", which never comes to take it.
	l := checkpoint.Lease{ShardID: "s1", Counter: 7, ClaimRequest: "b"}
	tr.Observe([]checkpoint.Lease{l})
	if tr.ClaimAbandoned(l) {
		t.Fatal("a claim first observed now is abandoned")
	}
	c.Advance(testLeaseDuration - time.Nanosecond)
	tr.Observe([]checkpoint.Lease{l})
	if tr.ClaimAbandoned(l) {
		t.Fatal("abandoned before a full duration passed")
	}
	c.Advance(time.Nanosecond)
	if !tr.ClaimAbandoned(l) {
		t.Fatal("not abandoned after a full duration with the row and the claim unchanged")
	}
	if tr.Expired(l) {
		t.Fatal("a free lease reported expired")
	}
}

func TestClaimAbandonedRestartsOnANewClaimOrWrite(t *testing.T) {
	tr, c := newTracker()
	l := checkpoint.Lease{ShardID: "s1", Counter: 7, ClaimRequest: "b"}
	tr.Observe([]checkpoint.Lease{l})
	c.Advance(testLeaseDuration - time.Second)

	// Another worker claims it instead: its wait starts now, not when the row was released.
	l.ClaimRequest = "c"
	tr.Observe([]checkpoint.Lease{l})
	c.Advance(time.Second)
	if tr.ClaimAbandoned(l) {
		t.Fatal("a fresh claim inherited the age of the previous one")
	}
	c.Advance(testLeaseDuration)
	if !tr.ClaimAbandoned(l) {
		t.Fatal("the new claim is not abandoned after a full duration")
	}

	// Any write to the row (the counter moves) starts the wait again.
	l.Counter++
	tr.Observe([]checkpoint.Lease{l})
	if tr.ClaimAbandoned(l) {
		t.Fatal("abandoned right after the row changed")
	}
}

func TestClaimAbandonedIsFalseForOwnedOrUnclaimedLeases(t *testing.T) {
	tr, c := newTracker()
	owned := checkpoint.Lease{ShardID: "s1", Owner: "a", Counter: 3, ClaimRequest: "b"}
	unclaimed := checkpoint.Lease{ShardID: "s2", Counter: 4}
	tr.Observe([]checkpoint.Lease{owned, unclaimed})
	c.Advance(2 * testLeaseDuration)
	if tr.ClaimAbandoned(owned) || tr.ClaimAbandoned(unclaimed) {
		t.Fatal("ClaimAbandoned is for free leases with a claim only")
	}
	// An owned lease whose owner stopped renewing is Expired instead, claim or not.
	if !tr.Expired(owned) {
		t.Fatal("the silent owner's lease is not expired")
	}
}
