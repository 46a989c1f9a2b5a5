package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	// The verifiers of the anchors in receipts, for anchor.VerifyReceipt.
	_ "github.com/bitmesh/bitmesh/anchor/bitcoin"
	_ "github.com/bitmesh/bitmesh/anchor/ots"
	"github.com/bitmesh/bitmesh/identity"
)

// runLog dispatches `bitmesh log …`.
func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprintln(stderr, "Usage: bitmesh log SUBCOMMAND [flags]\n\n"+
			"  show        list the running node's logs: size, newest checkpoint, its witnesses\n"+
			"  checkpoint  sign (if the log grew) and print a log's newest checkpoint\n"+
			"  receipt     write the receipt of a logged message (by envelope ID)\n"+
			"  proof       write the receipt of a log entry (by index)\n"+
			"  verify      check a message receipt offline: the device's signature, the log's\n"+
			"              signed checkpoint, witness cosignatures and the inclusion proof")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "verify":
		return runLogVerify(args[1:], stdout, stderr)
	case "show":
		return runLogShow(ctx, args[1:], stdout, stderr)
	case "checkpoint":
		return runLogCheckpoint(ctx, args[1:], stdout, stderr)
	case "receipt", "proof":
		return runLogReceipt(ctx, args[0], args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "bitmesh log: unknown subcommand %q (want show, checkpoint, receipt, proof or verify)\n", args[0])
	return errUsage
}

// verifiedReceipt is what `bitmesh log verify --json` prints.
type verifiedReceipt struct {
	Valid     bool   `json:"valid"`
	From      string `json:"from"`
	Topic     string `json:"topic"`
	Time      string `json:"ts"`
	LeafIndex uint64 `json:"leaf_index"`
	ID        string `json:"id"`
	// Anchors date the checkpoint: each names a block whose header the
	// reader should find in the Bitcoin chain (by hash, or height and
	// Merkle root), or says it is still pending.
	Anchors []anchorOutput `json:"anchors,omitempty"`
}

type anchorOutput struct {
	Kind       string `json:"kind"`
	Pending    bool   `json:"pending,omitempty"`
	Height     int64  `json:"height,omitempty"`
	BlockHash  string `json:"block_hash,omitempty"`
	MerkleRoot string `json:"merkle_root,omitempty"`
	BlockTime  string `json:"block_time,omitempty"`
	Bits       string `json:"bits,omitempty"` // the header's nBits, hex
}

func describeAnchors(r anchor.Receipt) []anchorOutput {
	var out []anchorOutput
	for _, a := range r.Anchors {
		at, err := anchor.VerifyAnchor(a) // VerifyReceipt passed: err is pending at most
		o := anchorOutput{Kind: a.Kind, Pending: err != nil}
		if err == nil {
			o.Height = at.BlockHeight
			o.MerkleRoot = fmt.Sprintf("%x", at.MerkleRoot)
			if at.BlockHash != ([32]byte{}) {
				o.BlockHash = fmt.Sprintf("%x", at.BlockHash)
			}
			if !at.BlockTime.IsZero() {
				o.BlockTime = at.BlockTime.UTC().Format(time.RFC3339)
			}
			if at.Bits != 0 {
				o.Bits = fmt.Sprintf("%08x", at.Bits)
			}
		}
		out = append(out, o)
	}
	return out
}

// errInvalidReceipt marks a receipt that was read but does not verify:
// `log verify` exits 3 for it, and 1 when it cannot read the receipt.
var errInvalidReceipt = errors.New("receipt INVALID")

// receiptError classifies an error of anchor.ParseReceipt or
// VerifyReceipt: each wraps one of the anchor package's sentinel errors
// when the receipt itself is at fault.
func receiptError(err error) error {
	for _, invalid := range []error{
		anchor.ErrReceiptMalformed, anchor.ErrEnvelopeInvalid, anchor.ErrInclusion,
		anchor.ErrCheckpointMalformed, anchor.ErrCheckpointSignature, anchor.ErrOriginMismatch,
		anchor.ErrCosignature, anchor.ErrNotEnoughCosignatures,
		anchor.ErrAnchorInvalid, anchor.ErrUnknownAnchorKind,
	} {
		if errors.Is(err, invalid) {
			return fmt.Errorf("%w: %w", errInvalidReceipt, err)
		}
	}
	return fmt.Errorf("verify receipt: %w", err)
}

func runLogVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("log verify", "log verify --log-key ID --origin ORIGIN [--witness ID]... [--min-cosigners N] [--json] RECEIPT", stderr)
	logKey := fs.String("log-key", "", "device ID of the node that keeps the log (signs its checkpoints)")
	origin := fs.String("origin", "", "the log's origin line, as its checkpoints name it")
	var witnesses stringList
	fs.Var(&witnesses, "witness", "device `ID` of a trusted witness (repeatable)")
	minCosigners := fs.Int("min-cosigners", 0, "how many of the trusted witnesses must have cosigned the checkpoint")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *minCosigners < 0 {
		return usagef(fs, "--min-cosigners %d: want 0 or more", *minCosigners)
	}
	if *logKey == "" || *origin == "" {
		return usagef(fs, "--log-key and --origin are required")
	}
	lk, err := identity.ParseDeviceID(*logKey)
	if err != nil {
		return usagef(fs, "--log-key: %v", err)
	}
	var ws []identity.DeviceID
	for _, w := range witnesses {
		d, err := identity.ParseDeviceID(w)
		if err != nil {
			return usagef(fs, "--witness: %v", err)
		}
		ws = append(ws, d)
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("read receipt: %w", err)
	}
	r, err := anchor.ParseReceipt(b)
	if err != nil {
		return receiptError(err)
	}
	env, err := anchor.VerifyReceipt(r, lk, *origin, ws, *minCosigners)
	if err != nil {
		return receiptError(err)
	}
	id, err := env.ID()
	if err != nil {
		return err
	}
	out := verifiedReceipt{Valid: true, From: env.Sender.String(), Topic: env.Topic, Time: env.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), LeafIndex: r.LeafIndex, ID: id.String(), Anchors: describeAnchors(r)}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	if _, err = fmt.Fprintf(stdout, "valid: message %s from %s on %q at %s is entry %d of the log\n", out.ID, out.From, out.Topic, out.Time, out.LeafIndex); err != nil {
		return err
	}
	for _, a := range out.Anchors {
		switch {
		case a.Pending:
			_, err = fmt.Fprintf(stdout, "anchor %s: pending confirmation\n", a.Kind)
		case a.BlockHash != "":
			_, err = fmt.Fprintf(stdout, "anchor %s: in Bitcoin block %s (height %d, %s, nBits %s): check it is in the chain\n", a.Kind, a.BlockHash, a.Height, a.BlockTime, a.Bits)
		default:
			_, err = fmt.Fprintf(stdout, "anchor %s: Bitcoin block at height %d must have Merkle root %s\n", a.Kind, a.Height, a.MerkleRoot)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
