package antispam

import (
	"math"
	"time"
)

// DefaultHalfLife is how long the transient part of a ban score takes to
// halve, as in btcd's DynamicBanScore: long enough that a flood of a few
// seconds adds up, short enough that an honest peer's occasional slip is
// forgotten within minutes.
const DefaultHalfLife = 60 * time.Second

// forgetHalfLives is the age, in half-lives, after which a transient score
// counts as zero: 2^-40 of the largest score a BanScore holds (2^32) is far
// below 1, so nothing observable is lost, and the exponential is skipped.
const forgetHalfLives = 40

// BanScore is a misbehaviour score in btcd's model: a persistent part that
// only grows, plus a transient part that decays exponentially, halving every
// HalfLife. The total is persistent + decayed transient, rounded down.
// Persistent points record provable misbehaviour (one is as bad as ever an
// hour later); transient points record rates (a burst decays, a sustained
// flood accumulates).
//
// Time is always an argument, so the score is a pure function of the calls
// made on it. A time earlier than the last increase (a clock step back) is
// treated as no time passing: the score never grows by going back in time.
//
// The zero value is ready for use with DefaultHalfLife. A BanScore is NOT
// safe for concurrent use; the Ledger guards its scores with its own lock.
type BanScore struct {
	// HalfLife of the transient part; 0 means DefaultHalfLife. Set before
	// the first Increase.
	HalfLife time.Duration

	persistent uint32
	transient  float64 // the transient part as of last
	last       int64   // Unix nanoseconds of the last transient increase
}

// Increase adds persistent and transient points at now and returns the new
// total. Totals saturate at math.MaxUint32 rather than wrap, so a flood can
// never roll a score back to zero.
func (s *BanScore) Increase(now time.Time, persistent, transient uint32) uint32 {
	s.persistent = addSaturating(s.persistent, persistent)
	if transient > 0 {
		t := s.decayed(now) + float64(transient)
		s.transient = math.Min(t, math.MaxUint32)
		if n := now.UnixNano(); n > s.last {
			s.last = n
		}
	}
	return s.Int(now)
}

// Int returns the total score at now.
func (s *BanScore) Int(now time.Time) uint32 {
	return addSaturating(s.persistent, uint32(s.decayed(now)))
}

// Reset forgets both parts; HalfLife is kept.
func (s *BanScore) Reset() {
	*s = BanScore{HalfLife: s.HalfLife}
}

// decayed returns the transient part at now, at most math.MaxUint32.
func (s *BanScore) decayed(now time.Time) float64 {
	if s.transient == 0 {
		return 0
	}
	dt := now.UnixNano() - s.last
	if dt <= 0 {
		return s.transient
	}
	hl := s.HalfLife
	if hl <= 0 {
		hl = DefaultHalfLife
	}
	halves := float64(dt) / float64(hl)
	if halves >= forgetHalfLives {
		return 0
	}
	return s.transient * math.Exp2(-halves)
}

func addSaturating(a, b uint32) uint32 {
	if c := a + b; c >= a {
		return c
	}
	return math.MaxUint32
}

// Penalty is what one occurrence of a misbehaviour adds to a score.
type Penalty struct {
	Persistent uint32 // never decays: provable faults
	Transient  uint32 // halves every HalfLife: rates and clock-dependent faults
}

// ScoreTable gives each misbehaviour its penalty. A misbehaviour missing
// from the table scores nothing, which is how to switch one off.
type ScoreTable map[Misbehaviour]Penalty

// DefaultScoreTable returns the penalties of docs/PROTOCOL.md §15, scaled to
// the default threshold of 100. Faults an honest forwarder cannot commit
// (they are properties of the bytes alone, which it validated before
// forwarding) are persistent; faults that depend on clocks, local policy or
// rates are transient, so only a sustained stream of them bans.
func DefaultScoreTable() ScoreTable {
	return ScoreTable{
		Malformed:          {Persistent: 100},
		Oversize:           {Persistent: 50},
		WrongNetwork:       {Persistent: 100},
		WrongTopic:         {Persistent: 50},
		BadSignature:       {Persistent: 100},
		InsufficientWork:   {Transient: 20},
		Stale:              {Transient: 10},
		Future:             {Transient: 10},
		RateExceeded:       {Transient: 1},
		SenderRateExceeded: {Transient: 1},
		Equivocation:       {Persistent: 100},
		CertificateInvalid: {Persistent: 50},
		BadChunk:           {Persistent: 100},
		Stalling:           {Transient: 25},
		InventoryFlood:     {Transient: 10},
	}
}
