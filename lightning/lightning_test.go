package lightning_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/lightning"
	"github.com/bitmesh/bitmesh/node"
)

const salesTopic = "pay/sales"

// vendingPair starts a seller node (a vending machine selling "soda" at
// 2,000 msat an item, its sales logged) and a customer node, paying
// through their backends.
func vendingPair(t testing.TB, sellerBackend, customerBackend lightning.Backend, tune ...func(*lightning.Config)) (seller, customer *node.Node, sl, cl *lightning.Lightning, logs *meshlog.MeshLog) {
	t.Helper()
	vended := 0
	scfg := lightning.DefaultConfig()
	scfg.Backend = sellerBackend
	scfg.SalesTopic = salesTopic
	scfg.Services = []lightning.Service{{Name: "soda", PriceMsat: 2000, Unit: "item", Description: "one can",
		Serve: func(_ context.Context, buyer identity.DeviceID, units uint64, _ []byte) ([]byte, error) {
			vended += int(units)
			return fmt.Appendf(nil, "%d can(s) for %s", units, buyer), nil
		}}}
	for _, f := range tune {
		f(&scfg)
	}
	var err error
	if sl, err = lightning.New(scfg); err != nil {
		t.Fatal(err)
	}
	lc := meshlog.DefaultConfig()
	lc.Topics = []string{salesTopic}
	lc.CheckpointInterval = 50 * time.Millisecond
	if logs, err = meshlog.New(lc); err != nil {
		t.Fatal(err)
	}
	seller = start(t, node.LocalConfig(), node.WithExtension(sl), node.WithExtension(logs))
	ccfg := lightning.DefaultConfig()
	ccfg.Backend = customerBackend
	if cl, err = lightning.New(ccfg); err != nil {
		t.Fatal(err)
	}
	cc := node.LocalConfig()
	for _, a := range seller.Addrs() {
		cc.BootstrapPeers = append(cc.BootstrapPeers, a.String())
	}
	customer = start(t, cc, node.WithExtension(cl))
	deadline := time.Now().Add(10 * time.Second)
	for len(customer.Peers()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("customer never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return seller, customer, sl, cl, logs
}

func start(t testing.TB, cfg node.Config, opts ...node.Option) *node.Node {
	t.Helper()
	n, err := node.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestVending: a customer node buys a bundle of three sodas from a
// vending node, pays through Lightning, is served three times and
// refused the fourth; the sale is in the seller's payments log with a
// receipt that verifies offline.
func TestVending(t *testing.T) {
	net := lightning.NewInProcessNetwork(nil)
	seller, customer, sl, cl, logs := vendingPair(t, net.Backend(0), net.Backend(100_000))
	vend(t, seller, customer, sl, cl, logs)
}

// vend buys three sodas and checks the sale end to end.
func vend(t *testing.T, seller, customer *node.Node, sl, cl *lightning.Lightning, logs *meshlog.MeshLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	svcs, err := cl.Services(ctx, seller.PeerID())
	if err != nil || len(svcs) != 1 || svcs[0].Name != "soda" || svcs[0].PriceMsat != 2000 {
		t.Fatalf("services: %+v, %v", svcs, err)
	}
	cred, err := cl.Buy(ctx, seller.PeerID(), "soda", 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		out, err := cl.Use(ctx, cred, 1, nil)
		if err != nil {
			t.Fatalf("soda %d: %v", i, err)
		}
		if want := fmt.Sprintf("1 can(s) for %s", customer.DeviceID()); string(out) != want {
			t.Fatalf("soda %d: %q, want %q", i, out, want)
		}
	}
	var refused *lightning.RefusedError
	if _, err := cl.Use(ctx, cred, 1, nil); !errors.As(err, &refused) || refused.Code != "exhausted" {
		t.Fatalf("fourth soda: %v, want an exhausted refusal", err)
	}

	st := sl.Status()
	if len(st.Sales) != 1 || st.Sales[0].AmountMsat != 6000 || st.Sales[0].Buyer != customer.DeviceID() {
		t.Fatalf("seller's sales: %+v", st.Sales)
	}
	if st.Refusals["exhausted"] != 1 {
		t.Errorf("seller's refusals %v, want exhausted: 1", st.Refusals)
	}
	if got := cl.Status().SpentMsat; got != 6000 {
		t.Errorf("customer spent %d msat, want 6000", got)
	}

	// The sale, in the payments log, with a receipt that verifies offline.
	var receipt anchor.Receipt
	deadline := time.Now().Add(10 * time.Second)
	for {
		if receipt, err = logs.InclusionProof(salesTopic, 0); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no receipt for the sale: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	env, err := anchor.VerifyReceipt(receipt, seller.DeviceID(), meshlog.Origin(node.DefaultNetwork, seller.DeviceID(), salesTopic), nil, 0)
	if err != nil {
		t.Fatalf("receipt: %v", err)
	}
	var sale lightning.Sale
	if err := json.Unmarshal(env.Payload, &sale); err != nil || sale.PaymentHash != st.Sales[0].PaymentHash || sale.Units != 3 {
		t.Fatalf("logged sale %+v, %v; want %+v", sale, err, st.Sales[0])
	}
}
