// Package ratelimit limits the requests of each credential in Redis, so that
// every edge replica counts against the same budget: a fixed window per
// credential (one Lua script, atomic in Redis), answered with how long to
// wait when the budget is spent.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

const keyPrefix = "egs:rl:"

// count increments KEYS[1], starts its window on the first hit and returns
// the count and the window's remaining milliseconds.
var count = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
`)

// Limiter allows Limit requests per Window to each key. It is safe for
// concurrent use.
type Limiter struct {
	rdb    redis.UniversalClient
	limit  int64
	window time.Duration
}

// New returns a limiter; limit <= 0 allows everything.
func New(rdb redis.UniversalClient, limit int, window time.Duration) *Limiter {
	return &Limiter{rdb: rdb, limit: int64(limit), window: window}
}

// Allow counts one request of key and reports whether it is within the
// limit; when not, it also says how long until the window ends.
func (l *Limiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	if l == nil || l.limit <= 0 {
		return true, 0, nil
	}
	res, err := count.Run(ctx, l.rdb, []string{keyPrefix + key}, l.window.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		return true, 0, fmt.Errorf("rate limit: %w", err)
	}
	if res[0] <= l.limit {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Millisecond, nil
}
