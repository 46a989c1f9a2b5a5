// Package identity owns a device's secp256k1 identity: key generation and
// keystore files, device IDs, BIP-340 Schnorr signatures with tagged hashes
// for domain separation, and the mapping between device IDs and libp2p peer
// IDs.
//
// One key is everything a device is: its BIP-340 x-only public key is its
// device ID (bech32, prefix "bmdev"), and the same key is its libp2p host key,
// so peer ID and device ID always name the same key. Keys are normalised to an
// even Y coordinate, as BIP-340 does, so the 33-byte compressed key libp2p
// uses and the 32-byte x-only key agree.
//
//	key, created, err := identity.LoadOrCreate(identity.KeyPath(dataDir), nil)
//	if err != nil {
//		return err
//	}
//	_ = created // true on first run
//	sig, _ := key.Sign(identity.DomainEnvelope, []byte("hello"))
//	err = key.DeviceID().Verify(identity.DomainEnvelope, []byte("hello"), sig)
//	fmt.Println(key.DeviceID()) // bmdev1...
//
// Every signature made through this package signs a tagged hash
// (BIP-340's SHA256(SHA256(tag)||SHA256(tag)||msg)), and each kind of signed
// object has its own Domain, so a signature made for an envelope never
// verifies as a checkpoint or a certificate.
//
// Keystore rules, as ssh's: the key file is written with mode 0600 and is
// refused when group or others can read it; a corrupt or truncated file is an
// error and is never replaced by a new key.
package identity
