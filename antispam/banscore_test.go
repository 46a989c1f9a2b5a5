package antispam

import (
	"math"
	"testing"
	"time"
)

// t0 is an arbitrary fixed instant; tests never read the clock.
var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestBanScoreDecay(t *testing.T) {
	type step struct {
		at                    time.Duration // since t0
		persistent, transient uint32        // added at `at`; both 0 = just read
		want                  uint32
	}
	tests := []struct {
		name     string
		halfLife time.Duration
		steps    []step
	}{
		{"zero value reads zero", 0, []step{{0, 0, 0, 0}, {time.Hour, 0, 0, 0}}},
		{"transient halves each half-life", 0, []step{
			{0, 0, 100, 100},
			{30 * time.Second, 0, 0, 70}, // 100·2^-0.5 = 70.7
			{60 * time.Second, 0, 0, 50},
			{120 * time.Second, 0, 0, 25},
			{180 * time.Second, 0, 0, 12}, // 12.5 rounds down
			{40 * time.Minute, 0, 0, 0},
		}},
		{"persistent never decays", 0, []step{
			{0, 40, 0, 40},
			{time.Hour, 0, 0, 40},
			{1000 * time.Hour, 0, 0, 40},
		}},
		{"total is persistent plus decayed transient", 0, []step{
			{0, 30, 80, 110},
			{60 * time.Second, 0, 0, 70},
			{120 * time.Second, 0, 0, 50},
			{time.Hour, 0, 0, 30},
		}},
		{"increase decays the old transient first", 0, []step{
			{0, 0, 64, 64},
			{60 * time.Second, 0, 64, 96}, // 32 + 64
			{120 * time.Second, 0, 0, 48}, // 96/2
			{120 * time.Second, 0, 2, 50}, // same instant: no decay
			{180 * time.Second, 5, 0, 30}, // 25 + 5: persistent alone does not reset the decay clock
		}},
		{"clock stepping back neither decays nor grows", 0, []step{
			{time.Minute, 0, 100, 100},
			{0, 0, 0, 100},
			{0, 0, 10, 110},
			{2 * time.Minute, 0, 0, 55}, // decay counts from the latest increase time
		}},
		{"configured half-life", 10 * time.Second, []step{
			{0, 0, 100, 100},
			{10 * time.Second, 0, 0, 50},
			{20 * time.Second, 0, 0, 25},
		}},
		{"a burst of 99 decays without a ban", 0, []step{
			{0, 0, 99, 99},
			{60 * time.Second, 0, 0, 49},
		}},
		{"saturates instead of wrapping", 0, []step{
			{0, math.MaxUint32 - 1, 0, math.MaxUint32 - 1},
			{0, 5, 0, math.MaxUint32},
			{0, 0, math.MaxUint32, math.MaxUint32},
			{0, 0, math.MaxUint32, math.MaxUint32},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := BanScore{HalfLife: tt.halfLife}
			for i, st := range tt.steps {
				now := t0.Add(st.at)
				var got uint32
				if st.persistent == 0 && st.transient == 0 {
					got = s.Int(now)
				} else {
					got = s.Increase(now, st.persistent, st.transient)
				}
				if got != st.want {
					t.Fatalf("step %d at +%v: score %d, want %d", i, st.at, got, st.want)
				}
			}
		})
	}
}

// A flood of one transient point per second settles at 1/(1−2^(−1/60)) ≈ 87
// points: below 100, so a steady excess of one message a second is
// tolerated, while two a second ban within about a minute and a half.
func TestBanScoreSteadyState(t *testing.T) {
	tests := []struct {
		name    string
		perSec  uint32
		seconds int
		wantBan bool
	}{
		{"one per second for an hour", 1, 3600, false},
		{"two per second", 2, 120, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s BanScore
			var score uint32
			for i := range tt.seconds {
				score = s.Increase(t0.Add(time.Duration(i)*time.Second), 0, tt.perSec)
				if score >= 100 {
					break
				}
			}
			if got := score >= 100; got != tt.wantBan {
				t.Fatalf("final score %d, reached 100 = %v, want %v", score, got, tt.wantBan)
			}
		})
	}
}

func TestBanScoreReset(t *testing.T) {
	s := BanScore{HalfLife: time.Second}
	s.Increase(t0, 10, 10)
	s.Reset()
	if got := s.Int(t0); got != 0 {
		t.Fatalf("after Reset: %d, want 0", got)
	}
	if s.HalfLife != time.Second {
		t.Fatalf("Reset changed HalfLife to %v", s.HalfLife)
	}
}
