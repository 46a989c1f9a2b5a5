package metrics

import "errors"

// ErrNilNode is returned by New without a node to read.
var ErrNilNode = errors.New("metrics: nil node")
