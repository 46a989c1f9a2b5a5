package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/bitmesh/bitmesh/node/control"
)

// nodeCommand is a command that talks to the running node through its
// control API: its flag set carries --data (and --passphrase-file), which
// names the node's data directory, where the node wrote the API's address
// and token.
type nodeCommand struct {
	fs   *flag.FlagSet
	data dataFlags
}

// newNodeCommand returns the flag set of `bitmesh SYNOPSIS` with the data
// directory flags registered; the command adds its own flags to c.fs.
func newNodeCommand(name, synopsis string, stderr io.Writer) *nodeCommand {
	c := &nodeCommand{fs: newFlagSet(name, synopsis, stderr)}
	c.data.register(c.fs)
	return c
}

// open parses args (minPos to maxPos positional arguments) and dials the
// node; the caller closes the client.
func (c *nodeCommand) open(args []string, minPos, maxPos int) (*control.Client, []string, error) {
	pos, err := parse(c.fs, args, minPos, maxPos)
	if err != nil {
		return nil, nil, err
	}
	api, err := dialNode(c.data.dir)
	if err != nil {
		return nil, nil, err
	}
	return api, pos, nil
}

// dialNode returns a control API client for the node running on dataDir:
// the one place the CLI finds a running node.
func dialNode(dataDir string) (*control.Client, error) {
	api, err := control.Dial(dataDir)
	if err != nil {
		return nil, fmt.Errorf("dial the node: %w", err)
	}
	return api, nil
}
