package gossip_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// A device seals a sensor reading; a peer on the same mesh validates it.
func Example() {
	key, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{0x42}, identity.PrivateKeySize))
	if err != nil {
		panic(err)
	}
	network := gossip.NetworkFromName("greenhouse")
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

	env := gossip.Envelope{
		Network: network,
		Time:    now,
		Seq:     1,
		Topic:   "sensors/temp",
		Payload: []byte(`{"celsius":21.5}`),
	}
	raw, _, err := env.Seal(key)
	if err != nil {
		panic(err)
	}

	v, err := gossip.NewValidator(gossip.DefaultValidatorConfig(network))
	if err != nil {
		panic(err)
	}
	r := v.Validate(now.Add(2*time.Second), "sensors/temp", raw)
	fmt.Println(r.Verdict)
	// Output: accept
}

// A replay is answered from the seen cache; an altered copy is rejected.
func ExampleValidator_Validate() {
	key, _ := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{0x42}, identity.PrivateKeySize))
	network := gossip.NetworkFromName("greenhouse")
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	env := gossip.Envelope{Network: network, Time: now, Topic: "alerts/door", Payload: []byte("open")}
	raw, _, _ := env.Seal(key)
	v, _ := gossip.NewValidator(gossip.DefaultValidatorConfig(network))

	fmt.Println(v.Validate(now, "alerts/door", raw).Verdict)
	fmt.Println(v.Validate(now, "alerts/door", raw).Cached)
	altered := bytes.Clone(raw)
	altered[len(altered)-identity.SignatureSize-8-1-1] ^= 1 // the last payload byte
	r := v.Validate(now, "alerts/door", altered)
	fmt.Println(r.Verdict, r.Err != nil)
	fmt.Println(v.Stats().SignatureChecks)
	// Output:
	// accept
	// true
	// reject true
	// 2
}
