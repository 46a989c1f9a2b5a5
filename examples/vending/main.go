// Command vending is a vending machine and a customer on one machine: the
// machine is a bitmesh node selling sodas for Lightning payments
// (package lightning, L402 credentials over a libp2p stream), the customer
// another node that buys a bundle of three, pays, and takes them one by
// one; the fourth is refused.
//
//	go run ./examples/vending
//
// Both pay through an in-process Lightning network, so the example runs
// anywhere. With real lnd nodes, give each side lightning.NewLnd(...) as
// its Backend instead (see lightning's TestBuyThroughLnd, or
// `bitmesh node --lnd-rest` and `bitmesh pay buy`).
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/lightning"
	"github.com/bitmesh/bitmesh/node"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ln := lightning.NewInProcessNetwork(nil)

	// The machine sells "soda" at 2,000 msat a can.
	machineCfg := lightning.DefaultConfig()
	machineCfg.Backend = ln.Backend(0)
	machineCfg.Services = []lightning.Service{{
		Name: "soda", PriceMsat: 2000, Unit: "can", Description: "a cold can of soda",
		Serve: func(_ context.Context, buyer identity.DeviceID, units uint64, _ []byte) ([]byte, error) {
			return fmt.Appendf(nil, "*clunk* %d can(s) for %.16s…", units, buyer), nil
		},
	}}
	machinePay, err := lightning.New(machineCfg)
	check(err)
	machine, err := node.New(node.LocalConfig(), node.WithExtension(machinePay))
	check(err)
	check(machine.Start(ctx))
	defer machine.Close()

	// The customer has 10,000 msat in its wallet.
	customerCfg := lightning.DefaultConfig()
	wallet := ln.Backend(10_000)
	customerCfg.Backend = wallet
	customerPay, err := lightning.New(customerCfg)
	check(err)
	cfg := node.LocalConfig()
	for _, a := range machine.Addrs() {
		cfg.BootstrapPeers = append(cfg.BootstrapPeers, a.String())
	}
	customer, err := node.New(cfg, node.WithExtension(customerPay))
	check(err)
	check(customer.Start(ctx))
	defer customer.Close()
	for len(customer.Peers()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}

	menu, err := customerPay.Services(ctx, machine.PeerID())
	check(err)
	for _, s := range menu {
		fmt.Printf("menu: %s, %d msat per %s (%s)\n", s.Name, s.PriceMsat, s.Unit, s.Description)
	}
	cred, err := customerPay.Buy(ctx, machine.PeerID(), "soda", 3)
	check(err)
	fmt.Printf("paid %d msat for 3 cans; wallet now %d msat\n", cred.AmountMsat, wallet.Balance())
	for range 4 {
		out, err := customerPay.Use(ctx, cred, 1, nil)
		if err != nil {
			fmt.Println("machine:", err)
			continue
		}
		fmt.Printf("machine: %s (%d left)\n", out, cred.Remaining)
	}
	for _, sale := range machinePay.Status().Sales {
		fmt.Printf("machine's sale: %d × %s, %d msat, payment hash %.16s…\n", sale.Units, sale.Service, sale.AmountMsat, sale.PaymentHash)
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
