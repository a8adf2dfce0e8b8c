package sms

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGroupSharesBatchesAmongWaitingCalls(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		sizes   []int
		release = make(chan struct{})
		started = make(chan struct{}, 10)
	)
	g := newGroup(4, func(_ context.Context, reqs []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(reqs))
		mu.Unlock()
		started <- struct{}{}
		<-release
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 10
		}
		return out, nil
	})
	g.lanes = 1
	var observed []int
	g.observe = func(n int) { observed = append(observed, n) } // one lane: no race

	results := make([]int, 7)
	var wg sync.WaitGroup
	call := func(i int) {
		defer wg.Done()
		res, err := g.do(context.Background(), i)
		require.NoError(t, err)
		results[i] = res
	}
	wg.Add(1)
	go call(0)
	<-started // the first batch runs alone and holds the only lane
	for i := 1; i < 7; i++ {
		wg.Add(1)
		go call(i)
	}
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.forming) == 6
	}, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()

	require.Equal(t, []int{1, 4, 2}, sizes, "the calls that waited share batches of at most 4")
	require.Equal(t, sizes, observed, "every batch size is reported")
	require.Equal(t, []int{0, 10, 20, 30, 40, 50, 60}, results, "each call gets its own result")
	g.mu.Lock()
	require.Zero(t, g.running, "no lane is left running when idle")
	g.mu.Unlock()
}

func TestGroupFailuresReachEveryCallOfTheBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	failing := newGroup(8, func(context.Context, []int) ([]int, error) { return nil, errors.New("commit failed") })
	_, err := failing.do(ctx, 1)
	require.EqualError(t, err, "commit failed")

	panicking := newGroup(8, func(context.Context, []int) ([]int, error) { panic("boom") })
	_, err = panicking.do(ctx, 1)
	require.ErrorContains(t, err, "panic in batch: boom")

	short := newGroup(8, func(context.Context, []int) ([]int, error) { return nil, nil })
	_, err = short.do(ctx, 1)
	require.ErrorContains(t, err, "0 results for 1 calls")
}

func TestGroupCallerGivesUpOnItsContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	g := newGroup(8, func(_ context.Context, reqs []int) ([]int, error) {
		<-release
		return reqs, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := g.do(ctx, 1)
	require.ErrorIs(t, err, context.Canceled)
	close(release)
	// The batch still runs to its end; a later call is served.
	res, err := g.do(context.Background(), 2)
	require.NoError(t, err)
	require.Equal(t, 2, res)
}
