package sim

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// cancelOnProgress is a progress writer that cancels a context once the
// run has reported virtual second `after`: a stop at a known point of
// virtual time, not of the wall clock.
type cancelOnProgress struct {
	mu     sync.Mutex
	writes int
	after  int
	cancel context.CancelCauseFunc
	cause  error
}

func (c *cancelOnProgress) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.Contains(string(p), "virtual") {
		if c.writes++; c.writes == c.after {
			c.cancel(c.cause)
		}
	}
	return len(p), nil
}

// TestRunStopsWithContext starts a scenario of an hour of virtual time,
// with a partition and churn, and cancels its context a few virtual
// seconds in: Run must return the report so far, marked partial, with
// the cancellation's cause, instead of running the hour.
func TestRunStopsWithContext(t *testing.T) {
	sc, err := ParseScenario([]byte(`
name: ci-stop
seed: 3
nodes: 12
topology: {kind: random, degree: 3}
link: {latency_ms: 20, jitter_pct: 10}
traffic: {topic: sim, publishers: 2, messages: 3600, interval: 1s, size: 128}
warmup: 2s
drain: 2s
partitions: [{at: 10m, heal: 20m, fraction: 0.5}]
churn: {interval: 5m, fraction: 0.2, downtime: 30s}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	errStop := errors.New("test stop")
	progress := &cancelOnProgress{after: 5, cancel: cancel, cause: errStop}
	rep, err := Run(t, sc, progress, WithContext(ctx))
	if !errors.Is(err, errStop) {
		t.Fatalf("Run returned %v, want an error wrapping the cause", err)
	}
	if !rep.Partial || rep.Stopped != StoppedInterrupted {
		t.Fatalf("report partial %v, stopped %q", rep.Partial, rep.Stopped)
	}
	if rep.VirtualSeconds < 5 || rep.VirtualSeconds > 60 {
		t.Fatalf("stopped after %.1f virtual seconds, want soon after 5", rep.VirtualSeconds)
	}
	if rep.Messages == 0 || rep.Messages > 20 || rep.Nodes != 12 {
		t.Fatalf("partial report: %d messages, %d nodes", rep.Messages, rep.Nodes)
	}
	if s := Summary(rep); !strings.Contains(s, "Partial report") {
		t.Fatalf("summary does not say it is partial:\n%s", s)
	}
}

// TestRunStoppedBeforeStart: a context already done stops the run while
// it is set up.
func TestRunStoppedBeforeStart(t *testing.T) {
	sc, err := ParseScenario([]byte(smallScenario))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(t, sc, nil, WithContext(ctx))
	if !errors.Is(err, context.Canceled) || !rep.Partial || rep.Messages != 0 {
		t.Fatalf("Run = %+v, %v; want a partial report and context.Canceled", rep, err)
	}
}
