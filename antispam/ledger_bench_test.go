package antispam

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/libp2p/go-libp2p/core/peer"
)

// benchLedger returns a ledger with the default policy and no OnBan.
func benchLedger(b *testing.B) *Ledger {
	b.Helper()
	l, err := NewLedger(t0, DefaultLedgerConfig(), NewMemoryStore())
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkLedgerRecord scores one more excess message against a peer
// already tracked: the per-message cost of a flood. The clock advances a
// second per op, so the score settles at ~87 and never bans (a ban would
// turn the op into a no-op).
func BenchmarkLedgerRecord(b *testing.B) {
	l := benchLedger(b)
	s := PeerSubject(peer.ID("flooding-peer"))
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		if _, banned, _ := l.Record(now, s, RateExceeded); banned {
			b.Fatal("banned")
		}
		now = now.Add(time.Second)
	}
}

// BenchmarkLedgerRecordNewSubject scores a subject not yet tracked while
// the ledger is full (MaxTracked 65536), so every op also evicts one: the
// cost of an attacker cycling through fresh identities.
func BenchmarkLedgerRecordNewSubject(b *testing.B) {
	l := benchLedger(b)
	subjects := make([]Subject, 2*l.Config().MaxTracked)
	for i := range subjects {
		subjects[i] = Subject{Kind: SubjectDevice, ID: fmt.Sprintf("bmdev1-bench-%058d", i)} // 63 bytes, as a device ID
	}
	now := t0
	for _, s := range subjects[:l.Config().MaxTracked] {
		l.Record(now, s, Stale)
	}
	i := l.Config().MaxTracked
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		l.Record(now, subjects[i%len(subjects)], Stale)
		i++
	}
}

// BenchmarkLedgerDeviceSubject is what a caller pays to name a device:
// DeviceSubject bech32-encodes the key.
func BenchmarkLedgerDeviceSubject(b *testing.B) {
	d := device(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = DeviceSubject(d)
	}
}

// BenchmarkBanScoreIncrease is the score arithmetic alone: decay by
// math.Exp2 and add.
func BenchmarkBanScoreIncrease(b *testing.B) {
	var s BanScore
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		s.Increase(now, 0, 1)
		now = now.Add(time.Second)
	}
}

// BenchmarkRateLimiterAllow takes a token for a known key (one of 64
// peers) and for a new sender at the MaxKeys bound (evicting one).
func BenchmarkRateLimiterAllow(b *testing.B) {
	b.Run("peer", func(b *testing.B) {
		r := newTestRateLimiter(b, nil)
		peers := make([]peer.ID, 64)
		for i := range peers {
			peers[i] = peer.ID(device(i).Hex())
		}
		now := t0
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			r.AllowPeer(now, peers[i%len(peers)])
			now = now.Add(time.Microsecond)
			i++
		}
	})
	b.Run("new-sender", func(b *testing.B) {
		r := newTestRateLimiter(b, nil)
		maxKeys := DefaultRateConfig().MaxKeys
		for i := range maxKeys {
			r.AllowSender(t0, device(i))
		}
		now := t0
		i := maxKeys
		b.ReportAllocs()
		for b.Loop() {
			d := device(i)
			d[2] = byte(i >> 16)
			r.AllowSender(now, d)
			now = now.Add(time.Microsecond)
			i++
		}
	})
}

// BenchmarkSchnorrVerifyReference is one btcec BIP-340 verification
// (signature parsed each time, public key parsed once), the same operation
// as gossip's BenchmarkSchnorrVerifyRaw, so this package's costs can be
// stated as a fraction of a signature check measured in the same run.
func BenchmarkSchnorrVerifyReference(b *testing.B) {
	seed := sha256.Sum256([]byte("antispam bench key"))
	priv, _ := btcec.PrivKeyFromBytes(seed[:])
	msg := sha256.Sum256([]byte("antispam bench message"))
	sig, err := schnorr.Sign(priv, msg[:])
	if err != nil {
		b.Fatal(err)
	}
	raw := sig.Serialize()
	pk, err := schnorr.ParsePubKey(schnorr.SerializePubKey(priv.PubKey()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := schnorr.ParseSignature(raw)
		if err != nil {
			b.Fatal(err)
		}
		if !s.Verify(msg[:], pk) {
			b.Fatal("signature does not verify")
		}
	}
}
