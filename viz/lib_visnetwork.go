//go:build visnetwork

package viz

import _ "embed"

// visNetworkJS is the standalone UMD build of vis-network that
// viz/package-lock.json pins; `make viz-deps` installs it with npm ci.
//
//go:embed node_modules/vis-network/standalone/umd/vis-network.min.js
var visNetworkJS string
