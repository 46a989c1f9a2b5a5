package node

import "errors"

var (
	// ErrNotStarted is returned by operations that need a started node.
	ErrNotStarted = errors.New("node: not started")
	// ErrClosed is returned by operations on a closed node or subscription.
	ErrClosed = errors.New("node: closed")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("node: already started")
)
