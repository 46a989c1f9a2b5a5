package node

import (
	"slices"

	"github.com/bitmesh/bitmesh/node/ext"
)

// Extensions returns the extensions that started, in start order: empty
// before Start, and still listed after Close. Callers that serve an
// extension's parts (node/control mounts ext.Routes) look for the optional
// interfaces here, so that the node needs no branch per feature. The slice
// is a copy. Safe for concurrent access.
func (n *Node) Extensions() []ext.Extension {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.extensions)
}
