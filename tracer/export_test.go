package tracer

// SetPerPacketTest turns the MDA's per-packet test on or off for the runs
// that follow, and returns the setting it replaces.
func SetPerPacketTest(on bool) (was bool) {
	was, perPacketTest = perPacketTest, on
	return was
}
