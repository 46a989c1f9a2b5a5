package mqtt

import (
	"context"
	"errors"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/gossip"
)

// receiptLoop publishes each published batch's receipt on its companion
// topic (ReceiptTopicPrefix + mesh topic) once a checkpoint of the node's
// log covers it. The payload is the receipt exactly as `bitmesh log
// receipt` writes it (anchor.MarshalReceipt), which `bitmesh log verify`
// checks offline; the batch entries are inside its envelope. The same
// receipt stays retrievable from the control API (GET
// /v1/logs/receipt?topic=T&id=ID, or GET /v1/mqtt/receipt, which also gives
// an entry's audit path in its batch).
func (g *Gateway) receiptLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.ReceiptInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h, err := g.running()
		if err != nil {
			return
		}
		g.mu.Lock()
		jobs := g.pendingR
		g.pendingR = nil
		g.mu.Unlock()
		var keep []pendingReceipt
		now := h.Now()
		for _, j := range jobs {
			r, err := g.receipts.Receipt(j.topic, j.id)
			switch {
			case errors.Is(err, meshlog.ErrNoCheckpoint) && now.Sub(j.since) < receiptMaxWait:
				keep = append(keep, j)
				continue
			case errors.Is(err, meshlog.ErrUnknownTopic):
				g.counts.add(countUncertified) // the node does not log the topic
				continue
			case err != nil:
				g.counts.add(countReceiptsDropped)
				h.Logger().Warn("mqtt: no receipt for a batch", "topic", j.topic, "id", j.id, "err", err)
				continue
			}
			g.publishReceipt(j.topic, j.id, r)
		}
		g.mu.Lock()
		g.pendingR = append(keep, g.pendingR...)
		g.mu.Unlock()
	}
}

func (g *Gateway) publishReceipt(topic string, id gossip.ID, r anchor.Receipt) {
	b, err := anchor.MarshalReceipt(r)
	if err != nil {
		g.counts.add(countReceiptsDropped)
		return
	}
	g.mu.Lock()
	srv, br := g.srv, g.bridge
	g.mu.Unlock()
	if srv != nil {
		if err := srv.Publish(ReceiptTopicPrefix+topic, b, false, 1); err == nil {
			g.counts.add(countReceiptsSent)
		}
	}
	if br != nil {
		br.client.Publish(ReceiptTopicPrefix+topic, 1, false, b)
	}
}
