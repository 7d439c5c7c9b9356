package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// groupCache resolves Slack user groups (S…) to members, cached briefly so
// that a burst of clicks costs one usergroups.users.list call (Tier 2).
type groupCache struct {
	api   SlackAPI
	now   func() time.Time
	ttl   time.Duration
	retry func(ctx context.Context, call func() error) error

	mu      sync.Mutex
	entries map[string]groupEntry
}

type groupEntry struct {
	members map[string]bool
	at      time.Time
}

func newGroupCache(api SlackAPI, now func() time.Time, ttl time.Duration, retry func(context.Context, func() error) error) *groupCache {
	return &groupCache{api: api, now: now, ttl: ttl, retry: retry, entries: map[string]groupEntry{}}
}

func (g *groupCache) members(ctx context.Context, group string) (map[string]bool, error) {
	g.mu.Lock()
	e, ok := g.entries[group]
	g.mu.Unlock()
	if ok && g.now().Sub(e.at) < g.ttl {
		return e.members, nil
	}
	var ids []string
	err := g.retry(ctx, func() error {
		var err error
		ids, err = g.api.GetUserGroupMembersContext(ctx, group)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list members of user group %s: %w", group, err)
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	g.mu.Lock()
	g.entries[group] = groupEntry{members: m, at: g.now()}
	g.mu.Unlock()
	return m, nil
}

// isUserGroupID reports whether id names a Slack user group rather than a user.
func isUserGroupID(id string) bool { return strings.HasPrefix(id, "S") }

// InList reports whether user is listed directly or through a user group
// (approval.Directory). A group lookup failure is returned so that the
// approval core refuses (fails closed) rather than allows.
func (g *groupCache) InList(ctx context.Context, list []string, user string) (bool, error) {
	var firstErr error
	for _, id := range list {
		if id == user {
			return true, nil
		}
	}
	for _, id := range list {
		if !isUserGroupID(id) {
			continue
		}
		m, err := g.members(ctx, id)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if m[user] {
			return true, nil
		}
	}
	return false, firstErr
}
