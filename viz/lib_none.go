//go:build !visnetwork

package viz

// visNetworkJS is empty in a build without the visnetwork tag: the page
// cannot be rendered, and WriteHTML and NewHandler return ErrNoLibrary.
var visNetworkJS string
