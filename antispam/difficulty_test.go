package antispam

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestDifficultyConfigValidate(t *testing.T) {
	adaptive := func(mutate func(*AdaptiveConfig)) *AdaptiveConfig {
		a := &AdaptiveConfig{Window: time.Minute, Budget: 100, MaxRaise: 4}
		if mutate != nil {
			mutate(a)
		}
		return a
	}
	tests := []struct {
		name string
		cfg  DifficultyConfig
		want []error // every one must match with errors.Is; nil means valid
	}{
		{"zero value: no work anywhere", DifficultyConfig{}, nil},
		{"topics and adaptive", DifficultyConfig{Default: 8, Topics: map[string]uint8{"sensors/#": 12, "alerts": 20}, Adaptive: adaptive(nil)}, nil},
		{"MaxTarget everywhere", DifficultyConfig{Default: MaxTarget, Topics: map[string]uint8{"a": MaxTarget}, Adaptive: adaptive(func(a *AdaptiveConfig) { a.MaxRaise = MaxTarget })}, nil},
		{"a '#' inside an exact topic", DifficultyConfig{Topics: map[string]uint8{"chat#1": 4}}, nil},
		{"Default above MaxTarget", DifficultyConfig{Default: MaxTarget + 1}, []error{ErrInvalidConfig, ErrTargetTooHigh}},
		{"topic target above MaxTarget", DifficultyConfig{Topics: map[string]uint8{"a/#": 200}}, []error{ErrInvalidConfig, ErrTargetTooHigh}},
		{"empty topic key", DifficultyConfig{Topics: map[string]uint8{"": 4}}, []error{ErrInvalidConfig}},
		{"bare wildcard", DifficultyConfig{Topics: map[string]uint8{"/#": 4}}, []error{ErrInvalidConfig}},
		{"topic with a space", DifficultyConfig{Topics: map[string]uint8{"a b": 4}}, []error{ErrInvalidConfig}},
		{"topic too long", DifficultyConfig{Topics: map[string]uint8{string(make([]byte, 129)): 4}}, []error{ErrInvalidConfig}},
		{"zero window", DifficultyConfig{Adaptive: adaptive(func(a *AdaptiveConfig) { a.Window = 0 })}, []error{ErrInvalidConfig}},
		{"negative window", DifficultyConfig{Adaptive: adaptive(func(a *AdaptiveConfig) { a.Window = -time.Second })}, []error{ErrInvalidConfig}},
		{"zero budget", DifficultyConfig{Adaptive: adaptive(func(a *AdaptiveConfig) { a.Budget = 0 })}, []error{ErrInvalidConfig}},
		{"zero MaxRaise", DifficultyConfig{Adaptive: adaptive(func(a *AdaptiveConfig) { a.MaxRaise = 0 })}, []error{ErrInvalidConfig}},
		{"MaxRaise above MaxTarget", DifficultyConfig{Adaptive: adaptive(func(a *AdaptiveConfig) { a.MaxRaise = MaxTarget + 1 })}, []error{ErrInvalidConfig, ErrTargetTooHigh}},
		{"negative MaxTopics", DifficultyConfig{Adaptive: adaptive(func(a *AdaptiveConfig) { a.MaxTopics = -1 })}, []error{ErrInvalidConfig}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := NewDifficulty(tt.cfg); err != nil {
					t.Fatalf("NewDifficulty: %v", err)
				}
				return
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Validate = %v, want %v", err, w)
				}
			}
			if _, err := NewDifficulty(tt.cfg); err == nil {
				t.Errorf("NewDifficulty accepted an invalid config")
			}
		})
	}
}

func TestDifficultyTopicMatching(t *testing.T) {
	d, err := NewDifficulty(DifficultyConfig{
		Default: 4,
		Topics: map[string]uint8{
			"sensors/#":      8,
			"sensors/temp":   12,
			"sensors/temp/#": 10,
			"sensors/hum/#":  14,
			"alerts":         20,
			"a/#":            3,
			"a/b/c/#":        6,
			"free/#":         0,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		topic string
		want  uint8
	}{
		{"sensors", 8},               // "x/#" covers x itself
		{"sensors/other", 8},         // and everything below
		{"sensors/temp", 12},         // exact beats "sensors/temp/#"
		{"sensors/temp/kitchen", 10}, // longest prefix
		{"sensors/hum", 14},          // "sensors/hum/#" beats "sensors/#"
		{"sensors/hum/a/b", 14},      //
		{"sensorsX", 4},              // a prefix must end at a '/'
		{"sensors/#", 8},             // a literal '#' topic is just a topic
		{"alerts", 20},               // exact
		{"alerts/fire", 4},           // an exact key covers no children
		{"a/b", 3},                   //
		{"a/b/c", 6},                 //
		{"a/b/c/d/e", 6},             //
		{"a/bc", 3},                  //
		{"free/beer", 0},             // 0 turns work off under a prefix
		{"other", 4},                 // default
		{"/leading/slash", 4},        //
	}
	for _, tt := range tests {
		base, local := d.RequiredWork(powNow, tt.topic)
		if base != tt.want || local != base {
			t.Errorf("RequiredWork(%q) = %d, %d; want %d, %d", tt.topic, base, local, tt.want, tt.want)
		}
	}
}

func TestRaiseFor(t *testing.T) {
	tests := []struct {
		observed, budget int
		maxRaise         uint8
		want             uint8
	}{
		{0, 10, 8, 0},
		{10, 10, 8, 0},     // at the budget: no raise
		{11, 10, 8, 1},     // ⌈log2 1.1⌉
		{20, 10, 8, 1},     // ⌈log2 2⌉
		{21, 10, 8, 2},     // ⌈log2 2.1⌉
		{80, 10, 8, 3},     // ⌈log2 8⌉
		{81, 10, 8, 4},     //
		{1 << 30, 1, 8, 8}, // capped
		{1<<31 - 1, 1, 64, 31},
		{5, 1 << 30, 64, 0},
	}
	for _, tt := range tests {
		if got := raiseFor(tt.observed, tt.budget, tt.maxRaise); got != tt.want {
			t.Errorf("raiseFor(%d, %d, %d) = %d, want %d", tt.observed, tt.budget, tt.maxRaise, got, tt.want)
		}
	}
}

// adaptiveStep is one line of an adaptive scenario: at offset, observe n
// envelopes on the topic, then expect the local target.
type adaptiveStep struct {
	at        time.Duration
	observe   int
	wantLocal uint8
}

func runAdaptive(t *testing.T, cfg DifficultyConfig, topic string, steps []adaptiveStep) {
	t.Helper()
	d, err := NewDifficulty(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		now := powNow.Add(s.at)
		for range s.observe {
			d.Observe(now, topic)
		}
		base, local := d.RequiredWork(now, topic)
		if local != s.wantLocal || local < base {
			t.Fatalf("step %d (+%v, %d observed): local %d (base %d), want %d", i, s.at, s.observe, local, base, s.wantLocal)
		}
	}
}

func TestDifficultyAdaptive(t *testing.T) {
	const base = 6
	cfg := func(maxRaise uint8) DifficultyConfig {
		return DifficultyConfig{
			Topics:   map[string]uint8{"sensors/#": base},
			Adaptive: &AdaptiveConfig{Window: time.Minute, Budget: 10, MaxRaise: maxRaise},
		}
	}
	tests := []struct {
		name  string
		cfg   DifficultyConfig
		steps []adaptiveStep
	}{
		{"within budget never raises", cfg(3), []adaptiveStep{
			{0, 10, base},
			{time.Minute, 10, base},
			{2 * time.Minute, 0, base},
		}},
		{"raise waits for the retarget point", cfg(3), []adaptiveStep{
			{0, 35, base},
			{59 * time.Second, 0, base}, // 35 in the window, but no retarget yet
			{time.Minute, 0, base + 2},  // ⌈log2 3.5⌉
		}},
		{"raise is capped, then decays one bit per window", cfg(3), []adaptiveStep{
			{0, 200, base},
			{time.Minute, 5, base + 3},     // ⌈log2 20⌉ = 5, capped at 3
			{2 * time.Minute, 0, base + 2}, // 5 observed: down one bit
			{3 * time.Minute, 0, base + 1}, // an empty window: down one more
			{4 * time.Minute, 0, base},     //
			{10 * time.Minute, 0, base},    // stays down
		}},
		{"idle windows decay at once when next asked", cfg(4), []adaptiveStep{
			{0, 160, base},
			{time.Minute, 0, base + 4},
			{4 * time.Minute, 0, base + 1}, // three windows: 4 → 3 → 2 → 1
			{100 * time.Hour, 0, base},
		}},
		{"a rise needs no decay steps", cfg(4), []adaptiveStep{
			{0, 25, base},
			{time.Minute, 90, base + 2},
			{2 * time.Minute, 0, base + 4}, // ⌈log2 9⌉ = 4
		}},
		{"a clock stepping back keeps counting in the window", cfg(3), []adaptiveStep{
			{30 * time.Second, 15, base},
			{-time.Hour, 15, base},
			{90 * time.Second, 0, base + 2}, // 30 in the window opened at +30 s
		}},
		{"local never exceeds MaxTarget", DifficultyConfig{
			Default:  MaxTarget - 2,
			Adaptive: &AdaptiveConfig{Window: time.Minute, Budget: 1, MaxRaise: 8},
		}, []adaptiveStep{
			{0, 1000, MaxTarget - 2},
			{time.Minute, 0, MaxTarget},
		}},
		{"a topic with no base work is raised too", DifficultyConfig{
			Adaptive: &AdaptiveConfig{Window: time.Minute, Budget: 10, MaxRaise: 8},
		}, []adaptiveStep{
			{0, 40, 0},
			{time.Minute, 0, 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runAdaptive(t, tt.cfg, "sensors/temp", tt.steps) })
	}
}

func TestDifficultyRaisePerTopic(t *testing.T) {
	d, err := NewDifficulty(DifficultyConfig{
		Default:  2,
		Adaptive: &AdaptiveConfig{Window: time.Minute, Budget: 10, MaxRaise: 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		d.Observe(powNow, "busy")
	}
	d.Observe(powNow, "quiet")
	later := powNow.Add(time.Minute)
	if _, local := d.RequiredWork(later, "busy"); local != 4 {
		t.Errorf("busy: local %d, want 4", local)
	}
	if _, local := d.RequiredWork(later, "quiet"); local != 2 {
		t.Errorf("quiet: local %d, want 2", local)
	}
	if _, local := d.RequiredWork(later, "never-seen"); local != 2 {
		t.Errorf("never-seen: local %d, want 2", local)
	}
	if n := d.trackedTopics(); n != 2 {
		t.Errorf("RequiredWork started tracking: %d topics", n)
	}
}

func TestDifficultyTrackedTopicsBounded(t *testing.T) {
	tests := []struct {
		name      string
		maxTopics int
		wantCap   int
	}{
		{"explicit bound", 3, 3},
		{"zero means DefaultMaxTopics", 0, DefaultMaxTopics},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDifficulty(DifficultyConfig{
				Adaptive: &AdaptiveConfig{Window: time.Minute, Budget: 1, MaxRaise: 8, MaxTopics: tt.maxTopics},
			})
			if err != nil {
				t.Fatal(err)
			}
			// "hot" floods first, then is refreshed after every new topic:
			// the least recently observed topic goes, never "hot".
			for range 300 {
				d.Observe(powNow, "hot")
			}
			for i := range tt.wantCap + 50 {
				d.Observe(powNow, fmt.Sprintf("t%d", i))
				d.Observe(powNow, "hot")
			}
			if n := d.trackedTopics(); n != tt.wantCap {
				t.Fatalf("tracking %d topics, want %d", n, tt.wantCap)
			}
			later := powNow.Add(time.Minute)
			// Over 256 observations on "hot" with budget 1: capped at 8.
			if _, local := d.RequiredWork(later, "hot"); local != 8 {
				t.Errorf("hot: local %d, want 8", local)
			}
			// t0 was evicted long ago and starts afresh.
			d.Observe(later, "t0")
			if _, local := d.RequiredWork(later, "t0"); local != 0 {
				t.Errorf("evicted topic kept a raise: local %d", local)
			}
			if n := d.trackedTopics(); n != tt.wantCap {
				t.Errorf("after re-adding: tracking %d topics, want %d", n, tt.wantCap)
			}
		})
	}
}

func TestDifficultyWithoutAdaptiveTracksNothing(t *testing.T) {
	d, err := NewDifficulty(DifficultyConfig{Default: 5})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		d.Observe(powNow, "busy")
	}
	if base, local := d.RequiredWork(powNow.Add(time.Hour), "busy"); base != 5 || local != 5 {
		t.Errorf("RequiredWork = %d, %d; want 5, 5", base, local)
	}
	if n := d.trackedTopics(); n != 0 {
		t.Errorf("tracking %d topics", n)
	}
}

// Run under -race: Observe and RequiredWork from many goroutines.
func TestDifficultyConcurrent(t *testing.T) {
	d, err := NewDifficulty(DifficultyConfig{
		Default:  1,
		Topics:   map[string]uint8{"sensors/#": 3},
		Adaptive: &AdaptiveConfig{Window: time.Second, Budget: 5, MaxRaise: 4, MaxTopics: 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				now := powNow.Add(time.Duration(i) * 10 * time.Millisecond)
				topic := fmt.Sprintf("sensors/%d", (g+i)%12)
				d.Observe(now, topic)
				if base, local := d.RequiredWork(now, topic); base != 3 || local < base || local > base+4 {
					t.Errorf("RequiredWork(%q) = %d, %d", topic, base, local)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := d.trackedTopics(); n > 8 {
		t.Errorf("tracking %d topics, bound 8", n)
	}
}
