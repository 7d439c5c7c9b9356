package main

import (
	"context"
	"time"

	"github.com/defenderbot/defenderbot/store"
)

// leaseObserver is told which store leases this replica holds.
type leaseObserver interface {
	Lease(name string, held bool)
}

// leaseCountingStore reports every lease taken, renewed, lost or released to
// the metrics, so that the bot and the IOC sync need not know about them.
type leaseCountingStore struct {
	store.Store
	obs leaseObserver
}

func (s leaseCountingStore) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	ok, err := s.Store.AcquireLease(ctx, name, owner, now, ttl)
	if err == nil {
		s.obs.Lease(name, ok)
	}
	return ok, err
}

// ReleaseLease counts the lease as given up even when the release fails:
// nothing renews it any more, so it lapses at its TTL.
func (s leaseCountingStore) ReleaseLease(ctx context.Context, name, owner string) error {
	err := s.Store.ReleaseLease(ctx, name, owner)
	s.obs.Lease(name, false)
	return err
}
