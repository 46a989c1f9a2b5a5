package lightning

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"gopkg.in/macaroon.v2"

	"github.com/bitmesh/bitmesh/identity"
)

func echo(_ context.Context, _ identity.DeviceID, _ uint64, req []byte) ([]byte, error) {
	return req, nil
}

func testSeller(t testing.TB, net *InProcessNetwork) (*seller, *identity.PrivateKey) {
	t.Helper()
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := openMeter("")
	if err != nil {
		t.Fatal(err)
	}
	svcs := []Service{
		{Name: "certify", PriceMsat: 1000, Unit: "message", Serve: echo},
		{Name: "anchor", PriceMsat: 50_000, Unit: "checkpoint", Serve: echo},
	}
	return newSeller(newMinter(key), svcs, net.Backend(0), mt, time.Hour), key
}

// paid is a token bought and paid for.
type paid struct {
	raw      []byte
	preimage [32]byte
}

func buy(t *testing.T, s *seller, buyerBackend Backend, now time.Time, buyer identity.DeviceID, service string, units uint64) paid {
	t.Helper()
	tok, inv, err := s.challenge(context.Background(), now, buyer, service, units)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := buyerBackend.Pay(context.Background(), inv.PaymentRequest, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return paid{raw: raw, preimage: pre}
}

// TestRefusals: each way of presenting a credential that does not pay for
// the request is refused with its own error, and none of them serves.
func TestRefusals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	net := NewInProcessNetwork(func() time.Time { return now })
	s, _ := testSeller(t, net)
	other, _ := testSeller(t, net) // another seller, its own root keys
	wallet := net.Backend(10_000_000)
	alice, _ := identity.Generate()
	bob, _ := identity.Generate()
	ctx := context.Background()

	forge := func(p paid) []byte {
		tok, err := DecodeToken(p.raw)
		if err != nil {
			t.Fatal(err)
		}
		// Rebuild the macaroon with 1000 units instead of 2, keeping the
		// signature chain of the original as far as it goes: the seller's
		// root key is unknown to the forger.
		m := tok.mac.Clone()
		var forged macaroon.Macaroon
		if err := forged.UnmarshalBinary(mustMarshal(t, m)); err != nil {
			t.Fatal(err)
		}
		caveats := forged.Caveats()
		fresh, err := macaroon.New([]byte("guessed root key"), forged.Id(), "bitmesh", macaroon.V2)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range caveats {
			id := string(c.Id)
			if id == caveatUnits+"=2" {
				id = caveatUnits + "=1000"
			}
			if err := fresh.AddFirstPartyCaveat([]byte(id)); err != nil {
				t.Fatal(err)
			}
		}
		return mustMarshal(t, fresh)
	}
	appended := func(p paid) []byte {
		tok, _ := DecodeToken(p.raw)
		m := tok.mac.Clone()
		// Adding a caveat is what any holder may do; adding a second
		// units caveat to widen the grant is refused as a duplicate.
		if err := m.AddFirstPartyCaveat([]byte(caveatUnits + "=1000")); err != nil {
			t.Fatal(err)
		}
		return mustMarshal(t, m)
	}

	good := buy(t, s, wallet, now, alice.DeviceID(), "certify", 2)
	exhaust := buy(t, s, wallet, now, alice.DeviceID(), "certify", 2)
	if _, _, _, err := s.redeem(ctx, now, alice.DeviceID(), "certify", 2, exhaust.raw, exhaust.preimage[:], nil); err != nil {
		t.Fatal(err)
	}
	otherSellers := buy(t, other, wallet, now, alice.DeviceID(), "certify", 2)
	bobs := buy(t, s, wallet, now, bob.DeviceID(), "certify", 2)
	var wrongPre [32]byte
	wrongPre[0] = 1

	for _, tc := range []struct {
		name     string
		at       time.Time
		buyer    identity.DeviceID
		service  string
		units    uint64
		raw      []byte
		preimage []byte
		want     error
	}{
		{"wrong preimage", now, alice.DeviceID(), "certify", 1, good.raw, wrongPre[:], ErrWrongPreimage},
		{"another buyer's preimage", now, alice.DeviceID(), "certify", 1, good.raw, bobs.preimage[:], ErrWrongPreimage},
		{"short preimage", now, alice.DeviceID(), "certify", 1, good.raw, good.preimage[:31], ErrWrongPreimage},
		{"expired token", now.Add(time.Hour), alice.DeviceID(), "certify", 1, good.raw, good.preimage[:], ErrExpired},
		{"exhausted units", now, alice.DeviceID(), "certify", 1, exhaust.raw, exhaust.preimage[:], ErrExhausted},
		{"more units than bought", now, alice.DeviceID(), "certify", 3, good.raw, good.preimage[:], ErrExhausted},
		{"token for another service", now, alice.DeviceID(), "anchor", 1, good.raw, good.preimage[:], ErrWrongService},
		{"token of another buyer", now, bob.DeviceID(), "certify", 1, good.raw, good.preimage[:], ErrWrongBuyer},
		{"replayed on another seller", now, alice.DeviceID(), "certify", 1, otherSellers.raw, otherSellers.preimage[:], ErrBadSignature},
		{"forged caveat", now, alice.DeviceID(), "certify", 1000, forge(good), good.preimage[:], ErrBadSignature},
		{"widening caveat appended", now, alice.DeviceID(), "certify", 1000, appended(good), good.preimage[:], ErrUnknownCaveat},
		{"garbage token", now, alice.DeviceID(), "certify", 1, []byte("not a macaroon"), good.preimage[:], ErrMalformedToken},
		{"unknown service", now, alice.DeviceID(), "vend", 1, good.raw, good.preimage[:], ErrUnknownService},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, sale, err := s.redeem(ctx, tc.at, tc.buyer, tc.service, tc.units, tc.raw, tc.preimage, []byte("req"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("redeem: %v, want %v", err, tc.want)
			}
			if resp != nil || sale != nil {
				t.Fatalf("refused, yet served %q with sale %+v", resp, sale)
			}
		})
	}
	// The good token still works after all that: two units, one sale.
	resp, left, sale, err := s.redeem(ctx, now, alice.DeviceID(), "certify", 1, good.raw, good.preimage[:], []byte("hello"))
	if err != nil || string(resp) != "hello" || left != 1 || sale == nil || sale.AmountMsat != 2000 {
		t.Fatalf("good token: %q, %d left, sale %+v, %v", resp, left, sale, err)
	}
	if h := sha256.Sum256(good.preimage[:]); sale.PaymentHash != hexOf(h) {
		t.Errorf("sale's payment hash %s, want sha256(preimage)", sale.PaymentHash)
	}
	if _, left, sale, err := s.redeem(ctx, now, alice.DeviceID(), "certify", 1, good.raw, good.preimage[:], nil); err != nil || left != 0 || sale != nil {
		t.Fatalf("second unit: %d left, sale %+v, %v; want 0 left and no second sale", left, sale, err)
	}
}

func mustMarshal(t *testing.T, m *macaroon.Macaroon) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
