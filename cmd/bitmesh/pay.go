package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/lightning"
	"github.com/bitmesh/bitmesh/node/control"
)

// runPay dispatches `bitmesh pay …`.
func runPay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprintln(stderr, "Usage: bitmesh pay SUBCOMMAND [flags]\n\n"+
			"  services  list what a peer sells: service, price per unit, unit\n"+
			"  buy       buy a bundle of a peer's service through Lightning and use it\n"+
			"  status    this node's sales, the credentials it holds, refusals by reason\n\n"+
			"The node must run with a Lightning backend (bitmesh node --lnd-rest …).")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "services":
		return runPayServices(ctx, args[1:], stdout, stderr)
	case "buy":
		return runPayBuy(ctx, args[1:], stdout, stderr)
	case "status":
		return runPayStatus(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "bitmesh pay: unknown subcommand %q (want services, buy or status)\n", args[0])
	return errUsage
}

// payCall sends one request to the node's /v1/pay endpoints and decodes
// the answer into out.
func payCall(ctx context.Context, c *control.Client, method, path string, body, out any) error {
	resp, err := c.Do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out)
}

func runPayServices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("pay services", "pay services [--data DIR] [--json] PEER", stderr)
	asJSON := cmd.fs.Bool("json", false, "print JSON")
	c, pos, err := cmd.open(args, 1, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	var svcs []lightning.ServiceInfo
	if err := payCall(ctx, c, http.MethodGet, lightning.RoutePrefix+"/services?"+url.Values{"peer": {pos[0]}}.Encode(), nil, &svcs); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(svcs)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPRICE (msat)\tPER\tMAX UNITS\tDESCRIPTION")
	for _, s := range svcs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", s.Name, s.PriceMsat, s.Unit, s.MaxUnits, s.Description)
	}
	return tw.Flush()
}

func runPayBuy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("pay buy", "pay buy [--data DIR] [--units N] [--use N] [--request TEXT] [--json] PEER SERVICE", stderr)
	units := cmd.fs.Uint64("units", 1, "units in the bundle to buy (one invoice)")
	use := cmd.fs.Uint64("use", 1, "units of the bundle to use now")
	request := cmd.fs.String("request", "", "the request to send the service")
	asJSON := cmd.fs.Bool("json", false, "print JSON")
	c, pos, err := cmd.open(args, 2, 2)
	if err != nil {
		return err
	}
	defer c.Close()
	var out lightning.BuyResponse
	req := lightning.BuyRequest{Peer: pos[0], Service: pos[1], Units: *units, Use: *use, Request: []byte(*request)}
	if err := payCall(ctx, c, http.MethodPost, lightning.RoutePrefix+"/buy", req, &out); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stderr, "paid %d msat; %d unit(s) left\n", out.AmountMsat, out.Remaining)
	_, err = stdout.Write(out.Response)
	return err
}

func runPayStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("pay status", "pay status [--data DIR] [--json]", stderr)
	asJSON := cmd.fs.Bool("json", false, "print JSON")
	c, _, err := cmd.open(args, 0, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	var st lightning.Status
	if err := payCall(ctx, c, http.MethodGet, lightning.RoutePrefix+"/status", nil, &st); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "spent\t%d msat\n", st.SpentMsat)
	for _, s := range st.Sales {
		fmt.Fprintf(tw, "sold\t%s × %d\t%d msat\tto %s\t%s\n", s.Service, s.Units, s.AmountMsat, s.Buyer, s.PaymentHash)
	}
	for _, c := range st.Credentials {
		fmt.Fprintf(tw, "holding\t%s\t%d of %d left\tfrom %s\n", c.Service, c.Remaining, c.Units, c.Seller)
	}
	for reason, n := range st.Refusals {
		fmt.Fprintf(tw, "refused\t%s\t%d\n", reason, n)
	}
	return tw.Flush()
}

// newPayments makes the payment extension of `bitmesh node --lnd-rest`:
// a buyer always, the seller of the "anchor" service with
// --sell-anchor-msat and of "certify" (into logs) with
// --sell-certify-msat.
func newPayments(o nodeOptions, anchorers []anchor.Anchorer, logs *meshlog.MeshLog) (*lightning.Lightning, error) {
	backend, err := lightning.NewLnd(o.lnd)
	if err != nil {
		return nil, err
	}
	cfg := o.pay
	cfg.Backend = backend
	if o.sellAnchor > 0 {
		cfg.Services = append(cfg.Services, anchorService(o.sellAnchor, anchorers))
	}
	if o.sellCertify > 0 {
		cfg.Certify = &lightning.CertifyConfig{PriceMsat: o.sellCertify, Receipt: func(ctx context.Context, topic string, id gossip.ID) ([]byte, error) {
			if _, err := logs.Checkpoint(ctx, topic); err != nil {
				return nil, err
			}
			r, err := logs.Receipt(topic, id)
			if err != nil {
				return nil, err
			}
			return anchor.MarshalReceipt(r)
		}}
	}
	return lightning.New(cfg)
}

// anchorService sells anchoring: the request is a checkpoint's body
// (origin, size, root: C2SP tlog-checkpoint), the answer the proofs of
// this node's anchorers as JSON, pending until the anchors confirm (the
// buyer upgrades them as `bitmesh log verify` reads them). One unit is one
// checkpoint.
func anchorService(priceMsat uint64, anchorers []anchor.Anchorer) lightning.Service {
	return lightning.Service{
		Name: "anchor", PriceMsat: priceMsat, Unit: "checkpoint", MaxUnits: 100,
		Description: "anchor a log checkpoint in Bitcoin or OpenTimestamps; request: the checkpoint body",
		Serve: func(ctx context.Context, _ identity.DeviceID, units uint64, request []byte) ([]byte, error) {
			if units != 1 {
				return nil, fmt.Errorf("anchor: one checkpoint per request, %d units asked", units)
			}
			c, err := anchor.ParseCheckpoint(request)
			if err != nil {
				return nil, err
			}
			var proofs []anchor.AnchorProof
			for _, a := range anchorers {
				p, err := a.Anchor(ctx, c)
				if err != nil {
					return nil, fmt.Errorf("anchor: %s: %w", a.Kind(), err)
				}
				proofs = append(proofs, p)
			}
			return json.Marshal(proofs)
		},
	}
}
