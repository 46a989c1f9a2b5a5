package identity_test

import (
	"bytes"
	"fmt"

	"github.com/bitmesh/bitmesh/identity"
)

func Example() {
	key, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{0x01}, 32))
	if err != nil {
		fmt.Println(err)
		return
	}
	msg := []byte("hello, mesh")
	sig, err := key.Sign(identity.DomainEnvelope, msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(key.DeviceID())
	if err := key.DeviceID().Verify(identity.DomainEnvelope, msg, sig); err != nil {
		fmt.Println("invalid:", err)
		return
	}
	fmt.Println("valid")
	// A signature never verifies in another domain.
	fmt.Println(key.DeviceID().Verify(identity.DomainCheckpoint, msg, sig))
	// Output:
	// bmdev1rwzv24nmzfjypx2a8m264ws9vht3uxp5vpypnluuzl67n4waq78s4rttwe
	// valid
	// identity: invalid signature
}
