package meshlog

import (
	"encoding/binary"
	"fmt"

	"github.com/bitmesh/bitmesh/anchor"
)

// Topic is the mesh topic carrying every log's checkpoints, witness
// cosignatures and equivocation evidence (PROTOCOL.md §18).
const Topic = "bitmesh-log"

// Kind is the first byte of a payload on Topic.
type Kind uint8

const (
	// KindCheckpoint: a log's signed checkpoint, sent by the log's device.
	KindCheckpoint Kind = 1
	// KindCosigned: a log's checkpoint cosigned by the sending witness.
	KindCosigned Kind = 2
	// KindEquivocation: two signed checkpoints of one log that cannot both
	// be true, sent by whoever noticed.
	KindEquivocation Kind = 3
)

// Message is a decoded payload on Topic.
type Message struct {
	Kind Kind
	Note []byte              // KindCheckpoint, KindCosigned: the signed note
	Pair anchor.Equivocation // KindEquivocation
}

// MaxMessageSize bounds a payload on Topic: two signed notes and framing.
const MaxMessageSize = 1 + 2*(2+anchor.MaxSignedCheckpointSize)

// Encode returns m's payload encoding: the kind byte, then the note, or
// for evidence each note prefixed by its big-endian 16-bit length.
func (m Message) Encode() ([]byte, error) {
	switch m.Kind {
	case KindCheckpoint, KindCosigned:
		if len(m.Note) == 0 || len(m.Note) > anchor.MaxSignedCheckpointSize {
			return nil, fmt.Errorf("%w: note of %d bytes", ErrMalformed, len(m.Note))
		}
		return append([]byte{byte(m.Kind)}, m.Note...), nil
	case KindEquivocation:
		b := []byte{byte(m.Kind)}
		for _, n := range [][]byte{m.Pair.A, m.Pair.B} {
			if len(n) == 0 || len(n) > anchor.MaxSignedCheckpointSize {
				return nil, fmt.Errorf("%w: evidence note of %d bytes", ErrMalformed, len(n))
			}
			b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
			b = append(b, n...)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, m.Kind)
	}
}

// DecodeMessage parses a payload on Topic. It checks framing and bounds
// only; signatures are the caller's to verify.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) < 2 || len(b) > MaxMessageSize {
		return Message{}, fmt.Errorf("%w: payload of %d bytes", ErrMalformed, len(b))
	}
	m := Message{Kind: Kind(b[0])}
	rest := b[1:]
	switch m.Kind {
	case KindCheckpoint, KindCosigned:
		if len(rest) > anchor.MaxSignedCheckpointSize {
			return Message{}, fmt.Errorf("%w: note of %d bytes", ErrMalformed, len(rest))
		}
		m.Note = rest
	case KindEquivocation:
		var notes [2][]byte
		for i := range notes {
			if len(rest) < 2 {
				return Message{}, fmt.Errorf("%w: evidence truncated", ErrMalformed)
			}
			n := int(binary.BigEndian.Uint16(rest))
			rest = rest[2:]
			if n == 0 || n > anchor.MaxSignedCheckpointSize || n > len(rest) {
				return Message{}, fmt.Errorf("%w: evidence note of %d bytes", ErrMalformed, n)
			}
			notes[i], rest = rest[:n], rest[n:]
		}
		if len(rest) != 0 {
			return Message{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
		}
		m.Pair = anchor.Equivocation{A: notes[0], B: notes[1]}
	default:
		return Message{}, fmt.Errorf("%w: unknown kind %d", ErrMalformed, m.Kind)
	}
	return m, nil
}
