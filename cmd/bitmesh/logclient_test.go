package main

import (
	"encoding/json"
	"testing"
)

// TestLogInfoKeepsTheNodesJSON: `bitmesh log show --json` prints each log
// as the node sent it, fields this version does not know included.
func TestLogInfoKeepsTheNodesJSON(t *testing.T) {
	const node = `[{"topic":"t","origin":"o","size":3,"checkpoint_size":2,"cosigners":["w"],"pending":["x"],"future_field":{"a":1}}]`
	var logs []logInfo
	if err := json.Unmarshal([]byte(node), &logs); err != nil {
		t.Fatal(err)
	}
	if l := logs[0]; l.Topic != "t" || l.Size != 3 || l.Checkpoint != 2 || len(l.Cosigners) != 1 {
		t.Fatalf("decoded %+v", l)
	}
	got, err := json.Marshal(logs)
	if err != nil || string(got) != node {
		t.Fatalf("re-encoded %s (%v), want the node's %s", got, err, node)
	}
	built, err := json.Marshal(logInfo{Topic: "t"})
	if err != nil || string(built) != `{"topic":"t","origin":"","size":0,"checkpoint_size":0,"cosigners":null}` {
		t.Fatalf("a logInfo built in code encodes as %s (%v)", built, err)
	}
}
